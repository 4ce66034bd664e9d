/// A wide dependency: the parent's records are partitioned by key into `partitions` reduce
/// partitions and written by each map task as one partitioned file. The coordinator cuts a
/// stage at every one of these (Spark's ShuffleDependency / ShuffleMapStage).
class ShuffleDependency {
    /// Position in the deterministic traversal; -1 until the graph is sealed.
    var id = -1
    /// The node whose records are shuffled (the last node of the map stage).
    let parent: AnyNode
    /// Number of reduce partitions (R).
    var partitions = 0
    /// An explicit partition count requested by the job (otherwise `--partitions`).
    let requestedPartitions: Int?

    init(parent: AnyNode, partitions: Int?) {
        self.parent = parent
        requestedPartitions = partitions
    }

    /// How the map side writes, for `explain`.
    var writeDescription: String { "hash-partition" }
    /// Whether map tasks combine records by key before writing.
    var combinesOnMapSide: Bool { false }
    /// Number of map tasks (the parent's partitions).
    var mapTasks: Int { parent.partitionCount }

    /// Runs map task `partition`: computes the parent's partition and writes it, partitioned,
    /// to `path`.
    func runMapTask(_ task: TaskContext, partition: Int, path: String) throws -> MapOutputStats {
        fatalError("abstract")
    }

    /// Range partitioning needs key bounds from a sample before the map stage runs.
    var needsSample: Bool { false }
    /// Samples the keys of one parent partition (encoded) — the sample stage's task.
    func sample(_ task: TaskContext, partition: Int) throws -> [UInt8] { [] }
    /// Turns every sample task's result into the bounds blob sent with map tasks.
    func bounds(fromSamples samples: [[UInt8]]) throws -> [UInt8] { [] }
    /// Installs the bounds blob (in every process that runs map tasks).
    func install(bounds: [UInt8]) throws {}

    /// Path of a committed map output.
    static func outputPath(workDir: String, shuffle: Int, map: Int) -> String {
        "\(workDir)/shuffle-\(shuffle)/map-\(map).out"
    }

    /// Calls `decode` for every record of reduce partition `partition`, reading it from every
    /// map task's committed output.
    func readPartition(_ task: TaskContext, partition: Int, _ decode: (inout ByteReader) throws -> Void) throws {
        for m in 0..<mapTasks {
            let path = ShuffleDependency.outputPath(workDir: task.workDir, shuffle: id, map: m)
            let reader = try BlockFileReader(path: path, shuffle: id, mapTask: m)
            let offsets = try reader.readIndex(expectedPartitions: partitions)
            task.metrics.shuffleBytesRead += offsets[partition + 1] - offsets[partition]
            try reader.forEachRecord(from: offsets[partition], to: offsets[partition + 1], decode)
        }
    }
}

/// How values are folded per key: Spark's `Aggregator` (createCombiner, mergeValue,
/// mergeCombiners), with in-place updates.
struct Aggregator<V, C> {
    var create: (V) throws -> C
    var mergeValue: (inout C, V) throws -> Void
    var mergeCombiners: (inout C, C) throws -> Void
    /// Bytes a `mergeValue` adds (non-zero when the combiner grows, as lists do).
    var growsBy: ((V) -> Int)? = nil
}

@inlinable func hashPartition<K: ShuffleKey>(_ key: K, _ partitions: Int) -> Int {
    Int(StableHasher.hash(key) % UInt64(partitions))
}

/// A shuffle of `(K, V)` that folds values into combiners `C`, on the map side first when
/// `mapSideCombine` (reduceByKey, aggregateByKey, countByKey, distinct), and on the reduce
/// side in any case.
final class CombiningShuffle<K: ShuffleKey, V: BinaryCodable, C: BinaryCodable>: ShuffleDependency {
    let source: Node<(K, V)>
    let aggregator: Aggregator<V, C>
    let mapSideCombine: Bool

    init(_ source: Node<(K, V)>, aggregator: Aggregator<V, C>, mapSideCombine: Bool, partitions: Int?) {
        self.source = source
        self.aggregator = aggregator
        self.mapSideCombine = mapSideCombine
        super.init(parent: source, partitions: partitions)
    }

    override var combinesOnMapSide: Bool { mapSideCombine }
    override var writeDescription: String { mapSideCombine ? "map-side combine → hash-partition" : "hash-partition" }

