import Sluice
/// The serving layer's answer: the newest batch view merged, through the monoid, with the
/// speed layer's state for the batches after its cut.
public struct LambdaView: Sendable {
    /// The merged view, sorted by key and window.
    public var rows: [ViewRow]
    /// Header names of the value columns.
    public var columns: [String]
    /// The batch view used (nil when none has landed).
    public var batchView: BatchView?
    /// The speed layer's offsets `[start, next)` (nil when it has never checkpointed).
    public var speedRange: Range<Int64>?
    /// Offsets `[0, coverageEnd)` are in the answer.
    public var coverageEnd: Int64
    /// The log's end when queried: offsets `[coverageEnd, logEnd)` are not in the answer yet.
    public var logEnd: Int64
    /// Late events the speed layer sent to its side output, in the batches served.
    public var lateEvents: Int64
}

/// A sealed speed-state file vanished while it was read (a newer batch view made the speed
/// layer drop it): the read is retried.
struct SealedStateVanished: Error {}

/// The merged view with what it is made of.
struct MergedView {
    var table: AggregateTable
    /// The speed layer's tables of the batches at and after the batch view's cut.
    var speedTables: [AggregateTable] = []
    var batchView: BatchView?
    var speed: SpeedState?
    var coverageEnd: Int64
    /// The offsets neither the batch view nor the speed layer covers.
    var missing: Range<Int64>?
    var lateEvents: Int64
}

/// The serving layer.
public enum Serving {
    /// The merged view of `job`'s lambda state; throws (naming the gap) when a batch range is
    /// missing — offsets after the batch view's cut that the speed layer never saw — and when
    /// the log does not hold what the state covers or is corrupt after it (every record not
    /// yet served is checked, so that corruption is never taken for the log's end).
    public static func query(job: StreamJob, log path: String, store: LambdaStore) throws -> LambdaView {
        let log = try EventLog(path: path)
        let program = try job.program(log: log)
        let merged = try merge(job: job, store: store, program: program)
        try store.checkHeld(byLog: path, end: try log.endOffset(), view: merged.batchView, speed: merged.speed)
        let logEnd = try log.read(from: merged.coverageEnd) { _ in }
        if let missing = merged.missing {
            throw LambdaError("missing batch range [\(missing.lowerBound), \(missing.upperBound)): the newest batch view ends at offset \(missing.lowerBound) but the speed layer's state starts at \(missing.upperBound) — run `sluice lambda batch \(job.name) --cut \(missing.upperBound)` (or later) to cover it")
        }
        guard merged.batchView != nil || merged.speed != nil else {
            throw LambdaError("nothing to serve for \(job.name) in \(store.folder): run `sluice lambda batch` or `sluice lambda speed` first")
        }
        return LambdaView(rows: program.rows(merged.table), columns: program.columns, batchView: merged.batchView,
                          speedRange: merged.speed.map { $0.start..<$0.next }, coverageEnd: merged.coverageEnd,
                          logEnd: logEnd, lateEvents: merged.lateEvents)
    }

    /// Merges the newest batch view with the speed state of the batches at and after its cut.
    /// The checkpoint is read before the views: a view the speed layer has applied is then
    /// always seen. A sealed file deleted meanwhile (an even newer view) restarts the read.
    /// With `whole` false the table stays empty: the caller merges the batch view's parts and
    /// the speed tables part by part (`sluice compare`).
    static func merge(job: StreamJob, store: LambdaStore, program: any StreamProgram, whole: Bool = true) throws -> MergedView {
        let config = try store.requireConfig(job.name)
        var attempts = 0
        while true {
            do {
                return try mergeOnce(config: config, store: store, program: program, whole: whole)
            } catch is SealedStateVanished where attempts < 10 {
                attempts += 1
            }
        }
    }

    private static func mergeOnce(config: LambdaStore.Config, store: LambdaStore, program: any StreamProgram,
                                  whole: Bool) throws -> MergedView {
        let speed = try SpeedState.load(store, program: program)
        let view = try store.newestView()
        if let view, view.batchSize != config.batchSize {
            throw LambdaError("batch view \(view.path) uses batches of \(view.batchSize) events, \(store.configPath) \(config.batchSize)")
        }
        let batch = view?.batchId ?? 0
        let cut = view?.cut ?? 0
        let table = try view.flatMap { whole ? try BatchLayer.load($0, program: program) : nil } ?? program.makeTable()
        var merged = MergedView(table: table, batchView: view, speed: speed, coverageEnd: cut, missing: nil, lateEvents: 0)
        guard let speed else { return merged }
        if speed.start > cut { merged.missing = cut..<speed.start }
        for b in speed.batches.values.sorted(by: { $0.id < $1.id }) where b.id >= batch {
            let t = try b.table ?? SpeedState.loadSealed(store, b.id, program: program)
            if whole { program.merge(t, into: table) }
            merged.speedTables.append(t)
            merged.lateEvents += b.late
        }
        merged.coverageEnd = max(cut, speed.next)
        return merged
    }
}
