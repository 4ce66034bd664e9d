#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys
import Synchronization

/// An open-addressing hash table from byte strings to values, for the text fast path. Keys
/// are looked up by borrowed bytes (no allocation). Everything a probe needs sits in one flat
/// slot — the key's hash, its length, a key of up to 12 bytes itself and the value — so a
/// lookup costs one memory access in the common case (the hand-written C word count's layout);
/// longer keys live in an arena. On generated Zipf text most distinct words are rare and each
/// rare word is a cache miss, so the number of dependent accesses per lookup is what matters:
/// `Dictionary<Bytes, V>` pays an allocation per key and several pointer chases per comparison.
///
/// Slot layout (stride `slotSize`: 32 bytes for 8-byte values, so two slots share a cache
/// line and none straddles two): hash (u64, 0 = empty; stored hashes have bit 0 set), length
/// (u32), then for keys of up to 12 bytes the key zero-padded (u32 + u64), for longer ones
/// the arena offset (u32) and the key's first 8 bytes; then the value.
@usableFromInline package final class BytesTable<V: BitwiseCopyable> {
    @usableFromInline @exclusivity(unchecked) package var slots: UnsafeMutableRawPointer
    @usableFromInline @exclusivity(unchecked) package var mask: Int
    @usableFromInline @exclusivity(unchecked) package var count = 0
    @usableFromInline @exclusivity(unchecked) package var arena: UnsafeMutableRawPointer
    @usableFromInline @exclusivity(unchecked) package var arenaUsed = 0
    @usableFromInline @exclusivity(unchecked) package var arenaCapacity: Int
    /// The most bytes the slot array may grow to; past it the table fills up to a load of 3/4
    /// (`isFull`) and its owner must flush it: growing would briefly hold both arrays.
    @usableFromInline @exclusivity(unchecked) package var slotLimit: Int

    @inlinable package static var valueOffset: Int { 24 }
    @inlinable package static var slotSize: Int { (24 + MemoryLayout<V>.size + 7) & ~7 }

    @inlinable package init(slotLimit: Int = .max) {
        self.slotLimit = slotLimit
        let size = BytesTable.initialSlots
        slots = BytesTable.allocateSlots(size)
        mask = size - 1
        arenaCapacity = BytesTable.initialArenaBytes
        arena = .allocate(byteCount: arenaCapacity, alignment: 8)
    }

    /// Slot arrays of 2 MiB and more are mapped directly (zero pages, faulted in only where
    /// a slot is used) and advised onto transparent huge pages, as the C baseline does, so that
    /// probes anywhere in a table of tens of MiB do not also miss the TLB. Measured on
    /// wordcount 1 GB: worker peak RSS 163 -> 125 MiB; time unchanged within noise.
    @inlinable package static var hugeSlotBytes: Int { 2 << 20 }

    /// A zeroed slot array of `n` slots.
    @usableFromInline package static func allocateSlots(_ n: Int) -> UnsafeMutableRawPointer {
        let bytes = n * slotSize
        if bytes >= hugeSlotBytes, let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
           p != MAP_FAILED {
            _ = madvise(p, bytes, Int32(MADV_HUGEPAGE))
            return p
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return p
    }

    /// Frees a slot array of `n` slots made by `allocateSlots`.
    @usableFromInline package static func freeSlots(_ p: UnsafeMutableRawPointer, _ n: Int) {
        let bytes = n * slotSize
        if bytes >= hugeSlotBytes { munmap(p, bytes) } else { p.deallocate() }
    }

    deinit {
        BytesTable.freeSlots(slots, mask + 1)
        arena.deallocate()
    }

    /// Bytes the table holds: its slot array beyond the initial one (a fixed cost, counted by
    /// its use so that a tiny budget still lets entries in) and its long-key tails.
    @inlinable package var memory: Int {
        max(count * 2, mask + 1 - BytesTable.initialSlots) * BytesTable.slotSize + arenaUsed
    }

    /// Slots and arena bytes of a new (or released) table.
    @inlinable package static var initialSlots: Int { 1 << 13 }
    @inlinable package static var initialArenaBytes: Int { 1 << 16 }

    /// At its slot limit and 3/4 full: flush it before adding more (linear probing past 3/4
    /// gets slow: a spilling wordcount's map stage took 7.9 s flushing at 7/8, 6.4 s at 3/4).
    @inlinable package var isFull: Bool { count * 4 > (mask + 1) * 3 }

    /// Starts loading the slot `hash` probes first.
    @inlinable package func prefetch(hash: UInt64) {
        sluice_prefetch(slots + (Int(truncatingIfNeeded: (hash | 1) >> 1) & mask) * BytesTable.slotSize)
    }

    /// The key words a slot holds, from the key's `StableHasher.headWords`: for a key of up to
    /// 12 bytes, its bytes 0–3 and 4–11 (zero-padded); for a longer one, its bytes 0–7 as a
    /// quick filter (the whole key is in the arena).
    @inlinable @inline(__always) package static func slotWords(count n: Int, _ w0: UInt64, _ w1: UInt64) -> (UInt32, UInt64) {
        n <= 12 ? (UInt32(truncatingIfNeeded: w0), (w0 >> 32) | (w1 << 32)) : (0, w0)
    }

    /// Finds `key` (whose stable hash is `hash`) and updates its value in place, or inserts the
    /// value `create` returns.
    @inlinable package func upsert(_ key: UnsafeRawBufferPointer, hash: UInt64, create: () throws -> V,
                           update: (inout V) throws -> Void) rethrows {
        let (w0, w1) = StableHasher.headWords(key)
        try upsert(count: key.count, words: BytesTable.slotWords(count: key.count, w0, w1), hash: hash,
                   bytes: key.baseAddress, create: create, update: update)
    }

    /// `upsert` of a key of `n` bytes given its slot words; its `bytes` are read only when it is
    /// longer than 12 bytes (a short key is all in its words).
    @inlinable @inline(__always)
    package func upsert(count n: Int, words: (UInt32, UInt64), hash: UInt64, bytes: UnsafeRawPointer?,
                create: () throws -> V, update: (inout V) throws -> Void) rethrows {
        let (i, found) = probe(count: n, words: words, hash: hash, bytes: bytes)
        guard found else {
            return insertNew(count: n, bytes: bytes, hash: hash | 1, words: words, at: i, value: try create())
        }
        let slot = slots + i * BytesTable.slotSize
        var value = slot.load(fromByteOffset: BytesTable.valueOffset, as: V.self)
        try update(&value)
        slot.storeBytes(of: value, toByteOffset: BytesTable.valueOffset, as: V.self)
    }

    /// The value of `key` (whose stable hash is `hash`), if the table holds it.
    @inlinable package func find(_ key: UnsafeRawBufferPointer, hash: UInt64) -> V? {
        let (w0, w1) = StableHasher.headWords(key)
        let (i, found) = probe(count: key.count, words: BytesTable.slotWords(count: key.count, w0, w1), hash: hash,
                               bytes: key.baseAddress)
        return found ? (slots + i * BytesTable.slotSize).load(fromByteOffset: BytesTable.valueOffset, as: V.self) : nil
    }

    /// The slot holding the key of `n` bytes, or the empty slot where it would go.
    @inlinable @inline(__always)
    package func probe(count n: Int, words: (UInt32, UInt64), hash: UInt64, bytes: UnsafeRawPointer?) -> (index: Int, found: Bool) {
        let h = hash | 1
        let size = BytesTable.slotSize
        // Bytes 8–15 of a slot hold the length and then, for a short key, its first 4 bytes.
        let short = n <= 12
        let lengthWord = UInt64(UInt32(truncatingIfNeeded: n)) | (short ? UInt64(words.0) << 32 : 0)
        var i = Int(truncatingIfNeeded: h >> 1) & mask
        while true {
            let slot = slots + i * size
            let stored = slot.load(as: UInt64.self)
            if stored == 0 { return (i, false) }
            if stored == h && slot.load(fromByteOffset: 16, as: UInt64.self) == words.1 {
                let stamp = slot.load(fromByteOffset: 8, as: UInt64.self)
                if short ? stamp == lengthWord
                         : UInt32(truncatingIfNeeded: stamp) == UInt32(truncatingIfNeeded: n)
                             && memcmp(arena + Int(stamp >> 32), bytes!, n) == 0 {
                    return (i, true)
                }
            }
            i = (i + 1) & mask
        }
    }

    @inlinable package func insertNew(count n: Int, bytes: UnsafeRawPointer?, hash h: UInt64, words: (UInt32, UInt64),
                              at index: Int, value: V) {
        var k4 = words.0
        if n > 12 {
            if arenaUsed + n > arenaCapacity {
                var bigger = arenaCapacity * 2
                while arenaUsed + n > bigger { bigger *= 2 }
                let a = UnsafeMutableRawPointer.allocate(byteCount: bigger, alignment: 8)
                a.copyMemory(from: arena, byteCount: arenaUsed)
                arena.deallocate()
                arena = a
                arenaCapacity = bigger
            }
            (arena + arenaUsed).copyMemory(from: bytes!, byteCount: n)
            k4 = UInt32(truncatingIfNeeded: arenaUsed)
            arenaUsed += n
        }
        let slot = slots + index * BytesTable.slotSize
        slot.storeBytes(of: h, as: UInt64.self)
        slot.storeBytes(of: UInt32(n), toByteOffset: 8, as: UInt32.self)
        slot.storeBytes(of: k4, toByteOffset: 12, as: UInt32.self)
        slot.storeBytes(of: words.1, toByteOffset: 16, as: UInt64.self)
        slot.storeBytes(of: value, toByteOffset: BytesTable.valueOffset, as: V.self)
        count += 1
        // Load factor 3/4; when growing would pass the limit the owner flushes (`isFull`), and
        // only a table that is not flushed grows past it, at 15/16.
        if count * 4 > (mask + 1) * 3 && ((mask + 1) * 2 * BytesTable.slotSize <= slotLimit || count * 16 > (mask + 1) * 15) {
            grow()
        }
    }

    /// Makes room for `entries` keys at the load factor before any is added: no growth step
    /// (each a rehash and fresh pages) on the way there. Only on an empty table.
    @usableFromInline package func reserve(_ entries: Int) {
        guard count == 0 else { return }
        var size = mask + 1
        while entries * 4 > size * 3 { size *= 2 }
        guard size > mask + 1 else { return }
        BytesTable.freeSlots(slots, mask + 1)
        slots = BytesTable.allocateSlots(size)
        mask = size - 1
    }

    @usableFromInline package func grow() {
        let old = slots, oldSize = mask + 1, size = BytesTable.slotSize
        slots = BytesTable.allocateSlots(oldSize * 2)
        mask = oldSize * 2 - 1
        for j in 0..<oldSize {
            let from = old + j * size
            let h = from.load(as: UInt64.self)
            if h == 0 { continue }
            var i = Int(truncatingIfNeeded: h >> 1) & mask
            while (slots + i * size).load(as: UInt64.self) != 0 { i = (i + 1) & mask }
            (slots + i * size).copyMemory(from: from, byteCount: size)
        }
        BytesTable.freeSlots(old, oldSize)
    }

    /// Calls `body` with every key (valid during the call), its stable hash and its value.
    @inlinable package func forEach(_ body: (UnsafeRawBufferPointer, UInt64, V) throws -> Void) rethrows {
        var scratch = [UInt8](repeating: 0, count: 64)
        let size = BytesTable.slotSize
        for j in 0...mask {
            let slot = slots + j * size
            let h = slot.load(as: UInt64.self)
            if h == 0 { continue }
            let n = Int(slot.load(fromByteOffset: 8, as: UInt32.self))
            if scratch.count < n { scratch = [UInt8](repeating: 0, count: n * 2) }
            try scratch.withUnsafeMutableBytes { buffer in
                // A short key's 12 bytes sit together at offset 12; a long one is in the arena.
                let from = n <= 12 ? UnsafeRawPointer(slot + 12) : UnsafeRawPointer(arena + Int(slot.load(fromByteOffset: 12, as: UInt32.self)))
                buffer.baseAddress!.copyMemory(from: from, byteCount: n)
                try body(UnsafeRawBufferPointer(start: buffer.baseAddress, count: n), h,
                         slot.load(fromByteOffset: BytesTable.valueOffset, as: V.self))
            }
        }
    }

    /// Empties the table, keeping its allocations.
    @inlinable package func removeAll() {
        slots.initializeMemory(as: UInt8.self, repeating: 0, count: (mask + 1) * BytesTable.slotSize)
        count = 0
        arenaUsed = 0
    }

    /// Empties the table and gives its memory back (down to the initial allocation).
    @usableFromInline package func release() {
        BytesTable.freeSlots(slots, mask + 1)
        arena.deallocate()
        let size = BytesTable.initialSlots
        slots = BytesTable.allocateSlots(size)
        mask = size - 1
        arenaCapacity = BytesTable.initialArenaBytes
        arena = .allocate(byteCount: arenaCapacity, alignment: 8)
        count = 0
        arenaUsed = 0
    }
}

/// Byte-key tables kept between the tasks of one stage that a worker runs one after another. A
/// map task's table grows to tens of MiB; a fresh one per task would pay again for every growth
/// step and for faulting in and zeroing every page (10 % of wordcount's CPU time). One table per
/// value type is kept, emptied, at the size its last task needed. Tables are dropped when the
/// worker moves on to another stage, whose tasks may need their memory budget for other things.
@usableFromInline enum BytesTableShelf {
    /// The kept tables, by value type, and the stage whose tasks kept them. Unchecked: a kept
    /// table is used by one task at a time (`take` removes it from the shelf, `put` returns it).
    private struct Shelf: @unchecked Sendable {
        var tables: [ObjectIdentifier: AnyObject] = [:]
        var stage: Int?
    }
    private static let shelf = Mutex(Shelf())

    /// Called before a task of `stage` runs: drops the tables another stage's tasks kept.
    static func enter(stage: Int) {
        shelf.withLock { shelf in
            if shelf.stage != stage { shelf.tables.removeAll() }
            shelf.stage = stage
        }
    }

    /// A kept table whose slot array fits `slotLimit`, or a new one.
    @usableFromInline static func take<V>(slotLimit: Int) -> BytesTable<V> {
        let kept = shelf.withLock { $0.tables.removeValue(forKey: ObjectIdentifier(V.self)) } as? BytesTable<V>
        guard let table = kept, (table.mask + 1) * BytesTable<V>.slotSize <= slotLimit else {
            return BytesTable<V>(slotLimit: slotLimit)
        }
        table.slotLimit = slotLimit
        return table
    }

    /// A kept object of type `T` (another kind of per-task buffer, such as a sorter), if any.
    @usableFromInline static func takeObject<T: AnyObject>(_: T.Type) -> T? {
        shelf.withLock { $0.tables.removeValue(forKey: ObjectIdentifier(T.self)) } as? T
    }

    /// Keeps `object` for the worker's next task of the stage (emptied by its owner).
    @usableFromInline static func putObject<T: AnyObject>(_ object: T) {
        shelf.withLock { $0.tables[ObjectIdentifier(T.self)] = object }
    }

    /// Keeps `table`, emptied, for the next task.
    @usableFromInline static func put<V>(_ table: BytesTable<V>) {
        if table.count > 0 || table.arenaUsed > 0 { table.removeAll() }
        shelf.withLock { $0.tables[ObjectIdentifier(V.self)] = table }
    }
}

/// Lookups into a `BytesTable` in batches of 64: each key is hashed and its slot prefetched
/// when it arrives, and the batch is applied when full, so the cache misses of a batch overlap
/// instead of queueing (the C baseline's trick, with 16). On wordcount 1 GB, best of 5: 16 keys
/// 5.48 s, 32 keys 4.78 s, 64 keys 4.61 s; a ring that looks each key up 16 keys after its
/// prefetch was slower than batches. A key of up to 12 bytes (most text tokens) is kept as its
/// two slot words, read with overlapping loads; a longer one is copied into a small buffer. So
/// a borrowed view need stay valid only during its call.
@usableFromInline final class BatchedUpserts<V: BitwiseCopyable> {
    @usableFromInline static var size: Int { 64 }
    @usableFromInline let table: BytesTable<V>
    @usableFromInline let keys: UnsafeMutableRawPointer
    @usableFromInline @exclusivity(unchecked) var used = 0
    @usableFromInline @exclusivity(unchecked) var count = 0
    @usableFromInline let offsets: UnsafeMutablePointer<Int>
    @usableFromInline let lengths: UnsafeMutablePointer<Int>
    @usableFromInline let hashes: UnsafeMutablePointer<UInt64>
    @usableFromInline let words: UnsafeMutablePointer<(UInt32, UInt64)>
    @usableFromInline let values: UnsafeMutablePointer<V>

    @inlinable init(table: BytesTable<V>) {
        self.table = table
        keys = .allocate(byteCount: BatchedUpserts.size * 256, alignment: 8)
        offsets = .allocate(capacity: BatchedUpserts.size)
        lengths = .allocate(capacity: BatchedUpserts.size)
        hashes = .allocate(capacity: BatchedUpserts.size)
        words = .allocate(capacity: BatchedUpserts.size)
        values = .allocate(capacity: BatchedUpserts.size)
    }

    deinit {
        keys.deallocate()
        offsets.deallocate()
        lengths.deallocate()
        hashes.deallocate()
        words.deallocate()
        values.deallocate()
    }

    /// Queues a key (keys over 256 bytes go straight to the table, after the batch).
    @inlinable @inline(__always) func add(_ key: UnsafeRawBufferPointer, _ value: V, combine: (V, V) throws -> V) throws {
        let n = key.count
        let hash: UInt64
        if n <= 16 {
            let (w0, w1) = StableHasher.headWords(key)
            hash = StableHasher.hash(headWords: w0, w1, count: n)
            words[count] = BytesTable<V>.slotWords(count: n, w0, w1)
            if n > 12 {
                (keys + used).storeBytes(of: w0, as: UInt64.self)
                (keys + used + 8).storeBytes(of: w1, as: UInt64.self)
            }
        } else if n <= 256 {
            hash = StableHasher.hash(bytes: key)
            words[count] = (0, key.loadUnaligned(as: UInt64.self))
            (keys + used).copyMemory(from: key.baseAddress!, byteCount: n)
        } else {
            try apply(combine)
            try table.upsert(key, hash: StableHasher.hash(bytes: key), create: { value },
                             update: { $0 = try combine($0, value) })
            return
        }
        table.prefetch(hash: hash)
        offsets[count] = used
        lengths[count] = n
        hashes[count] = hash
        (values + count).initialize(to: value)
        if n > 12 { used += max(n, 16) }
        count += 1
        if count == BatchedUpserts.size { try apply(combine) }
    }

    /// Applies the queued lookups.
    @inlinable func apply(_ combine: (V, V) throws -> V) throws {
        for i in 0..<count {
            let v = values[i]
            let n = lengths[i]
            try table.upsert(count: n, words: words[i], hash: hashes[i], bytes: n > 12 ? UnsafeRawPointer(keys + offsets[i]) : nil,
                             create: { v }, update: { $0 = try combine($0, v) })
        }
        count = 0
        used = 0
    }
}