    override func runMapTask(_ task: TaskContext, partition: Int, path: String) throws -> MapOutputStats {
        let r = partitions
        let writer = PartitionedWriter(partitions: r, budget: task.memoryBudget / 4,
                                       spillPrefix: task.tempPrefix + ".map", metrics: task.metrics)
        if !mapSideCombine {
            try source.compute(task, partition: partition) { kv in
                try writer.add(partition: hashPartition(kv.0, r)) { w in
                    kv.0.encode(to: &w)
                    kv.1.encode(to: &w)
                }
            }
            return try writer.commit(to: path)
        }
        // Map-side combine: an in-memory table, flushed into the (spilling) writer whenever
        // it outgrows its share of the budget. Duplicate keys across flushes are merged by
        // the reducers.
        var table: [K: C] = [:]
        var memory = 0
        let budget = max(task.memoryBudget * 3 / 4, 1 << 16)
        let agg = aggregator
        func flush() throws {
            for (k, c) in table {
                try writer.add(partition: hashPartition(k, r)) { w in
                    k.encode(to: &w)
                    c.encode(to: &w)
                }
            }
            table = [:]
            memory = 0
        }
        try source.compute(task, partition: partition) { kv in
            if let i = table.index(forKey: kv.0) {
                try agg.mergeValue(&table.values[i], kv.1)
                memory += agg.growsBy?(kv.1) ?? 0
            } else {
                let c = try agg.create(kv.1)
                memory += kv.0.estimatedMemory + c.estimatedMemory + 48
                table[kv.0] = c
            }
            if memory > budget {
                try flush()
                task.metrics.spills += 1
            }
        }
        try flush()
        return try writer.commit(to: path)
    }
}

/// A shuffle of `(K, V)` records as they are (groupByKey-style consumers, cogroup, join,
/// sortByKey), hash-partitioned.
class KeyValueShuffle<K: ShuffleKey, V: BinaryCodable>: ShuffleDependency {
    let source: Node<(K, V)>

    init(_ source: Node<(K, V)>, partitions: Int?) {
        self.source = source
        super.init(parent: source, partitions: partitions)
    }

    func partition(of key: K) -> Int { hashPartition(key, partitions) }

    override func runMapTask(_ task: TaskContext, partition: Int, path: String) throws -> MapOutputStats {
        let writer = PartitionedWriter(partitions: partitions, budget: task.memoryBudget,
                                       spillPrefix: task.tempPrefix + ".map", metrics: task.metrics)
        try source.compute(task, partition: partition) { kv in
            try writer.add(partition: self.partition(of: kv.0)) { w in
                kv.0.encode(to: &w)
                kv.1.encode(to: &w)
            }
        }
        return try writer.commit(to: path)
    }
}

/// sortByKey's shuffle: range partitioning by key bounds taken from a sample of the keys,
/// so partition i holds only keys ordered before those of partition i+1 (a total order
/// across all output parts). Samples are deterministic (seeded by partition), so a re-run
/// gives the same bounds.
final class RangeShuffle<K: ShuffleKey & Comparable, V: BinaryCodable>: KeyValueShuffle<K, V> {
    let ascending: Bool
    private var boundKeys: [K] = []

    init(_ source: Node<(K, V)>, ascending: Bool, partitions: Int?) {
        self.ascending = ascending
        super.init(source, partitions: partitions)
    }

    override var writeDescription: String { "range-partition (bounds from a key sample)" }
    override var needsSample: Bool { partitions > 1 }

    override func partition(of key: K) -> Int {
        // First bound the key is ordered before (binary search).
        var lo = 0, hi = boundKeys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let before = ascending ? key <= boundKeys[mid] : key >= boundKeys[mid]
            if before { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    override func sample(_ task: TaskContext, partition: Int) throws -> [UInt8] {
        // Reservoir sample of the partition's keys with a generator seeded by the partition.
        let size = max(64, 20 * partitions)
        var reservoir: [K] = []
        var seen = 0
        var rng = SplitMix64(seed: UInt64(partition) &+ 0x5AFE)
        try source.compute(task, partition: partition) { kv in
            seen += 1
            if reservoir.count < size {
                reservoir.append(kv.0)
            } else {
                let j = Int(rng.next() % UInt64(seen))
                if j < size { reservoir[j] = kv.0 }
            }
        }
        var w = ByteWriter()
        w.writeVarint(UInt64(seen))
        reservoir.encode(to: &w)
        return w.bytes
    }

    override func bounds(fromSamples samples: [[UInt8]]) throws -> [UInt8] {
        // Weight each task's sample by how many records it stands for (Spark's RangePartitioner).
        var weighted: [(K, Double)] = []
        for blob in samples {
            try blob.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let seen = Double(try r.readVarint())
                let keys = try [K].decode(from: &r)
                for k in keys { weighted.append((k, seen / Double(max(keys.count, 1)))) }
            }
        }
        weighted.sort { ascending ? $0.0 < $1.0 : $0.0 > $1.0 }
        let total = weighted.reduce(0) { $0 + $1.1 }
        var result: [K] = []
        var acc = 0.0
        var target = total / Double(partitions)
        for (k, w) in weighted where result.count < partitions - 1 {
            acc += w
            if acc >= target {
                if result.last.map({ $0 != k }) ?? true { result.append(k) }
                target += total / Double(partitions)
            }
        }
        var w = ByteWriter()
        result.encode(to: &w)
        return w.bytes
    }

    override func install(bounds: [UInt8]) throws {
        boundKeys = try bounds.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            return try [K].decode(from: &r)
        }
    }
}

/// A small deterministic generator (SplitMix64) for sampling and salting: never the system
/// generator, so a retried task makes exactly the same choices.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
