#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The committed map outputs of every shuffle (Spark's MapOutputTracker): which attempt's
/// file is committed for each map task, where it is, its per-partition sizes and the hot keys
/// its task sketched — the skew planner's input.
final class MapOutputTracker {
    /// One committed map output.
    struct Output {
        var attempt: Int
        var path: String
        /// Bytes per reduce partition (empty when the task reported no statistics, e.g. reused).
        var bytes: [Int64]
    }

    private var outputs: [Int: [Output?]] = [:]
    private var hotKeys: [Int: [String: Int]] = [:]
    private var sketched: [Int: Int] = [:]

    /// `mapTasks`: shuffle id → number of map outputs.
    init(mapTasks: [Int: Int]) {
        for (shuffle, n) in mapTasks { outputs[shuffle] = Array(repeating: nil, count: n) }
    }

    /// Commits `file` as map output `map` of `shuffle` by renaming it to `path` (the first
    /// attempt to get here wins; the scheduler discards later ones).
    func commit(shuffle: Int, map: Int, attempt: Int, file: String, to path: String, stats: MapOutputStats?) throws {
        guard rename(file, path) == 0 else { throw SystemError("cannot commit map output \(path)") }
        outputs[shuffle]?[map] = Output(attempt: attempt, path: path, bytes: stats?.bytes ?? [])
        if let stats {
            for (k, n) in stats.hotKeys { hotKeys[shuffle, default: [:]][k, default: 0] += n }
            sketched[shuffle, default: 0] += stats.sketched
        }
    }

    /// Records an output committed by an earlier run (`--resume`).
    func reuse(shuffle: Int, map: Int, path: String) {
        outputs[shuffle]?[map] = Output(attempt: -1, path: path, bytes: [])
    }

    /// Forgets a lost output and removes its file (its map task runs again).
    func unregister(shuffle: Int, map: Int) {
        if let path = outputs[shuffle]?[map]?.path { unlink(path) }
        outputs[shuffle]?[map] = nil
    }

    func output(shuffle: Int, map: Int) -> Output? { outputs[shuffle]?[map] ?? nil }

    /// Bytes written per map output and reduce partition, when every committed output
    /// reported them; nil otherwise (no statistics to plan skew from).
    func bytes(shuffle: Int, partitions: Int) -> [[Int64]]? {
        guard let list = outputs[shuffle], !list.isEmpty,
              list.allSatisfy({ $0 != nil && $0!.bytes.count == partitions }) else { return nil }
        return list.map { $0!.bytes }
    }

    func totalBytes(shuffle: Int) -> Int64 {
        (outputs[shuffle] ?? []).reduce(0) { $0 + ($1?.bytes.reduce(0, +) ?? 0) }
    }

    /// Keys holding more than `share` of the records the sketches saw (before any map-side
    /// combine), heaviest first.
    func hotKeys(shuffle: Int, share: Double) -> [(key: String, share: Double)] {
        let total = sketched[shuffle] ?? 0
        guard total > 0 else { return [] }
        return (hotKeys[shuffle] ?? [:]).compactMap { k, n in
            Double(n) / Double(total) > share ? (k, min(1, Double(n) / Double(total))) : nil
        }.sorted { $0.share > $1.share }
    }
}
