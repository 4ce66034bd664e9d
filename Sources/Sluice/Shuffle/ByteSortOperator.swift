#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A key whose bytes are its order (memcmp, shorter first on a tie): `Bytes` and `ByteView`.
/// `sortByKey` over such keys takes the byte sort path (`sortByteKeys`), chosen statically by
/// overload as `reduceByKey` over `ByteView` is.
@usableFromInline protocol SortableBytes {
    /// Calls `body` with the key's bytes.
    func withSortBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    /// The key for bytes handed out by the sorter (valid during the call that hands them out).
    static func fromSorted(_ raw: UnsafeRawBufferPointer) -> Self
}

extension Bytes: SortableBytes {
    @inlinable func withSortBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }
    @inlinable static func fromSorted(_ raw: UnsafeRawBufferPointer) -> Bytes { Bytes(raw) }
}

extension ByteView: SortableBytes {
    @inlinable func withSortBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(raw) }
    @inlinable static func fromSorted(_ raw: UnsafeRawBufferPointer) -> ByteView { ByteView(raw) }
}

/// memcmp order of two byte strings, shorter first on a common prefix: <0, 0 or >0.
@inlinable @inline(__always) func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return Int(c) }
    }
    return a.count - b.count
}

/// A reservoir sample of one parent partition's keys (seeded by partition, so a re-run picks
/// the same keys), encoded with the records it saw for `rangeBounds`. `key` is called only for
/// the records kept.
///
/// The sample is drawn from the partition's first `sampleWindow` records only, as Hadoop's
/// `InputSampler.SplitSampler` and TeraSort's sampler read the start of each split: reading a
/// whole input once more only to sample it took a tenth of a sort's time. The partitions'
/// samples then weigh alike (split sizes are alike). Only balance depends on the sample, never
/// the result.
@inlinable func sampleKeys<T, K: BinaryCodable>(_ source: Node<T>, _ task: TaskContext, partition: Int, size: Int,
                                                key: (T) -> K) throws -> [UInt8] {
    var reservoir: [K] = []
    var seen = 0
    let window = max(sampleWindow, 64 * size)
    var rng = SplitMix64(seed: UInt64(partition) &+ 0x5AFE)
    do {
        try source.compute(task, partition: partition) { t in
            if seen == window { throw StopPipeline() }
            seen += 1
            if reservoir.count < size {
                reservoir.append(key(t))
            } else {
                let j = Int(rng.next() % UInt64(seen))
                if j < size { reservoir[j] = key(t) }
            }
        }
    } catch is StopPipeline {}
    var w = ByteWriter()
    w.writeVarint(UInt64(seen))
    reservoir.encode(to: &w)
    return w.bytes
}

/// How many records of a partition the range sample reads at most (see `sampleKeys`).
@inlinable var sampleWindow: Int { 200_000 }

/// Range bounds for `partitions` partitions from the sample tasks' results: each sampled key
/// weighs its partition's records over its sample size (Spark's RangePartitioner), and the
/// bounds cut the weighted, ordered keys into equal shares.
@inlinable func rangeBounds<K: BinaryCodable & Equatable>(_ samples: [[UInt8]], partitions: Int,
                                                        before: (K, K) -> Bool) throws -> [UInt8] {
    var weighted: [(K, Double)] = []
    for blob in samples {
        try blob.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let seen = Double(try r.readVarint())
            let keys = try [K].decode(from: &r)
            for k in keys { weighted.append((k, seen / Double(max(keys.count, 1)))) }
        }
    }
    weighted.sort { before($0.0, $1.0) }
    let total = weighted.reduce(0) { $0 + $1.1 }
    let step = total / Double(partitions)
    var result: [K] = []
    var acc = 0.0
    var target = step
    for (k, w) in weighted where result.count < partitions - 1 {
        acc += w
        if acc >= target {
            if result.last.map({ $0 != k }) ?? true { result.append(k) }
            target += step
        }
    }
    var w = ByteWriter()
    result.encode(to: &w)
    return w.bytes
}

/// `sortByKey` over byte keys (`Bytes`, `ByteView`): range-partitioned like the generic
/// `sortByKey`, but records cross the shuffle with their value's length (`SortRecord`), and
/// each reducer sorts them as bytes in a `ByteRecordSorter` (no decoding, no allocation per
/// record; a normalised prefix radix sort). Keys come out as `K.fromSorted` of the sorted bytes.
@inlinable func sortByteKeys<K: SortableBytes, V: BinaryCodable>(
    _ source: Node<(K, V)>, ascending: Bool, partitions: Int?
) -> Node<(K, V)> {
    let dep = ShuffleDependency(parent: source, partitions: partitions,
                                writeDescription: "range-partition (bounds from a key sample), keys as bytes",
                                combines: false)
    dep.mapTask = { [unowned dep] task, partition, path in
        let blob = task.plan.bounds(of: dep)
        let bounds: [Bytes] = blob.isEmpty ? [] : try blob.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            return try [Bytes].decode(from: &r)
        }
        let writer = PartitionedWriter(partitions: task.plan.partitions(of: dep), budget: task.memoryBudget,
                                       spillPrefix: task.tempPrefix + ".map", metrics: task.metrics)
        try source.compute(task, partition: partition) { kv in
            try kv.0.withSortBytes { key in
                // The first bound the key is not after (binary search).
                var lo = 0, hi = bounds.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    let c = bounds[mid].storage.withUnsafeBytes { compareBytes($0, key) }
                    if ascending ? c < 0 : c > 0 { lo = mid + 1 } else { hi = mid }
                }
                try writer.add(partition: lo) { w in SortRecord.write(key: key, to: &w) { kv.1.encode(to: &$0) } }
            }
        }
        return try writer.commit(to: path)
    }
    dep.sampleTask = { [unowned dep] task, partition in
        try sampleKeys(source, task, partition: partition, size: max(64, 20 * task.plan.partitions(of: dep))) { kv in
            kv.0.withSortBytes { Bytes($0) }
        }
    }
    dep.boundsFromSamples = { samples, partitions in
        try rangeBounds(samples, partitions: partitions) { (a: Bytes, b: Bytes) in ascending ? a < b : b < a }
    }
    let node = ClosureNode<(K, V)>(op: "sortByKey", parents: [source], shuffles: [dep], body: { task, partition, sink in
        let sorter = try ByteRecordSorter.make(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".sort",
                                           metrics: task.metrics, ascending: ascending)
        defer { ByteRecordSorter.keep(sorter) }
        try dep.readPartitionSegments(task, partition: partition) { reader, start, end in
            task.metrics.recordsRead += try sorter.add(reader, from: start, to: end)
        }
        try sorter.finish { key, value, _ in
            var r = ByteReader(value)
            try sink((K.fromSorted(key), try V.decode(from: &r)))
        }
    }, reference: { ref in
        // Stable: equal keys keep their input order, as the engine's merge does.
        try ref.records(of: source).enumerated().sorted { a, b in
            let c = a.element.0.withSortBytes { x in b.element.0.withSortBytes { y in compareBytes(x, y) } }
            if c != 0 { return ascending ? c < 0 : c > 0 }
            return a.offset < b.offset
        }.map(\.element)
    })
    node.ordersOutput = true
    return node
}
