#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open-addressing hash table from byte strings to values, for the text fast path: keys
/// are looked up by borrowed bytes (no allocation), copied once into an arena when new, and
/// compared by a 32-bit hash fragment before `memcmp`. Linear probing over a power-of-two
/// array of 8-byte slots keeps a probe to one cache line in the common case. It is what
/// Thrill's reduce tables and a hand-written C word count do; `Dictionary<Bytes, V>` pays an
/// allocation per key and a pointer chase per comparison instead.
@usableFromInline final class BytesTable<V> {
    /// Slot: 0 when empty, else `(hash >> 32) << 32 | (entry index + 1)`.
    @usableFromInline @exclusivity(unchecked) var slots: UnsafeMutablePointer<UInt64>
    @usableFromInline @exclusivity(unchecked) var mask: Int
    @usableFromInline @exclusivity(unchecked) var arena: UnsafeMutableRawPointer
    @usableFromInline @exclusivity(unchecked) var arenaUsed = 0
    @usableFromInline @exclusivity(unchecked) var arenaCapacity: Int
    @usableFromInline @exclusivity(unchecked) var keyOffsets: [Int] = []
    @usableFromInline @exclusivity(unchecked) var keyLengths: [Int32] = []
    @usableFromInline @exclusivity(unchecked) var hashes: [UInt64] = []
    @usableFromInline @exclusivity(unchecked) var values: [V] = []

    @inlinable init(capacity: Int = 1 << 12) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        mask = size - 1
        arenaCapacity = 1 << 16
        arena = .allocate(byteCount: arenaCapacity, alignment: 8)
    }

    deinit {
        slots.deallocate()
        arena.deallocate()
    }

    @inlinable var count: Int { values.count }

    /// Approximate bytes the entries hold (keys, values, per-entry bookkeeping and slots at
    /// the load factor); the fixed initial allocation is not counted.
    @inlinable var memory: Int { arenaUsed + values.count * (MemoryLayout<V>.stride + 40) }

    /// Finds `key` (whose stable hash is `hash`) and updates its value in place, or inserts the
    /// value `create` returns.
    @inlinable func upsert(_ key: UnsafeRawBufferPointer, hash: UInt64, create: () throws -> V,
                           update: (inout V) throws -> Void) rethrows {
        let fragment = hash >> 32
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[i]
            if slot == 0 { break }
            if slot >> 32 == fragment {
                let e = Int(slot & 0xFFFF_FFFF) - 1
                if Int(keyLengths[e]) == key.count
                    && (key.count == 0 || memcmp(arena + keyOffsets[e], key.baseAddress!, key.count) == 0) {
                    try update(&values[e])
                    return
                }
            }
            i = (i + 1) & mask
        }
        let value = try create()
        insertNew(key, hash: hash, at: i, value: value)
    }

    @inlinable func insertNew(_ key: UnsafeRawBufferPointer, hash: UInt64, at slot: Int, value: V) {
        if arenaUsed + key.count > arenaCapacity {
            var bigger = arenaCapacity * 2
            while arenaUsed + key.count > bigger { bigger *= 2 }
            let a = UnsafeMutableRawPointer.allocate(byteCount: bigger, alignment: 8)
            a.copyMemory(from: arena, byteCount: arenaUsed)
            arena.deallocate()
            arena = a
            arenaCapacity = bigger
        }
        if key.count > 0 { (arena + arenaUsed).copyMemory(from: key.baseAddress!, byteCount: key.count) }
        keyOffsets.append(arenaUsed)
        keyLengths.append(Int32(key.count))
        hashes.append(hash)
        arenaUsed += key.count
        values.append(value)
        slots[slot] = (hash >> 32) << 32 | UInt64(values.count)
        if values.count * 4 > (mask + 1) * 3 { grow() } // load factor 3/4
    }

    @usableFromInline func grow() {
        let size = (mask + 1) * 2
        slots.deallocate()
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        mask = size - 1
        for (e, h) in hashes.enumerated() {
            var i = Int(truncatingIfNeeded: h) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = (h >> 32) << 32 | UInt64(e + 1)
        }
    }

    /// Calls `body` with every key, its hash and its value.
    @inlinable func forEach(_ body: (UnsafeRawBufferPointer, UInt64, V) throws -> Void) rethrows {
        for e in 0..<values.count {
            try body(UnsafeRawBufferPointer(start: arena + keyOffsets[e], count: Int(keyLengths[e])), hashes[e], values[e])
        }
    }

    /// Empties the table, keeping its allocations.
    @inlinable func removeAll() {
        slots.update(repeating: 0, count: mask + 1)
        arenaUsed = 0
        keyOffsets.removeAll(keepingCapacity: true)
        keyLengths.removeAll(keepingCapacity: true)
        hashes.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
    }
}

