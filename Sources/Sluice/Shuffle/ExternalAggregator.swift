#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A hash table of combiners (key → accumulated value) that works when the keys do not fit
/// in memory: when its estimated size passes the budget, it spills its entries into
/// `fanOut` bucket files by a hash of the key (a different hash at every level), and at the
/// end aggregates each bucket on its own, recursively — Thrill's reduce post-phase. Nothing
/// needs to be sorted, so keys need only be hashable.
@usableFromInline final class ExternalAggregator<K: ShuffleKey, C: BinaryCodable> {
    @inlinable static var fanOut: Int { 16 }
    @inlinable static var maxLevel: Int { 6 }

    @usableFromInline var table: [K: C] = [:]
    @usableFromInline var memory = 0
    @usableFromInline let budget: Int
    @usableFromInline let level: Int
    @usableFromInline let spillPrefix: String
    @usableFromInline let mergeCombiners: (inout C, C) throws -> Void
    @usableFromInline var spill: PartitionedWriter?
    @usableFromInline let metrics: TaskMetrics

    @inlinable init(budget: Int, spillPrefix: String, metrics: TaskMetrics, level: Int = 0,
         mergeCombiners: @escaping (inout C, C) throws -> Void) {
        self.budget = max(budget, 1 << 16)
        self.spillPrefix = spillPrefix
        self.metrics = metrics
        self.level = level
        self.mergeCombiners = mergeCombiners
    }

    /// Adds to `key`'s combiner: creates it with `create` or updates it in place with `update`.
    /// `growth` estimates the bytes an update adds (non-zero for growing combiners such as lists).
    @inlinable func upsert(_ key: K, growth: Int = 0, create: () throws -> C, update: (inout C) throws -> Void) throws {
        if let i = table.index(forKey: key) {
            try update(&table.values[i])
            memory += growth
        } else {
            let c = try create()
            memory += key.estimatedMemory + c.estimatedMemory + 48
            table[key] = c
        }
        if memory > budget && level < ExternalAggregator.maxLevel { try spillTable() }
    }

    /// Adds a combiner for `key` (from a map output or a spill), merging with any present.
    @inlinable func merge(_ key: K, _ c: C, growth: Int) throws {
        try upsert(key, growth: growth, create: { c }, update: { try mergeCombiners(&$0, c) })
    }

    @inlinable func bucket(of key: K) -> Int {
        var h = StableHasher(seed: 0x9E37_79B9_7F4A_7C15 &* UInt64(level + 1))
        key.stableHash(into: &h)
        return Int(h.finalize() % UInt64(ExternalAggregator.fanOut))
    }

    @inlinable func spillTable() throws {
        if spill == nil {
            spill = PartitionedWriter(partitions: ExternalAggregator.fanOut, budget: budget / 4 + (1 << 16),
                                      spillPrefix: "\(spillPrefix).agg\(level)", metrics: metrics)
        }
        for (k, c) in table {
            try spill!.add(partition: bucket(of: k)) { w in
                k.encode(to: &w)
                c.encode(to: &w)
            }
        }
        try spill!.spill()
        table = [:]
        memory = 0
    }

    /// Hands out every (key, combiner) exactly once, then frees everything.
    @inlinable func finish(_ emit: (K, C) throws -> Void) throws {
        guard let writer = spill else {
            for (k, c) in table { try emit(k, c) }
            table = [:]
            return
        }
        try spillTable()
        let path = "\(spillPrefix).agg\(level).buckets"
        // Bucket files are spill, not shuffle output: keep them out of those counters.
        let before = (metrics.shuffleBytesWritten, metrics.recordsWritten)
        _ = try writer.commit(to: path)
        (metrics.shuffleBytesWritten, metrics.recordsWritten) = before // bucket files are spill, not shuffle output
        defer { unlink(path) }
        let reader = try BlockFileReader(path: path)
        let offsets = try reader.readIndex(expectedPartitions: ExternalAggregator.fanOut)
        for b in 0..<ExternalAggregator.fanOut where offsets[b] < offsets[b + 1] {
            let sub = ExternalAggregator(budget: budget, spillPrefix: "\(spillPrefix).b\(b)", metrics: metrics,
                                         level: level + 1, mergeCombiners: mergeCombiners)
            try reader.forEachRecord(from: offsets[b], to: offsets[b + 1]) { r in
                let k = try K.decode(from: &r)
                let c = try C.decode(from: &r)
                try sub.merge(k, c, growth: c.estimatedMemory)
            }
            try sub.finish(emit)
        }
    }
}

/// Reads records one at a time from a single-partition block file (a sorted run).
@usableFromInline final class RunCursor<R> {
    @usableFromInline let reader: BlockFileReader
    @usableFromInline var offset: Int64
    @usableFromInline let end: Int64
    @usableFromInline var block: [UInt8] = []
    @usableFromInline var position = 0
    @usableFromInline var remainingInBlock = 0
    @usableFromInline let decode: (inout ByteReader) throws -> R
    /// The record under the cursor; nil at the end.
    @usableFromInline var current: R?

