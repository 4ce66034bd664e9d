#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A wide dependency: the parent's records are partitioned by key into R reduce partitions
/// (`PhysicalPlan.partitions(of:)`) and written by each map task as one partitioned file. The
/// coordinator cuts a stage at every one of these (Spark's ShuffleDependency / ShuffleMapStage).
///
/// The map task (and, for range partitioning, the key sampling) is a closure built by an
/// `@inlinable` operator, so it runs specialised for the job's key and value types.
public final class ShuffleDependency {
    @usableFromInline typealias MapTask = (TaskContext, Int, String) throws -> MapOutputStats
    /// Position in the deterministic traversal; -1 until the graph is sealed.
    @usableFromInline var id = -1
    /// The node whose records are shuffled (the last node of the map stage).
    let parent: AnyNode
    /// An explicit partition count requested by the job (otherwise `--partitions`).
    let requestedPartitions: Int?
    /// Computes a map task's partition and writes it, partitioned, to a path.
    @usableFromInline var mapTask: MapTask?
    /// Samples the keys of one parent partition (range partitioning only).
    @usableFromInline var sampleTask: ((TaskContext, Int) throws -> [UInt8])?
    /// Range bounds from the sample tasks' results, for a number of reduce partitions.
    @usableFromInline var boundsFromSamples: (([[UInt8]], Int) throws -> [UInt8])?
    /// How the map side writes, for `explain`.
    let writeDescription: String
    /// Whether map tasks combine records by key before writing.
    let combinesOnMapSide: Bool
    /// How skewed reduce partitions of this shuffle may be split.
    @usableFromInline var skewSplitting = SkewSplitting.never
    /// The operator's own skew setting.
    @usableFromInline var skewHint = SkewHint.auto

    @usableFromInline init(parent: AnyNode, partitions: Int?, writeDescription: String, combines: Bool) {
        self.parent = parent
        requestedPartitions = partitions
        self.writeDescription = writeDescription
        combinesOnMapSide = combines
    }

    /// Range partitioning needs key bounds from a sample before the map stage runs (when it
    /// has more than one partition: `PhysicalPlan.needsSample`).
    var isRangePartitioned: Bool { sampleTask != nil }

    /// Runs map task `partition`: computes the parent's partition and writes it, partitioned,
    /// to `path`.
    func runMapTask(_ task: TaskContext, partition: Int, path: String) throws -> MapOutputStats {
        guard let mapTask else { throw JobError.invalid("shuffle \(id) has no map task (an operator bug)") }
        return try mapTask(task, partition, path)
    }

    /// Samples the keys of one parent partition (encoded) — the sample stage's task.
    func sample(_ task: TaskContext, partition: Int) throws -> [UInt8] { try sampleTask?(task, partition) ?? [] }

    /// Turns every sample task's result into the bounds blob for `partitions` reduce
    /// partitions, sent with map tasks (`PhysicalPlan.withBounds`).
    func bounds(fromSamples samples: [[UInt8]], partitions: Int) throws -> [UInt8] {
        try boundsFromSamples?(samples, partitions) ?? []
    }

    /// Path of a committed map output.
    static func outputPath(workDir: String, shuffle: Int, map: Int) -> String {
        "\(workDir)/shuffle-\(shuffle)/map-\(map).out"
    }

    /// Path of partial aggregation `index` of a split reduce partition (two-step aggregation).
    static func partialPath(workDir: String, shuffle: Int, partition: Int, index: Int) -> String {
        "\(workDir)/shuffle-\(shuffle)/partial-\(partition)-\(index).out"
    }

    /// Writes this task's partial aggregation: `body` adds the records; the file is written
    /// under a name of its own and renamed into place (a retried or speculative attempt
    /// writes the same records, so whichever rename lands last is as good).
    @usableFromInline func writePartial(_ task: TaskContext, partition: Int, index: Int,
                                        _ body: (PartitionedWriter) throws -> Void) throws {
        let writer = PartitionedWriter(partitions: 1, budget: task.memoryBudget / 4,
                                       spillPrefix: task.tempPrefix + ".partial", metrics: task.metrics)
        try body(writer)
        let final = ShuffleDependency.partialPath(workDir: task.workDir, shuffle: id, partition: partition, index: index)
        let temp = final + ".attempt\(task.attempt).tmp" // beside it: the rename stays on one filesystem
        _ = try writer.commit(to: temp)
        guard rename(temp, final) == 0 else { throw SystemError("cannot commit \(final)") }
    }

