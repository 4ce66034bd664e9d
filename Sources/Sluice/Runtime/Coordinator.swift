#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys
import Foundation

/// The coordinator: plans the job, starts the workers and runs the job to its end. It is a
/// short loop over the runtime's parts, each with one responsibility (Spark's split):
/// `StageScheduler` (ready stages, lost map outputs) and its `TaskSet`s (queue, attempts,
/// speculation), `WorkerPool` (workers, frames, liveness), `MapOutputTracker` (committed map
/// outputs and their statistics), `OutputCommitter` (part files and the job's commit) and
/// `RunRecorder` (event log, progress, summary). Single-threaded around `poll(2)`.
public final class Coordinator {
    let job: Job
    let arguments: JobArguments
    let options: RunOptions

    public init(job: Job, arguments: JobArguments, options: RunOptions) {
        self.job = job
        self.arguments = arguments
        self.options = options
    }

    /// Runs the job to completion; throws `JobError.badParameter` for a bad parameter or
    /// operator argument (found while the graph is built, before any worker starts), and
    /// `JobFailure` with a one-line reason otherwise.
    public func run() throws -> JobResult {
        // Writing to a worker that died must give EPIPE (a worker failure), not kill us.
        sluice_ignore_sigpipe()
        return try JobRun(job: job, arguments: arguments, options: options).execute()
    }
}

/// One run of a job: the parts of the runtime, wired together.
final class JobRun {
    let job: Job
    let options: RunOptions
    let started = monotonicMicros()
    let runID: String
    let graph: JobGraph
    /// The physical plan, completed as the run goes: range bounds from sample stages, skew
    /// specs from map-output statistics.
    var plan: PhysicalPlan
    let work: WorkFolder
    let committer: OutputCommitter
    let recorder: RunRecorder
    let scheduler: StageScheduler
    let tracker: MapOutputTracker
    let speculation: SpeculationPolicy?
    var pool: WorkerPool!
    /// Each stage's task results (counts, collected records), by task.
    var results: [[[UInt8]]]
    /// Workers lost while idle (a worker that cannot even start is not a task's fault).
    var idleLosses = 0

