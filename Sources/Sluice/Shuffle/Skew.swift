/// Skew statistics and decisions.
///
/// How Sluice handles hot keys, and why this way: the decision is taken *after* the map
/// stage has run, from real statistics, as Spark's adaptive execution does. Every map task
/// reports, per reduce partition, the records and bytes it wrote, and a Space-Saving sketch of
/// its most frequent keys. When a reduce stage becomes ready, the coordinator finds
/// partitions much larger than the median (`skewFactor` × median and at least
/// `skewMinBytes`) and splits each over S tasks, each reading the partition from one
/// contiguous group of map outputs (about 1/S of its bytes). The group is the salt: it is a
/// fixed range of map outputs, so a retried task reads exactly the same rows, and nothing
/// random is involved.
///
/// - Joins: the big side is split; every split reads the other side's partition whole, so
///   the small side's rows for the hot keys are replicated to every split.
/// - Aggregations (`groupByKey`, `aggregateByKey`, `reduceByKey`, `distinct`): two steps.
///   Each split folds its rows into partial combiners and writes them to a partial file; one
///   merge task per split partition then merges the partials with the aggregator's
///   `mergeCombiners` (removing the salt) and runs the rest of the stage.
///
/// Nothing is re-shuffled and only the downstream stage is re-planned. A sampling pass
/// before the map stage would cost a second read of the input and a fixed extra shuffle; the
/// map stage's own statistics are free. Aggregations are split in any reduce stage (in a map
/// stage the merge task writes the partition's map output); joins in result stages only (a
/// split join would write several map outputs for one partition).

/// The most frequent keys of a stream in bounded memory (Metwally et al.'s Space-Saving):
/// at most `capacity` counters; a new key replaces the smallest counter and inherits its count,
/// so every key with frequency above n / capacity is kept. Every record of the first `exact`
/// is counted, then one in `stride` with weight `stride` (cheap on big inputs, exact on small
/// ones); `tick` is the number of records offered.
@usableFromInline struct HeavyHitters<K: Hashable> {
    @usableFromInline var counts: [K: Int] = [:]
    @usableFromInline let capacity: Int
    @usableFromInline let exact: Int
    /// A power of two.
    @usableFromInline let stride: Int
    @usableFromInline var tick = 0

    @inlinable init(capacity: Int = 32, exact: Int = 4096, stride: Int = 8) {
        precondition(stride > 0 && stride & (stride - 1) == 0, "the sampling stride must be a power of two")
        self.capacity = capacity
        self.exact = exact
        self.stride = stride
    }

    /// Offers a key.
    @inlinable mutating func offer(_ key: K) { offer { key } }

    /// Offers a record whose key `makeKey` builds only when it is sampled (a borrowed key is
    /// copied for one record in `stride`, not for every one).
    @inlinable mutating func offer(_ makeKey: () -> K) {
        tick &+= 1
        if tick <= exact {
            count(makeKey(), weight: 1)
        } else if tick & (stride - 1) == 0 {
            count(makeKey(), weight: stride)
        }
    }

    @inlinable mutating func count(_ key: K, weight: Int) {
        if let i = counts.index(forKey: key) {
            counts.values[i] += weight
        } else if counts.count < capacity {
            counts[key] = weight
        } else {
            let smallest = counts.min { $0.value < $1.value }!
            counts.removeValue(forKey: smallest.key)
            counts[key] = smallest.value + weight
        }
    }

    /// The heaviest keys as (label, estimated records), heaviest first. A label is cut at 200
    /// characters: a huge key must not travel whole to the coordinator and its summary.
    @inlinable func top(_ n: Int = 8) -> [(String, Int)] {
        counts.sorted { $0.value > $1.value }.prefix(n).map { entry in
            let label = String(describing: entry.key)
            return (label.count > 200 ? String(label.prefix(200)) + "…" : label, entry.value)
        }
    }
}