    /// Calls `decode` for every record of the `count` partial aggregations of `partition`.
    @usableFromInline func readPartials(_ task: TaskContext, partition: Int, count: Int,
                                        _ decode: (inout ByteReader) throws -> Void) throws {
        for index in 0..<count {
            let path = ShuffleDependency.partialPath(workDir: task.workDir, shuffle: id, partition: partition, index: index)
            let reader = try BlockFileReader(path: path)
            let offsets = try reader.readIndex(expectedPartitions: 1)
            task.metrics.shuffleBytesRead += offsets[1] - offsets[0]
            try reader.forEachRecord(from: offsets[0], to: offsets[1], decode)
        }
    }

    /// Calls `decode` for every record of reduce partition `partition`, reading it from every
    /// map task's committed output.
    @usableFromInline func readPartition(_ task: TaskContext, partition: Int, _ decode: (inout ByteReader) throws -> Void) throws {
        // A split of a skewed partition reads its group of map outputs only (see `SkewPlanner`).
        let mapTasks = task.plan.mapTasks(of: self), partitions = task.plan.partitions(of: self)
        let maps = task.spec?.shuffle == id ? task.spec?.maps ?? 0..<mapTasks : 0..<mapTasks
        for m in maps {
            let path = ShuffleDependency.outputPath(workDir: task.workDir, shuffle: id, map: m)
            let reader = try BlockFileReader(path: path, shuffle: id, mapTask: m)
            let offsets = try reader.readIndex(expectedPartitions: partitions)
            task.metrics.shuffleBytesRead += offsets[partition + 1] - offsets[partition]
            try reader.forEachRecord(from: offsets[partition], to: offsets[partition + 1], decode)
        }
    }

    /// Calls `body` with each map task's committed output and the byte range of reduce
    /// partition `partition` in it: for readers that take whole blocks (the byte sort reads
    /// them straight into its buffer).
    @usableFromInline func readPartitionSegments(_ task: TaskContext, partition: Int,
                                                 _ body: (BlockFileReader, Int64, Int64) throws -> Void) throws {
        let mapTasks = task.plan.mapTasks(of: self), partitions = task.plan.partitions(of: self)
        let maps = task.spec?.shuffle == id ? task.spec?.maps ?? 0..<mapTasks : 0..<mapTasks
        for m in maps {
            let path = ShuffleDependency.outputPath(workDir: task.workDir, shuffle: id, map: m)
            let reader = try BlockFileReader(path: path, shuffle: id, mapTask: m)
            let offsets = try reader.readIndex(expectedPartitions: partitions)
            task.metrics.shuffleBytesRead += offsets[partition + 1] - offsets[partition]
            try body(reader, offsets[partition], offsets[partition + 1])
        }
    }
}

/// How values are folded per key: Spark's `Aggregator` (createCombiner, mergeValue,
/// mergeCombiners), with in-place updates.
@usableFromInline struct Aggregator<V, C> {
    @usableFromInline var create: (V) throws -> C
    @usableFromInline var mergeValue: (inout C, V) throws -> Void
    @usableFromInline var mergeCombiners: (inout C, C) throws -> Void
    /// Bytes a `mergeValue` adds, for combiners that grow (lists); nil for fixed-size ones.
    @usableFromInline var growsBy: ((V) -> Int)?

    @inlinable init(create: @escaping (V) throws -> C, mergeValue: @escaping (inout C, V) throws -> Void,
                    mergeCombiners: @escaping (inout C, C) throws -> Void, growsBy: ((V) -> Int)? = nil) {
        self.create = create
        self.mergeValue = mergeValue
        self.mergeCombiners = mergeCombiners
        self.growsBy = growsBy
    }
}

/// The partition of a key under hash partitioning (stable across processes).
@inlinable package func hashPartition<K: ShuffleKey>(_ key: K, _ partitions: Int) -> Int {
    Int(StableHasher.hash(key) % UInt64(partitions))
}

/// A small deterministic generator (SplitMix64) for sampling and salting: never the system
/// generator, so a retried task makes exactly the same choices.
@usableFromInline struct SplitMix64: RandomNumberGenerator {
    @usableFromInline var state: UInt64
    @inlinable init(seed: UInt64) { state = seed }
    @inlinable mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