/// The reduce side of a byte-keyed aggregation that may not fit in memory: a `BytesTable`
/// that spills into hash buckets and aggregates each bucket on its own, recursively (the same
/// scheme as `ExternalAggregator`).
@usableFromInline final class BytesAggregator<V: BinaryCodable> {
    @usableFromInline let table = BytesTable<V>()
    @usableFromInline let budget: Int
    @usableFromInline let level: Int
    @usableFromInline let spillPrefix: String
    @usableFromInline let merge: (inout V, V) throws -> Void
    @usableFromInline var spill: PartitionedWriter?
    @usableFromInline let metrics: TaskMetrics

    @inlinable init(budget: Int, spillPrefix: String, metrics: TaskMetrics, level: Int = 0,
                    merge: @escaping (inout V, V) throws -> Void) {
        self.budget = max(budget, 1 << 16)
        self.spillPrefix = spillPrefix
        self.metrics = metrics
        self.level = level
        self.merge = merge
    }

    /// Merges `value` into `key`'s entry.
    @inlinable func add(_ key: UnsafeRawBufferPointer, hash: UInt64, _ value: V) throws {
        try table.upsert(key, hash: hash, create: { value }, update: { try merge(&$0, value) })
        if table.memory > budget && level < 6 && table.count > 64 { try spillTable() }
    }

    @inlinable func bucket(_ hash: UInt64) -> Int {
        Int((hash >> UInt64(40 - 4 * level)) & 15)
    }

    @inlinable func spillTable() throws {
        if spill == nil {
            spill = PartitionedWriter(partitions: 16, budget: budget / 4 + (1 << 16),
                                      spillPrefix: "\(spillPrefix).bagg\(level)", metrics: metrics)
        }
        let writer = spill!
        try table.forEach { key, hash, value in
            try writer.add(partition: bucket(hash)) { w in
                w.writeLengthPrefixed(key)
                value.encode(to: &w)
            }
        }
        try writer.spill()
        table.removeAll()
    }

    /// Hands out every (key, value) exactly once.
    @inlinable func finish(_ emit: (UnsafeRawBufferPointer, V) throws -> Void) throws {
        guard let writer = spill else {
            try table.forEach { key, _, value in try emit(key, value) }
            return
        }
        try spillTable()
        let path = "\(spillPrefix).bagg\(level).buckets"
        let before = metrics.shuffleBytesWritten
        _ = try writer.commit(to: path)
        metrics.shuffleBytesWritten = before
        defer { unlink(path) }
        let reader = try BlockFileReader(path: path)
        let offsets = try reader.readIndex(expectedPartitions: 16)
        for b in 0..<16 where offsets[b] < offsets[b + 1] {
            let sub = BytesAggregator(budget: budget, spillPrefix: "\(spillPrefix).b\(b)", metrics: metrics,
                                      level: level + 1, merge: merge)
            try reader.forEachRecord(from: offsets[b], to: offsets[b + 1]) { r in
                let key = try r.readLengthPrefixed()
                try sub.add(key, hash: ByteView(key).stableHash, try V.decode(from: &r))
            }
            try sub.finish(emit)
        }
    }
}