/// One reduce task of a stage after skew planning: a partition, and for a split partition the
/// group of map outputs it reads from `shuffle` — or, for a two-step aggregation, which
/// partial it writes or how many partials it merges.
@usableFromInline struct TaskSpec: Equatable {
    @usableFromInline var partition: Int
    @usableFromInline var shuffle: Int?
    @usableFromInline var maps: Range<Int>?
    /// A partial aggregation: folds `maps` into partial file `partial` and emits nothing.
    @usableFromInline var partial: Int?
    /// A merge: merges `merges` partial files of the partition, then runs the rest of the stage.
    @usableFromInline var merges: Int?

    @usableFromInline init(partition: Int, shuffle: Int? = nil, maps: Range<Int>? = nil, partial: Int? = nil, merges: Int? = nil) {
        self.partition = partition
        self.shuffle = shuffle
        self.maps = maps
        self.partial = partial
        self.merges = merges
    }

    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.writeVarint(UInt64(partition))
        (shuffle ?? -1).encode(to: &w)
        (maps?.lowerBound ?? 0).encode(to: &w)
        (maps?.upperBound ?? -1).encode(to: &w)
        (partial ?? -1).encode(to: &w)
        (merges ?? -1).encode(to: &w)
        return w.bytes
    }

    static func decode(_ blob: [UInt8]) throws -> TaskSpec {
        try blob.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let partition = Int(try r.readVarint())
            let shuffle = try Int.decode(from: &r)
            let lo = try Int.decode(from: &r), hi = try Int.decode(from: &r)
            let partial = try Int.decode(from: &r), merges = try Int.decode(from: &r)
            return TaskSpec(partition: partition, shuffle: shuffle < 0 ? nil : shuffle, maps: hi < 0 ? nil : lo..<hi,
                            partial: partial < 0 ? nil : partial, merges: merges < 0 ? nil : merges)
        }
    }
}

/// A per-operator skew setting (`groupByKey(skew: .split(8))`), over the run's `--skew`.
public enum SkewHint: Sendable, Equatable {
    /// Split skewed partitions when the run's thresholds find them (the default).
    case auto
    /// Never split this operator's partitions.
    case off
    /// Split every partition above `--skew-factor` × the median, whatever its size, into
    /// this many tasks.
    case split(Int)
}

/// How a shuffle's skewed reduce partitions may be split.
@usableFromInline enum SkewSplitting: Sendable {
    /// Not at all (sorts, byte-key reductions: their map-side combine leaves one record per
    /// key and map task).
    case never
    /// One side of a join: split it, replicate the other side's partition to every split.
    case joinSide
    /// An aggregation: partial aggregations of the splits, merged by one task.
    case twoStep
}

/// Skew thresholds (`--skew-factor`, `--skew-min-bytes`, `--hot-key-share`, `--skew off`).
public struct SkewOptions: Sendable {
    /// Split skewed join and aggregation partitions (on by default).
    public var enabled = true
    /// A partition is skewed when larger than this many times the median (Spark AQE: 5).
    public var factor = 5.0
    /// …and larger than this many bytes.
    public var minBytes: Int64 = 1 << 20
    /// A key is reported hot when it holds more than this share of a shuffle's records.
    public var hotKeyShare = 0.05
    /// Force S (splits per skewed partition); nil: chosen from the skew and the worker count.
    public var splits: Int?
    public init() {}
}

enum SkewPlanner {
    /// The shuffles read by `stage` whose skewed partitions may be split, and whether as a
    /// two-step aggregation (one aggregation shuffle) or as a join side. A map stage writes
    /// one output per partition, so only a two-step aggregation (whose merge writes it) can
    /// split there; a result stage takes both; a sample stage neither.
    static func splittable(_ stage: Stage) -> (shuffles: [ShuffleDependency], twoStep: Bool) {
        let inputs = stage.shuffleInputs
        let twoStep = inputs.count == 1 && inputs[0].skewSplitting == .twoStep
        switch stage.kind {
        case .result: break
        case .shuffleMap: guard twoStep else { return ([], false) }
        case .sample: return ([], false)
        }
        let shuffles = inputs.filter {
            $0.skewHint != .off && (twoStep || (inputs.count == 2 && $0.skewSplitting == .joinSide))
        }
        return (shuffles, twoStep)
    }