    @inlinable init(path: String, decode: @escaping (inout ByteReader) throws -> R) throws {
        reader = try BlockFileReader(path: path)
        let offsets = try reader.readIndex(expectedPartitions: 1)
        offset = offsets[0]
        end = offsets[1]
        self.decode = decode
        try advance()
    }

    /// Moves to the next record.
    @inlinable func advance() throws {
        while remainingInBlock == 0 {
            guard offset < end else {
                current = nil
                return
            }
            // Read one block: header then payload (checksummed by forEachBlock).
            var next: [UInt8] = []
            var count = 0
            var consumed: Int64 = 0
            try reader.forEachBlockOnce(at: offset) { payload, n, total in
                next = Array(payload)
                count = n
                consumed = total
            }
            offset += consumed
            block = next
            position = 0
            remainingInBlock = count
        }
        current = try block.withUnsafeBytes { raw in
            var r = ByteReader(raw, position: position)
            let value = try decode(&r)
            position = r.position
            return value
        }
        remainingInBlock -= 1
    }
}

extension BlockFileReader {
    /// Reads the single block at `offset`; `body` gets its payload, record count and the
    /// block's total size on disk.
    @usableFromInline func forEachBlockOnce(at offset: Int64, _ body: (UnsafeRawBufferPointer, Int, Int64) throws -> Void) throws {
        var header = [UInt8](repeating: 0, count: BlockFormat.headerSize)
        try header.withUnsafeMutableBytes { try readExactly($0, at: offset) }
        let length = header.withUnsafeBytes { Int64(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self))) }
        let end = offset + Int64(BlockFormat.headerSize) + length
        try forEachBlock(from: offset, to: end) { payload, count in
            try body(payload, count, end - offset)
        }
    }
}

/// Sorts records by key when they may not fit in memory: sorted runs are spilled when the
/// budget fills, then merged with a heap (Hadoop's spill/merge).
@usableFromInline final class ExternalSorter<K: Comparable & BinaryCodable, V: BinaryCodable> {
    @usableFromInline var items: [(K, V)] = []
    @usableFromInline var memory = 0
    @usableFromInline let budget: Int
    @usableFromInline let spillPrefix: String
    @usableFromInline var runs: [String] = []
    @usableFromInline let metrics: TaskMetrics
    @usableFromInline let inOrder: (K, K) -> Bool

    @inlinable init(budget: Int, spillPrefix: String, metrics: TaskMetrics, ascending: Bool = true) {
        self.budget = max(budget, 1 << 16)
        self.spillPrefix = spillPrefix
        self.metrics = metrics
        inOrder = ascending ? { $0 < $1 } : { $1 < $0 }
    }

    @inlinable func add(_ key: K, _ value: V) throws {
        items.append((key, value))
        memory += key.estimatedMemory + value.estimatedMemory + 16
        if memory > budget { try spillRun() }
    }

    @inlinable func spillRun() throws {
        items.sort { inOrder($0.0, $1.0) }
        let path = "\(spillPrefix).sort\(runs.count)"
        let writer = PartitionedWriter(partitions: 1, budget: Int.max, spillPrefix: path, metrics: metrics)
        for (k, v) in items {
            try writer.add(partition: 0) { w in
                k.encode(to: &w)
                v.encode(to: &w)
            }
        }
        let before = (metrics.shuffleBytesWritten, metrics.recordsWritten)
        _ = try writer.commit(to: path)
        metrics.spillBytes += metrics.shuffleBytesWritten - before.0
        (metrics.shuffleBytesWritten, metrics.recordsWritten) = before
        metrics.spills += 1
        runs.append(path)
        items = []
        memory = 0
    }

    /// Hands out every record in key order.
    @inlinable func finish(_ emit: (K, V) throws -> Void) throws {
        if runs.isEmpty {
            items.sort { inOrder($0.0, $1.0) }
            for (k, v) in items { try emit(k, v) }
            items = []
            return
        }
        try spillRun()
        defer { for r in runs { unlink(r) } }
        let cursors = try runs.map { try RunCursor(path: $0) { r in (try K.decode(from: &r), try V.decode(from: &r)) } }
        // A binary min-heap of run indices ordered by (current key, run index): stable merge.
        var heap = cursors.indices.filter { cursors[$0].current != nil }
        func less(_ a: Int, _ b: Int) -> Bool {
            let ka = cursors[a].current!.0, kb = cursors[b].current!.0
            return inOrder(ka, kb) || (!inOrder(kb, ka) && a < b)
        }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        while let top = heap.first {
            let (k, v) = cursors[top].current!
            try emit(k, v)
            try cursors[top].advance()
            if cursors[top].current == nil {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            if !heap.isEmpty { siftDown(0) }
        }
    }
}
