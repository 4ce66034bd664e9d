/// Skew statistics and decisions.
///
/// How Sluice handles hot keys, and why this way: the decision is taken *after* the map
/// stage has run, from real statistics, as Spark's adaptive execution does. Every map task
/// reports, per reduce partition, the records and bytes it wrote, and a Space-Saving sketch of
/// its most frequent keys. When a join's reduce stage becomes ready, the coordinator finds
/// partitions much larger than the median (`skewFactor` × median and at least
/// `skewMinBytes`) and splits each over S tasks: task s reads the big side's partition from
/// one contiguous group of map outputs (about 1/S of its bytes), and the other side's partition
/// whole — the small side's rows for the hot keys are replicated to every split. Nothing is
/// re-shuffled, nothing random is involved (a split is a fixed range of map outputs, so a
/// retried task reads exactly the same rows), and only the downstream stage is re-planned.
/// A sampling pass before the map stage would cost a second read of the input; the map
/// stage's own statistics are free.

/// The most frequent keys of a stream in bounded memory (Metwally et al.'s Space-Saving):
/// at most `capacity` counters; a new key replaces the smallest counter and inherits its count,
/// so every key with frequency above n / capacity is kept. Every record of the first 4096 is
/// counted, then one in 8 with weight 8 (cheap on big inputs, exact on small ones).
@usableFromInline struct HeavyHitters<K: Hashable> {
    @usableFromInline var counts: [K: Int] = [:]
    @usableFromInline let capacity: Int
    @usableFromInline var tick = 0

    @inlinable init(capacity: Int = 32) { self.capacity = capacity }

    /// Offers a key.
    @inlinable mutating func offer(_ key: K) {
        tick &+= 1
        let weight: Int
        if tick <= 4096 {
            weight = 1
        } else {
            guard tick & 7 == 0 else { return }
            weight = 8
        }
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

    /// The heaviest keys as (label, estimated records), heaviest first.
    @inlinable func top(_ n: Int = 8) -> [(String, Int)] {
        counts.sorted { $0.value > $1.value }.prefix(n).map { (String(describing: $0.key), $0.value) }
    }
}

/// One reduce task of a stage after skew planning: a partition, and for a split partition the
/// group of map outputs its big side reads.
@usableFromInline struct TaskSpec: Equatable {
    @usableFromInline var partition: Int
    @usableFromInline var shuffle: Int?
    @usableFromInline var maps: Range<Int>?

    func encode() -> [UInt8] {
        var w = ByteWriter()
        w.writeVarint(UInt64(partition))
        (shuffle ?? -1).encode(to: &w)
        (maps?.lowerBound ?? 0).encode(to: &w)
        (maps?.upperBound ?? 0).encode(to: &w)
        return w.bytes
    }

    static func decode(_ blob: [UInt8]) throws -> TaskSpec {
        try blob.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let partition = Int(try r.readVarint())
            let shuffle = try Int.decode(from: &r)
            let lo = try Int.decode(from: &r), hi = try Int.decode(from: &r)
            return TaskSpec(partition: partition, shuffle: shuffle < 0 ? nil : shuffle, maps: shuffle < 0 ? nil : lo..<hi)
        }
    }
}

/// Skew thresholds (`--skew-factor`, `--skew-min-bytes`, `--hot-key-share`, `--skew off`).
public struct SkewOptions: Sendable {
    /// Handle skewed join partitions by splitting them (on by default).
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
            let target = size / Int64(s)
            var start = 0, acc: Int64 = 0
            for m in 0..<bytes.count {
                acc += bytes[m][p]
                let remainingSplits = s - specs.filter { $0.partition == p }.count - 1
                if acc >= target && remainingSplits > 0 && m + 1 < bytes.count {
                    specs.append(TaskSpec(partition: p, shuffle: shuffle, maps: start..<(m + 1)))
                    start = m + 1
                    acc = 0
                }
            }
            specs.append(TaskSpec(partition: p, shuffle: shuffle, maps: start..<bytes.count))
        }
        return specs
    }
}