    /// What `explain` says of a stage's skew handling; nil when none applies.
    static func explain(_ stage: Stage) -> String? {
        let inputs = stage.shuffleInputs
        let (shuffles, twoStep) = splittable(stage)
        guard !shuffles.isEmpty else {
            return inputs.contains { $0.skewHint == .off } ? "off for this operator (skew: .off)" : nil
        }
        let forced = shuffles.compactMap { if case .split(let s) = $0.skewHint { return s } else { return nil } }.first
        let how = twoStep ? "aggregated in two steps (partials by map-output ranges, then a merge)"
                          : "split by map-output ranges of the larger side, the other side replicated"
        return "adaptive, after the map stage: a partition far above the median (--skew-factor, --skew-min-size) is "
            + how + (forced.map { "; \($0) splits forced by the operator" } ?? "")
    }

    /// Turns the splits of `specs` into a two-step aggregation: every split partition's
    /// splits become partial aggregations (listed first, so they start first), then one merge
    /// task per split partition, then the unsplit partitions. Workers take the first task that
    /// can run: the unsplit partitions fill in while a merge waits for its partials, and the
    /// merge (the stage's critical path) starts as soon as they are done.
    static func twoStep(_ specs: [TaskSpec]) -> [TaskSpec] {
        var partials: [TaskSpec] = [], whole: [TaskSpec] = [], merges: [TaskSpec] = []
        for p in Set(specs.map(\.partition)).sorted() {
            let group = specs.filter { $0.partition == p }
            guard group.count > 1 else {
                whole.append(contentsOf: group)
                continue
            }
            for (i, var spec) in group.enumerated() {
                spec.partial = i
                partials.append(spec)
            }
            merges.append(TaskSpec(partition: p, shuffle: group[0].shuffle, merges: group.count))
        }
        return partials + merges + whole
    }

    /// Splits each skewed partition of `shuffle` (bytes[m][p] from its map tasks) into groups
    /// of contiguous map outputs of roughly equal bytes. Returns the task list.
    static func plan(partitions: Int, bytes: [[Int64]], shuffle: Int, options: SkewOptions, workers: Int) -> [TaskSpec] {
        let perPartition = (0..<partitions).map { p in bytes.reduce(Int64(0)) { $0 + (p < $1.count ? $1[p] : 0) } }
        let sorted = perPartition.sorted()
        let median = max(sorted[sorted.count / 2], 1)
        var specs: [TaskSpec] = []
        for p in 0..<partitions {
            let size = perPartition[p]
            guard options.enabled, bytes.count > 1, Double(size) > options.factor * Double(median), size > options.minBytes else {
                specs.append(TaskSpec(partition: p))
                continue
            }
            // S: enough splits to bring the partition near the median, within the worker count
            // (more would only queue), never more than there are map outputs.
            let wanted = options.splits ?? min(Int((Double(size) / Double(median)).rounded(.up)), max(2, 2 * workers))
            let s = max(1, min(wanted, bytes.count))
            // Cut where the running total passes each 1/S boundary (so a few map outputs are
            // still cut S ways), and always keep one map output for every split still to come.
            var start = 0, acc: Int64 = 0, made = 0
            for m in 0..<bytes.count {
                acc += bytes[m][p]
                let mapsLeft = bytes.count - m - 1, splitsLeft = s - made - 1
                guard splitsLeft > 0, mapsLeft > 0 else { continue }
                if acc * Int64(s) >= size * Int64(made + 1) || mapsLeft <= splitsLeft {
                    specs.append(TaskSpec(partition: p, shuffle: shuffle, maps: start..<(m + 1)))
                    start = m + 1
                    made += 1
                }
            }
            specs.append(TaskSpec(partition: p, shuffle: shuffle, maps: start..<bytes.count))
        }
        return specs
    }
}
