#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The map side of a byte-keyed aggregation: a `BytesTable` fed through `BatchedUpserts`, flushed
/// into a `PartitionedWriter` (one record per key, partitioned by the key's stable hash) when
/// it reaches its share of the task's memory budget, and at the end. It also samples hot keys.
@usableFromInline final class BytesMapCombiner<V: BinaryCodable & BitwiseCopyable> {
    @usableFromInline let table: BytesTable<V>
    @usableFromInline let batch: BatchedUpserts<V>
    @usableFromInline let writer: PartitionedWriter
    @usableFromInline let partitions: Int
    @usableFromInline let budget: Int
    @usableFromInline let combine: (V, V) throws -> V
    @usableFromInline let metrics: TaskMetrics
    /// Bytes at the end of each key left out of its partition's hash: keys that differ only
    /// there meet in one reduce partition (a stream view's windows of one key, so that a
    /// partition holds whole keys and the sorted parts merge by key alone).
    @usableFromInline let partitionSuffix: Int
    /// Hot keys: the first 16384 records, then one in 1024 (only a sampled key is copied; one
    /// in 256 cost 2 % of wordcount). The exact prefix keeps small inputs' shares exact.
    @usableFromInline @exclusivity(unchecked) var sketch = HeavyHitters<Bytes>(exact: 16384, stride: 1024)

    @inlinable init(task: TaskContext, partitions: Int, partitionSuffix: Int = 0, combine: @escaping (V, V) throws -> V) {
        // A quarter of the budget buffers output; the table (slots and long keys) may use the
        // rest. Its slot array may reach half the budget: growing to that holds both arrays, 3/4.
        writer = PartitionedWriter(partitions: partitions, budget: task.memoryBudget / 4,
                                   spillPrefix: task.tempPrefix + ".map", metrics: task.metrics)
        budget = max(task.memoryBudget * 3 / 4, 1 << 16)
        table = BytesTableShelf.take(slotLimit: max(task.memoryBudget / 2, 1 << 16))
        batch = BatchedUpserts(table: table)
        self.partitions = partitions
        self.partitionSuffix = partitionSuffix
        self.combine = combine
        metrics = task.metrics
    }

    /// Combines `value` into `key`'s entry.
    @inlinable func add(_ key: ByteView, _ value: V) throws {
        sketch.offer { Bytes(key) }
        try batch.add(key.raw, value, combine: combine)
        if batch.count == 0 && (table.memory > budget || table.isFull) {
            try flush()
            metrics.spills += 1
        }
    }

    @inlinable func flush() throws {
        let r = partitions, suffix = partitionSuffix
        try table.forEach { key, hash, value in
            let h = suffix == 0 ? hash : StableHasher.hash(bytes: UnsafeRawBufferPointer(rebasing: key.dropLast(suffix)))
            try writer.add(partition: bytesPartition(h, r)) { w in
                w.writeLengthPrefixed(key)
                value.encode(to: &w)
            }
        }
        table.removeAll()
    }

    /// Flushes what is left and commits the map output to `path`.
    @inlinable func commit(to path: String) throws -> MapOutputStats {
        try batch.apply(combine)
        try flush()
        BytesTableShelf.put(table)
        var stats = try writer.commit(to: path)
        stats.record(sketch)
        return stats
    }
}

/// The reduce side of a byte-keyed aggregation that may not fit in memory: a `BytesTable`
/// fed through `BatchedUpserts` (prefetched, as on the map side) that spills into hash buckets
/// and aggregates each bucket on its own, recursively (the same scheme as `ExternalAggregator`).
@usableFromInline final class BytesAggregator<V: BinaryCodable & BitwiseCopyable> {
    @usableFromInline let table: BytesTable<V>
    @usableFromInline let batch: BatchedUpserts<V>
    @usableFromInline let budget: Int
    @usableFromInline let level: Int
    @usableFromInline let spillPrefix: String
    @usableFromInline let combine: (V, V) throws -> V
    @usableFromInline var spill: PartitionedWriter?
    @usableFromInline let metrics: TaskMetrics

    @inlinable init(budget: Int, spillPrefix: String, metrics: TaskMetrics, level: Int = 0,
                    combine: @escaping (V, V) throws -> V) {
        self.budget = max(budget, 1 << 16)
        // Below the deepest level the table spills rather than grow past half its budget.
        table = level == 0 ? BytesTableShelf.take(slotLimit: self.budget / 2)
                           : BytesTable<V>(slotLimit: level < 6 ? self.budget / 2 : .max)
        batch = BatchedUpserts(table: table)
        self.spillPrefix = spillPrefix
        self.metrics = metrics
        self.level = level
        self.combine = combine
    }

    /// Merges `value` into `key`'s entry.
    @inlinable func add(_ key: UnsafeRawBufferPointer, _ value: V) throws {
        try batch.add(key, value, combine: combine)
        if batch.count == 0 && (table.memory > budget || table.isFull) && level < 6 && table.count > 64 {
            try spillTable()
        }
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
        try batch.apply(combine)
        guard spill != nil else {
            try table.forEach { key, _, value in try emit(key, value) }
            if level == 0 { BytesTableShelf.put(table) }
            return
        }
        try spillTable()
        let path = "\(spillPrefix).bagg\(level).buckets"
        // Bucket files are spill, not shuffle output: keep them out of those counters.
        let before = (metrics.shuffleBytesWritten, metrics.recordsWritten)
        _ = try spill!.commit(to: path)
        (metrics.shuffleBytesWritten, metrics.recordsWritten) = before
        // The buckets are aggregated one at a time, each within the budget: this level's
        // table and buffers go first.
        spill = nil
        table.release()
        defer { unlink(path) }
        let reader = try BlockFileReader(path: path)
        let offsets = try reader.readIndex(expectedPartitions: 16)
        for b in 0..<16 where offsets[b] < offsets[b + 1] {
            let sub = BytesAggregator(budget: budget, spillPrefix: "\(spillPrefix).b\(b)", metrics: metrics,
                                      level: level + 1, combine: combine)
            try reader.forEachRecord(from: offsets[b], to: offsets[b + 1]) { r in
                let key = try r.readLengthPrefixed()
                try sub.add(key, try V.decode(from: &r))
            }
            try sub.finish(emit)
        }
    }
}