    init(job: Job, arguments: JobArguments, options: RunOptions) throws {
        self.job = job
        self.options = options
        runID = "\(getpid())-\(started)"
        let splits: [[InputSplit]]
        do {
            graph = try job.graph(arguments)
            splits = try PhysicalPlan.planSplits(graph, splitSize: options.splitSize, workers: options.workers)
            plan = try PhysicalPlan(graph: graph, options: options.planOptions, splits: splits)
        } catch JobError.badParameter(let reason) {
            throw JobError.badParameter(reason)
        } catch {
            throw JobFailure(description: "\(error)")
        }
        var outputs: [Int: String] = [:]
        for action in graph.actions { if let out = action.outputPath { outputs[action.index] = out } }
        committer = try OutputCommitter(outputs: outputs, runID: runID, overwrite: options.overwrite, compressed: options.compressOutput)
        let log = options.log
        work = try WorkFolder(path: options.workDir, job: job, arguments: arguments,
                              manifest: JobRun.manifest(job: job, arguments: arguments, plan: plan, splits: splits, options: options),
                              resume: options.resume, shuffles: graph.shuffles.map(\.id), log: { log?(.warning, $0) })
        do {
            try committer.prepare()
            recorder = try RunRecorder(eventLog: work.eventLogPath, jobName: job.name, stages: plan.stages.count, options: options)
        } catch {
            if !options.keepWork { work.remove() }
            committer.abort()
            throw error as? JobFailure ?? JobFailure(description: "cannot prepare the run: \(error)")
        }
        scheduler = StageScheduler(StageGraph(stages: plan.stages.map { stage in
            var writes: Int?
            if case .shuffleMap(let dep) = stage.kind { writes = dep.id }
            return .init(id: stage.id, parents: stage.parents.map(\.id), taskCount: stage.taskCount, writesShuffle: writes)
        }), maxAttempts: options.maxAttempts)
        tracker = MapOutputTracker(mapTasks: Dictionary(uniqueKeysWithValues: graph.shuffles.map { [plan] in ($0.id, plan.mapTasks(of: $0)) }))
        speculation = options.speculation ? SpeculationPolicy() : nil
        results = Array(repeating: [], count: plan.stages.count)
        recorder.emit("job_start", [
            "version": RunEventLog.version, "job": job.name, "summary": job.summary, "run_id": runID,
            "inputs": arguments.inputs, "output": arguments.output ?? "", "parameters": arguments.parameters,
            "options": ["workers": options.workers, "partitions": plan.options.partitions, "memory_per_task": options.memoryPerTask,
                        "split_size": options.splitSize.map { $0 as Any } ?? "auto", "max_attempts": options.maxAttempts,
                        "task_timeout_s": options.taskTimeout, "inject": options.inject?.description ?? "",
                        "bad_records": options.skipBadRecords ? "skip" : "fail"],
            "stages": RunEventLog.describe(plan),
        ])
        let liveness = Liveness(timeoutMicros: Int64(options.taskTimeout * 1e6))
        let setup = Message.Setup(workerID: 0, inject: options.inject?.description ?? "", heartbeatMicros: liveness.heartbeatMicros,
                                  job: job.name, arguments: arguments, options: plan.options, splits: splits,
                                  workDir: work.path, memoryBudget: options.memoryPerTask,
                                  maxExpandedBytes: options.maxExpandedBytes, maxRecordBytes: options.effectiveMaxRecordBytes,
                                  localDir: options.localDir ?? "",
                                  skipBadRecords: options.skipBadRecords,
                                  compressOutput: options.compressOutput)
        pool = WorkerPool(launcher: options.launcher, liveness: liveness, setup: { id in
            var s = setup
            s.workerID = id
            return s
        }, logLine: { [recorder, options] w, line in
            if let sink = options.workerLog { sink(w.id, line) } else { recorder.log("[worker \(w.id)] \(line)") }
        })
    }

