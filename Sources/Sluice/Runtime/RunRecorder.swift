import Foundation

/// What a run tells the world: the event log (`RunEventLog`), log lines, live progress
/// snapshots, and at the end the per-stage summary. It only records; decisions are the
/// scheduler's.
final class RunRecorder {
    let events: RunEventLog
    let jobName: String
    private let logSink: (RunLogLevel, String) -> Void
    private let progressSink: ((ProgressSnapshot) -> Void)?
    private var lastProgress: Int64 = 0

    private(set) var metrics: [TaskMetrics]
    private var taskMicros: [[Int64]]
    private var taskRecords: [[Int]]
    private var perWorker: [[Int: Int]]
    private(set) var skewNotes: [Int: [String]] = [:]
    var workersReplaced = 0
    var mapTasksRerun = 0
    var speculativeAttempts = 0
    var reusedMapTasks = 0

    init(eventLog path: String, jobName: String, stages: Int, options: RunOptions) throws {
        events = try RunEventLog(path: path)
        self.jobName = jobName
        logSink = options.log ?? { _, _ in }
        progressSink = options.progress
        metrics = (0..<stages).map { _ in TaskMetrics() }
        taskMicros = Array(repeating: [], count: stages)
        taskRecords = Array(repeating: [], count: stages)
        perWorker = Array(repeating: [:], count: stages)
    }

    func log(_ message: String, _ level: RunLogLevel = .warning) { logSink(level, message) }

    func emit(_ event: String, _ fields: [String: Any] = [:]) { events.emit(event, fields) }

    /// A task attempt's first success: its metrics count for its stage.
    func taskCommitted(_ a: TaskAttempt, _ report: Message.TaskReport, worker: Int) {
        metrics[a.stage].add(report.metrics)
        taskMicros[a.stage].append(report.micros)
        taskRecords[a.stage].append(report.metrics.recordsRead)
        perWorker[a.stage][worker, default: 0] += 1
    }

    /// A worker started, at the beginning or in place of another.
    func workerStarted(_ w: PooledWorker, replacing old: PooledWorker? = nil) {
        var fields: [String: Any] = ["worker": w.id, "location": w.handle.location]
        if let pid = w.handle.processID { fields["pid"] = Int(pid) }
        if let old { fields["replaces"] = old.id }
        emit("worker_start", fields)
    }

    func noteSkew(stage: Int, _ note: String) {
        skewNotes[stage, default: []].append(note)
        log(note, .info)
    }

    /// Sends a progress snapshot: after task events, and at most once a second otherwise.
    func progress(_ plan: PhysicalPlan, _ scheduler: StageScheduler, running: [TaskAttempt], finished: Bool = false, force: Bool = false) {
        guard let sink = progressSink else { return }
        let now = monotonicMicros()
        guard force || finished || now - lastProgress >= 1_000_000 else { return }
        lastProgress = now
        var lines: [ProgressSnapshot.StageProgress] = []
        for stage in plan.stages {
            guard let set = scheduler.taskSets[stage.id], !scheduler.done[stage.id] || finished else { continue }
            let m = metrics[stage.id]
            lines.append(.init(id: stage.id, kind: stage.kindName, done: set.finishedCount,
                               running: running.filter { $0.stage == stage.id }.count, total: set.count,
                               records: m.recordsRead, bytes: m.bytesRead + m.shuffleBytesRead, spills: m.spills,
                               retries: set.retries,
                               elapsedMicros: (scheduler.done[stage.id] ? scheduler.finished[stage.id] : now) - scheduler.started[stage.id]))
        }
        sink(ProgressSnapshot(stages: lines, finished: finished))
    }

    /// What every stage did, for `JobResult`.
    func summaries(_ plan: PhysicalPlan, _ scheduler: StageScheduler, _ outputs: MapOutputTracker,
                   hotKeyShare: Double) -> [StageSummary] {
        plan.stages.map { stage in
            let m = metrics[stage.id]
            let micros = taskMicros[stage.id].sorted(), records = taskRecords[stage.id].sorted()
            let maxMicros = micros.last ?? 0, medianMicros = micros.isEmpty ? 0 : micros[micros.count / 2]
            let maxRecords = records.last ?? 0, medianRecords = records.isEmpty ? 0 : records[records.count / 2]
            let hot = stage.shuffleInputs.flatMap { outputs.hotKeys(shuffle: $0.id, share: hotKeyShare) }.sorted { $0.share > $1.share }
            return StageSummary(id: stage.id, kind: stage.kindName, operators: stage.chain.map(plan.label).joined(separator: " → "),
                                tasks: scheduler.taskSets[stage.id]?.count ?? stage.taskCount,
                                recordsIn: m.recordsRead, recordsOut: m.recordsWritten, bytesRead: m.bytesRead,
                                shuffleBytesWritten: m.shuffleBytesWritten, shuffleBytesRead: m.shuffleBytesRead,
                                outputBytes: m.outputBytes, spills: m.spills, spillBytes: m.spillBytes,
                                retries: scheduler.taskSets[stage.id]?.retries ?? 0,
                                wallMicros: scheduler.finished[stage.id] - scheduler.started[stage.id],
                                maxTaskMicros: maxMicros, medianTaskMicros: medianMicros, peakWorkerRSSKiB: m.peakRSSKiB,
                                maxTaskRecords: maxRecords, medianTaskRecords: medianRecords,
                                skewed: (maxMicros > 3 * max(medianMicros, 1) && maxMicros > 200_000)
                                    || (maxRecords > 5 * max(medianRecords, 1) && maxRecords > 10_000),
                                hotKeys: hot, skewNotes: skewNotes[stage.id] ?? [], tasksPerWorker: perWorker[stage.id])
        }
    }

    /// Copies the event log to `target` (replacing an older copy); returns `target`, or nil
    /// when it cannot be written there.
    func place(at target: String) -> String? {
        let fm = FileManager.default
        try? fm.removeItem(atPath: target)
        do {
            try fm.copyItem(atPath: events.path, toPath: target)
            return target
        } catch {
            log("cannot write the event log to \(target): \(error)")
            return nil
        }
    }
}
