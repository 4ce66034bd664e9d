#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One entry of a `BytesTable`: the key's hash and length, its first 16 bytes inline (most
/// words fit, so comparing needs no second memory access), the rest in the arena, and the value.
@usableFromInline struct BytesEntry<V> {
    @usableFromInline var hash: UInt64
    @usableFromInline var length: Int
    @usableFromInline var offset: Int
    @usableFromInline var head0: UInt64
    @usableFromInline var head1: UInt64
    @usableFromInline var value: V

    @inlinable init(hash: UInt64, length: Int, offset: Int, head0: UInt64, head1: UInt64, value: V) {
        self.hash = hash
        self.length = length
        self.offset = offset
        self.head0 = head0
        self.head1 = head1
        self.value = value
    }
}

/// An open-addressing hash table from byte strings to values, for the text fast path: keys
/// are looked up by borrowed bytes (no allocation), and a probe reads one 8-byte slot (a
/// 32-bit hash fragment and the entry's index) and then one dense entry holding the key's
/// first 16 bytes inline — two memory accesses for a hit, where `Dictionary<Bytes, V>` pays an
/// allocation per key and several pointer chases per comparison. Longer keys keep their tail in
/// an arena. It is what Thrill's reduce tables and a hand-written C word count do.
@usableFromInline final class BytesTable<V> {
    /// Slot: 0 when empty, else `(hash >> 32) << 32 | (entry index + 1)`.
    @usableFromInline @exclusivity(unchecked) var slots: UnsafeMutablePointer<UInt64>
    @usableFromInline @exclusivity(unchecked) var mask: Int
    @usableFromInline @exclusivity(unchecked) var entries: UnsafeMutablePointer<BytesEntry<V>>
    @usableFromInline @exclusivity(unchecked) var entryCapacity: Int
    @usableFromInline @exclusivity(unchecked) var count = 0
    @usableFromInline @exclusivity(unchecked) var arena: UnsafeMutableRawPointer
    @usableFromInline @exclusivity(unchecked) var arenaUsed = 0
    @usableFromInline @exclusivity(unchecked) var arenaCapacity: Int

    @inlinable init(capacity: Int = 1 << 12) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        mask = size - 1
        entryCapacity = size / 2
        entries = .allocate(capacity: entryCapacity)
        arenaCapacity = 1 << 16
        arena = .allocate(byteCount: arenaCapacity, alignment: 8)
    }

    deinit {
        entries.deinitialize(count: count)
        entries.deallocate()
        slots.deallocate()
        arena.deallocate()
    }

    /// Approximate bytes the entries hold (entries, slots at the load factor, long-key tails).
    @inlinable var memory: Int { arenaUsed + count * (MemoryLayout<BytesEntry<V>>.stride + 16) }

    /// The first 16 bytes of a key, zero-padded, as two words.
    @inlinable static func head(_ key: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        let n = key.count
        if n >= 16 {
            return (key.loadUnaligned(fromByteOffset: 0, as: UInt64.self), key.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        var words: (UInt64, UInt64) = (0, 0)
        if n > 0 { withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: key) } }
        return words
    }

    /// Finds `key` (whose stable hash is `hash`) and updates its value in place, or inserts the
    /// value `create` returns.
    @inlinable func upsert(_ key: UnsafeRawBufferPointer, hash: UInt64, create: () throws -> V,
                           update: (inout V) throws -> Void) rethrows {
        let fragment = hash >> 32
        let (h0, h1) = BytesTable.head(key)
        let n = key.count
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[i]
            if slot == 0 { break }
            if slot >> 32 == fragment {
                let e = entries + (Int(slot & 0xFFFF_FFFF) - 1)
                if e.pointee.length == n && e.pointee.head0 == h0 && e.pointee.head1 == h1
                    && (n <= 16 || memcmp(arena + e.pointee.offset, key.baseAddress! + 16, n - 16) == 0) {
                    try update(&e.pointee.value)
                    return
                }
            }
            i = (i + 1) & mask
        }
        let value = try create()
        insertNew(key, hash: hash, head: (h0, h1), at: i, value: value)
    }

    @inlinable func insertNew(_ key: UnsafeRawBufferPointer, hash: UInt64, head: (UInt64, UInt64), at slot: Int, value: V) {
        var offset = 0
        if key.count > 16 {
            let tail = key.count - 16
            if arenaUsed + tail > arenaCapacity {
                var bigger = arenaCapacity * 2
                while arenaUsed + tail > bigger { bigger *= 2 }
                let a = UnsafeMutableRawPointer.allocate(byteCount: bigger, alignment: 8)
                a.copyMemory(from: arena, byteCount: arenaUsed)
                arena.deallocate()
                arena = a
                arenaCapacity = bigger
            }
            (arena + arenaUsed).copyMemory(from: key.baseAddress! + 16, byteCount: tail)
            offset = arenaUsed
            arenaUsed += tail
        }
        if count == entryCapacity {
            let bigger = UnsafeMutablePointer<BytesEntry<V>>.allocate(capacity: entryCapacity * 2)
            bigger.moveInitialize(from: entries, count: count)
            entries.deallocate()
            entries = bigger
            entryCapacity *= 2
        }
        (entries + count).initialize(to: BytesEntry(hash: hash, length: key.count, offset: offset, head0: head.0, head1: head.1,
                                                    value: value))
        count += 1
        slots[slot] = (hash >> 32) << 32 | UInt64(count)
        if count * 4 > (mask + 1) * 3 { grow() } // load factor 3/4
    }

    @usableFromInline func grow() {
        let size = (mask + 1) * 2
        slots.deallocate()
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        mask = size - 1
        for e in 0..<count {
            let h = entries[e].hash
            var i = Int(truncatingIfNeeded: h) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = (h >> 32) << 32 | UInt64(e + 1)
        }
    }

    /// Calls `body` with every key (valid during the call), its hash and its value.
    @inlinable func forEach(_ body: (UnsafeRawBufferPointer, UInt64, V) throws -> Void) rethrows {
        var scratch = [UInt8](repeating: 0, count: 64)
        for e in 0..<count {
            let entry = entries[e]
            if scratch.count < entry.length { scratch = [UInt8](repeating: 0, count: entry.length * 2) }
            try scratch.withUnsafeMutableBytes { buffer in
                withUnsafeBytes(of: (entry.head0, entry.head1)) { head in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: head[0..<min(16, entry.length)]))
                }
                if entry.length > 16 {
                    (buffer.baseAddress! + 16).copyMemory(from: arena + entry.offset, byteCount: entry.length - 16)
                }
                try body(UnsafeRawBufferPointer(start: buffer.baseAddress, count: entry.length), entry.hash, entry.value)
            }
        }
    }

    /// Empties the table, keeping its allocations.
    @inlinable func removeAll() {
        slots.update(repeating: 0, count: mask + 1)
        entries.deinitialize(count: count)
        count = 0
        arenaUsed = 0
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
        // Bucket files are spill, not shuffle output: keep them out of those counters.
        let before = (metrics.shuffleBytesWritten, metrics.recordsWritten)
        _ = try writer.commit(to: path)
        (metrics.shuffleBytesWritten, metrics.recordsWritten) = before
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