    /// What the map outputs depend on: a resumed run may reuse them only if this is unchanged.
    static func manifest(job: Job, arguments: JobArguments, plan: PhysicalPlan, splits: [[InputSplit]],
                         options: RunOptions) -> [UInt8] {
        var w = ByteWriter()
        Message.setup(Message.Setup(workerID: 0, inject: "", heartbeatMicros: 0, job: job.name, arguments: arguments,
                                    options: plan.options, splits: splits, workDir: "", memoryBudget: 0, maxExpandedBytes: 0, maxRecordBytes: 0,
                                    skipBadRecords: options.skipBadRecords, compressOutput: false)).encodePayload(to: &w)
        // The inputs as they are now: a file changed since (same size or not) voids the outputs.
        for path in Set(splits.flatMap { $0.flatMap { $0.chunks.map(\.path) } }).sorted() {
            var st = stat()
            let found = stat(path, &st) == 0
            path.encode(to: &w)
            for v in found ? [Int64(st.st_size), Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec), Int64(st.st_ino)] : [-1] {
                w.writeFixed(v)
            }
        }
        return w.bytes
    }

    /// Runs the job: the coordinator's loop.
    func execute() throws -> JobResult {
        // SIGINT, SIGTERM and SIGHUP stop the run cleanly: workers stopped, nothing committed,
        // staging and work folders removed, one line said.
        sluice_watch_signals()
        var reported = false
        defer {
            let late = sluice_caught_signal()
            sluice_unwatch_signals()
            // A signal that came while the job was committing could not stop it; it still stops
            // the program (the default action), rather than being lost.
            if late != 0 && !reported { raise(late) }
        }
        do {
            if work.resumable { reuseCommittedMapStages() }
            try submitReadyStages()
            for _ in 0..<max(1, options.workers) { recorder.workerStarted(try pool.launch()) }
            let pollMillis = Int32(max(10, min(1000, options.taskTimeout * 250)))
            while !scheduler.isJobDone {
                try offerTasks()
                recorder.progress(plan, scheduler, running: pool.live.compactMap(\.task))
                let events = try pool.poll(timeoutMillis: pollMillis)
                try stopIfSignalled()
                for event in events { try handle(event) }
            }
            try stopIfSignalled()
            pool.shutdown()
            sweepScratch()
            return try finish()
        } catch {
            reported = true // the caller says what failed
            pool.stopAll()
            sweepScratch()
            var failure = error as? JobFailure ?? JobFailure(description: "job \(job.name) failed: \(error)")
            recorder.emit("job_end", ["status": "failed", "error": failure.description])
            failure.eventLog = placeEventLog(success: false)
            committer.abort()
            if !options.keepWork { work.remove() }
            throw failure
        }
    }

    /// Removes the `--local-dir` scratch of workers that were killed (they could not remove
    /// their own). Only this node's: a remote worker's is swept by the next worker on its node.
    private func sweepScratch() {
        if let localDir = options.localDir { ScratchFolder.sweep(ScratchFolder.base(localDir)) }
    }

    /// Throws when a signal asked the run to stop.
    func stopIfSignalled() throws {
        guard let name = StopSignals.caught else { return }
        throw JobFailure(description: "job \(job.name) interrupted by \(name): workers stopped, nothing committed",
                         signal: sluice_caught_signal())
    }

    // MARK: Stages

    /// Stages whose committed map outputs an interrupted run left are not run again.
    func reuseCommittedMapStages() {
        for stage in plan.stages {
            guard case .shuffleMap(let dep) = stage.kind, !plan.needsSample(dep) else { continue }
            let paths = (0..<stage.taskCount).map { ShuffleDependency.outputPath(workDir: work.path, shuffle: dep.id, map: $0) }
            guard paths.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else { continue }
            for (map, path) in paths.enumerated() { tracker.reuse(shuffle: dep.id, map: map, path: path) }
            scheduler.markReused(stage.id, now: monotonicMicros())
            results[stage.id] = Array(repeating: [], count: stage.taskCount)
            recorder.reusedMapTasks += stage.taskCount
            recorder.emit("stage_reused", ["stage": stage.id, "tasks": stage.taskCount])
            recorder.log("stage \(stage.id) (map) reused from the interrupted run: \(stage.taskCount) committed map outputs", .info)
        }
    }

    /// Submits every stage whose parents are done (stages without tasks finish at once).
    func submitReadyStages() throws {
        var ready = scheduler.readyStages()
        while !ready.isEmpty {
            for id in ready {
                let stage = plan.stages[id]
                if case .shuffleMap(let dep) = stage.kind, plan.needsSample(dep), let sampler = stage.parents.last {
                    let bounds = try dep.bounds(fromSamples: results[sampler.id], partitions: plan.partitions(of: dep))
                    plan = plan.withBounds(bounds, forStage: id)
                }
                plan = plan.withSkewSpecs(planSkew(stage), forStage: id)
                let set = scheduler.submit(id, specs: plan.skewSpecs(of: id), now: monotonicMicros())
                results[id] = Array(repeating: [], count: set.count)
                recorder.emit("stage_submitted", ["stage": id, "tasks": set.count])
            }
            ready = scheduler.readyStages()
        }
    }

    /// Adaptive skew handling: when a reduce stage becomes ready, split its skewed partitions by
    /// groups of map outputs (see `SkewPlanner`): a join's big side with the other side
    /// replicated, or an aggregation in two steps (partials, then a merge).
    func planSkew(_ stage: Stage) -> [TaskSpec]? {
        guard options.skew.enabled else { return nil }
        let (shuffles, twoStep) = SkewPlanner.splittable(stage)
        let candidates = shuffles.compactMap { dep in tracker.bytes(shuffle: dep.id, partitions: plan.partitions(of: dep)).map { (dep, $0) } }
        guard let (big, bytes) = candidates.max(by: { tracker.totalBytes(shuffle: $0.0.id) < tracker.totalBytes(shuffle: $1.0.id) })
        else { return nil }
        var skewOptions = options.skew
        if case .split(let s) = big.skewHint {
            skewOptions.splits = max(1, s)
            skewOptions.minBytes = 0
        }
        let partitions = plan.partitions(of: big)
        var specs = SkewPlanner.plan(partitions: partitions, bytes: bytes, shuffle: big.id, options: skewOptions, workers: options.workers)
        guard specs.count > partitions else { return nil }
        let split = Set(specs.filter { $0.maps != nil }.map(\.partition)).sorted()
        let tasks = specs.count - partitions + split.count
        let list = "skewed partition\(split.count == 1 ? "" : "s") \(split.map(String.init).joined(separator: ", ")) of shuffle \(big.id)"
        if twoStep {
            specs = SkewPlanner.twoStep(specs)
            recorder.noteSkew(stage: stage.id, "stage \(stage.id): \(list) aggregated in two steps: \(tasks) partial aggregations by map-output ranges, merged by \(split.count) task\(split.count == 1 ? "" : "s")")
        } else {
            recorder.noteSkew(stage: stage.id, "stage \(stage.id): \(list) split into \(tasks) tasks by map-output ranges; the other side replicated")
        }
        recorder.emit("skew_split", ["stage": stage.id, "shuffle": big.id, "partitions": split, "tasks": specs.count,
                                     "mode": twoStep ? "two-step" : "join-split"])
        return specs
    }

    func describe(_ stage: Int, _ task: Int) -> String {
        let s = plan.stages[stage]
        let partition = scheduler.taskSets[stage]?.specs?[task].partition ?? task
        return "job \(job.name), stage \(stage) (\(s.kindName)), partition \(partition)"
    }

    // MARK: Tasks

    /// Gives every idle worker a task: the next queued one, or a speculative copy.
    func offerTasks() throws {
        for w in pool.live where w.idle {
            let now = monotonicMicros()
            if let a = scheduler.nextTask(now: now) {
                dispatch(a, to: w, speculative: false)
            } else if let policy = speculation, let a = scheduler.speculativeTask(now: now, policy: policy) {
                recorder.speculativeAttempts += 1
                recorder.log("speculating \(describe(a.stage, a.index)) on worker \(w.id)", .info)
                dispatch(a, to: w, speculative: true)
            } else {
                return
            }
        }
    }

    func dispatch(_ a: TaskAttempt, to w: PooledWorker, speculative: Bool) {
        let stage = plan.stages[a.stage]
        var blob: [UInt8] = []
        var outputPath: String?
        switch stage.kind {
        case .shuffleMap(let dep): blob = plan.bounds(of: dep)
        case .result(let action): outputPath = committer.attemptPath(action: action.index, task: a.index, attempt: a.attempt)
        case .sample: break
        }
        let spec = plan.skewSpecs(of: a.stage)?[a.index]
        var fields: [String: Any] = ["stage": a.stage, "partition": a.index, "attempt": a.attempt, "worker": w.id,
                                     "location": w.handle.location, "speculative": speculative]
        if let pid = w.handle.processID { fields["pid"] = Int(pid) }
        for source in stage.fileSources {
            let splits = plan.splits(of: source)
            if a.index < splits.count { fields["input"] = splits[a.index].summary }
        }
        recorder.emit("task_start", fields)
        pool.assign(w, a, Message.TaskDescriptor(stage: a.stage, partition: a.index, attempt: a.attempt, blob: blob,
                                                 outputPath: outputPath, spec: spec?.encode() ?? []))
    }

    func handle(_ event: PoolEvent) throws {
        switch event {
        case .ready:
            break // offered a task at the top of the loop
        case .done(let w, let report):
            try commit(report, from: w)
        case .failed(let w, let f):
            let a = TaskAttempt(stage: f.stage, index: f.partition, attempt: f.attempt)
            try taskFailed(a, on: w, reason: f.message, status: f.lostShuffle != nil ? "fetch_failed" : "failed",
                           lost: f.lostShuffle.flatMap { s in f.lostMap.map { (s, $0) } }, fatal: f.fatal)
        case .lost(let w, let reason):
            recorder.emit("worker_lost", ["worker": w.id, "location": w.handle.location, "pid": Int(w.handle.processID ?? -1),
                                          "reason": reason, "stage": w.task?.stage ?? -1, "partition": w.task?.index ?? -1])
            if let a = w.task {
                try taskFailed(a, on: w, reason: "worker lost: \(reason)", status: "failed")
            } else {
                idleLosses += 1
                recorder.log("\(w.label) lost while idle: \(reason)")
                guard idleLosses <= options.maxAttempts * max(1, options.workers) else {
                    throw JobFailure(description: "job \(job.name): workers keep failing before they run a task (last: \(reason)); giving up")
                }
            }
            try replace(w)
        case .refused(let w, let reason):
            throw JobFailure(description: "\(w.label): \(reason): --work-dir must be on storage every node shares")
        case .stalled(let w, let seconds):
            if let a = w.task {
                try taskFailed(a, on: w, reason: "no progress for \(seconds) s (--task-timeout \(formatTimeout(options.taskTimeout)))",
                               status: "timed_out")
            }
            try replace(w)
        }
    }

    /// Starts a worker in place of one that was stopped.
    func replace(_ w: PooledWorker) throws {
        recorder.workersReplaced += 1
        let fresh = try pool.launch()
        recorder.workerStarted(fresh, replacing: w)
    }

    /// An attempt succeeded: the first of its task commits its output, later ones are dropped.
    func commit(_ report: Message.TaskReport, from w: PooledWorker) throws {
        let a = TaskAttempt(stage: report.stage, index: report.partition, attempt: report.attempt)
        var fields = RunEventLog.fields(report.metrics)
        fields.merge(["stage": a.stage, "partition": a.index, "attempt": a.attempt, "worker": w.id,
                      "duration_ms": Double(report.micros) / 1000], uniquingKeysWith: { $1 })
        let (outcome, stageFinished) = scheduler.taskSucceeded(a, micros: report.micros, now: monotonicMicros())
        guard case .commit(let losers) = outcome else {
            if let f = report.file { unlink(f) } // a losing duplicate: its files never reach a reader
            fields["status"] = "discarded"
            recorder.emit("task_end", fields)
            return
        }
        fields["status"] = "success"
        recorder.emit("task_end", fields)
        try stopLosers(losers)
        try commitOutput(a, report)
        results[a.stage][a.index] = report.result
        recorder.taskCommitted(a, report, worker: w.id)
        if stageFinished {
            let took = scheduler.finished[a.stage] - scheduler.started[a.stage]
            let tasks = scheduler.taskSets[a.stage]?.count ?? 0
            recorder.emit("stage_completed", ["stage": a.stage, "tasks": tasks, "duration_ms": Double(took) / 1000])
            recorder.log("stage \(a.stage) (\(plan.stages[a.stage].kindName)) finished: \(tasks) tasks in \(formatMicros(took))", .info)
            try submitReadyStages()
        }
    }

    /// Stops the attempts that lost the race to commit (speculative copies or the straggler).
    func stopLosers(_ losers: [TaskAttempt]) throws {
        for loser in losers {
            guard let w = pool.live.first(where: { $0.task == loser }) else { continue }
            pool.retire(w)
            recorder.emit("task_end", ["stage": loser.stage, "partition": loser.index, "attempt": loser.attempt,
                                       "worker": w.id, "status": "killed", "error": "another attempt committed first"])
            recorder.log("stopped the losing attempt \(loser.attempt) of \(describe(loser.stage, loser.index)) on worker \(w.id)", .info)
            recorder.workerStarted(try pool.launch(), replacing: w)
        }
    }

    /// Moves a winning attempt's file into place: a map output, a part file, or nothing.
    func commitOutput(_ a: TaskAttempt, _ report: Message.TaskReport) throws {
        let spec = plan.skewSpecs(of: a.stage)?[a.index]
        if spec?.partial != nil {
            // A partial aggregation wrote its partial file; its (empty) output goes.
            if let f = report.file { unlink(f) }
            return
        }
        switch plan.stages[a.stage].kind {
        case .shuffleMap(let dep):
            // After skew planning, task indices differ from the map outputs (partitions).
            let map = spec?.partition ?? a.index
            try tracker.commit(shuffle: dep.id, map: map, attempt: a.attempt, file: report.file!,
                               to: ShuffleDependency.outputPath(workDir: work.path, shuffle: dep.id, map: map), stats: report.mapStats)
        case .result(let action):
            guard let f = report.file else { return }
            // Parts are numbered without gaps: partial aggregations (listed first) have none.
            let partialsBefore = scheduler.taskSets[a.stage]?.specs?[..<a.index].filter { $0.partial != nil }.count ?? 0
            try committer.commitTask(action: action.index, part: a.index - partialsBefore, file: f)
        case .sample:
            break
        }
    }

    /// An attempt failed: retry it, re-run a lost map output first, or fail the job.
    func taskFailed(_ a: TaskAttempt, on w: PooledWorker, reason: String, status: String,
                    lost: (shuffle: Int, map: Int)? = nil, fatal: Message.FatalCause? = nil) throws {
        recorder.emit("task_end", ["stage": a.stage, "partition": a.index, "attempt": a.attempt, "worker": w.id,
                                   "status": status, "error": reason, "lost_shuffle": lost?.shuffle ?? -1, "lost_map": lost?.map ?? -1])
        switch fatal {
        case .badInput?: throw JobFailure(description: "bad input (\(describe(a.stage, a.index))): \(reason)")
        case .diskFull?:
            // The advice names the folder that filled: work folder, local scratch, or the output's.
            let scratch = options.localDir.map { reason.contains(ScratchFolder.base($0)) } ?? false
            let advice = reason.contains(work.path) ? "free some space, or give --work-dir on a larger disk"
                : scratch ? "free some space, or give --local-dir on a larger disk" : "free some space where the output goes"
            throw JobFailure(description: "no space left on device (\(describe(a.stage, a.index))): \(reason); \(advice)")
        case nil: break
        }
        if let lost {
            return try mapOutputLost(a, shuffle: lost.shuffle, map: lost.map, reason: reason)
        }
        rerunLostPartials(a)
        let place = "\(describe(a.stage, a.index)), attempt \(a.attempt + 1) of \(options.maxAttempts), \(w.label)"
        switch scheduler.taskFailed(a) {
        case .abort: throw JobFailure(description: "\(place) failed: \(reason)")
        case .retry: recorder.log("retrying after failure: \(place): \(reason)")
        case .ignored: break
        }
    }

    /// Spark's FetchFailed: the map output is gone or corrupt. The map task runs again, then
    /// the reducer; neither counts against the reducer's attempts.
    func mapOutputLost(_ a: TaskAttempt, shuffle: Int, map: Int, reason: String) throws {
        switch scheduler.fetchFailed(a, shuffle: shuffle, map: map) {
        case .resubmitted(let mapStage, _, let rerun):
            if rerun {
                tracker.unregister(shuffle: shuffle, map: map)
                recorder.mapTasksRerun += 1
            }
            recorder.log("map output lost, re-running \(describe(mapStage, map)): \(reason)")
        case .abort(let mapStage, _, let losses):
            throw JobFailure(description: "\(describe(a.stage, a.index)): the output of \(describe(mapStage, map)) was lost \(losses) times: \(reason)")
        case .ignored:
            break
        }
    }

    /// Before a failed merge task retries: partial files that are gone (deleted under a
    /// running job) are made again by re-running their tasks; the merge waits for them.
    func rerunLostPartials(_ a: TaskAttempt) {
        guard let set = scheduler.taskSets[a.stage], let spec = set.specs?[a.index], spec.merges != nil,
              let shuffle = spec.shuffle else { return }
        for i in set.partials(of: a.index) where set.states[i] == .finished {
            guard let index = set.specs?[i].partial else { continue }
            let path = ShuffleDependency.partialPath(workDir: work.path, shuffle: shuffle, partition: spec.partition, index: index)
            guard !FileManager.default.fileExists(atPath: path) else { continue }
            recorder.log("partial aggregation \(path) lost: running it again", .warning)
            scheduler.resubmit(stage: a.stage, task: i)
        }
    }

    // MARK: The end

    /// Job commit: every part is in place; mark success, move the folders into place, report.
    func finish() throws -> JobResult {
        recorder.progress(plan, scheduler, running: [], finished: true)
        let all = TaskMetrics()
        for m in recorder.metrics { all.add(m) }
        let outputs = try committer.commitJob(skipped: all.skippedByInput, badSamples: all.badSamples)
        let retries = scheduler.taskSets.reduce(0) { $0 + ($1?.retries ?? 0) }
        recorder.emit("job_end", ["status": "success", "outputs": outputs, "duration_ms": Double(monotonicMicros() - started) / 1000,
                                  "retries": retries, "workers_replaced": recorder.workersReplaced,
                                  "map_tasks_rerun": recorder.mapTasksRerun])
        let eventLog = placeEventLog(success: true)
        if !options.keepWork { work.remove() }
        var rendered: [[String]] = []
        var actionResults: [[[UInt8]]] = []
        for action in graph.actions {
            let stage = plan.stages.first { if case .result(let a) = $0.kind { return a === action } else { return false } }!
            actionResults.append(results[stage.id])
            rendered.append(try action.render(results[stage.id]))
        }
        return JobResult(rendered: rendered, stages: recorder.summaries(plan, scheduler, tracker, hotKeyShare: options.skew.hotKeyShare),
                         outputs: outputs, wallMicros: monotonicMicros() - started, workersStarted: pool.workers.count,
                         workerLocations: Dictionary(uniqueKeysWithValues: pool.workers.map { ($0.id, $0.handle.location) }),
                         retries: retries, workersReplaced: recorder.workersReplaced, mapTasksRerun: recorder.mapTasksRerun,
                         skippedByInput: all.skippedByInput, speculativeAttempts: recorder.speculativeAttempts,
                         reusedMapTasks: recorder.reusedMapTasks, eventLog: eventLog ?? "", results: actionResults)
    }

    /// Where the event log ends up: the explicit path; else in the output folder after a
    /// success, beside it after a failure. A run without an output folder keeps its log only
    /// after a failure (beside the work folder) or with `--keep-work` (in the work folder),
    /// never in the current directory.
    func placeEventLog(success: Bool) -> String? {
        if let target = options.eventLogPath { return recorder.place(at: target) }
        if let out = committer.firstOutput {
            return recorder.place(at: success ? out + "/_events.jsonl" : out + ".events.jsonl")
        }
        if options.keepWork { return work.eventLogPath }
        return success ? nil : recorder.place(at: work.path + ".events.jsonl")
    }
}

/// `1.23 s` / `45 ms`.
func formatMicros(_ us: Int64) -> String {
    us >= 1_000_000 ? String(format1: Double(us) / 1e6) + " s" : "\(us / 1000) ms"
}

/// `2`, `0.5`: a timeout as the user wrote it.
func formatTimeout(_ s: Double) -> String {
    s == s.rounded() ? "\(Int(s))" : "\(s)"
}
