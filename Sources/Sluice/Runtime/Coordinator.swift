#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys
import Foundation

/// How a run is carried out.
public struct RunOptions: Sendable {
    /// Worker processes (default: the core count).
    public var workers: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Reduce partitions per shuffle (default: twice the workers).
    public var partitions: Int?
    /// Bytes a task may hold before it spills (map-side table, buffers, reduce tables).
    public var memoryPerTask: Int = 256 << 20
    /// Target size of one input split of a large plain file; nil: automatic (see
    /// `SplitPlanner.automaticSplitSize`).
    public var splitSize: Int64?
    /// Where shuffle and spill files go (default: a fresh folder under $TMPDIR or /tmp).
    public var workDir: String?
    /// Keep the work directory after the run (it is removed after success otherwise).
    public var keepWork = false
    /// Replace an existing output folder.
    public var overwrite = false
    /// Attempts per task before the job fails (Spark's spark.task.maxFailures).
    public var maxAttempts = 4
    /// Seconds without a heartbeat before a worker is declared hung and killed.
    public var taskTimeout: Double = 120
    /// Skip malformed records (counted, sampled into `_bad_records`) instead of failing.
    public var skipBadRecords = false
    /// Write part files gzip-compressed (`part-NNNNN.gz`).
    public var compressOutput = false
    /// Guard against decompression bombs, per gzip stream or archive entry.
    public var maxExpandedBytes: Int64 = 64 << 30
    /// Launch speculative copies of straggling tasks (first attempt to commit wins).
    public var speculation = false
    /// Reuse the committed map outputs of an interrupted run of the same command (same job,
    /// arguments and plan) found in the work folder.
    public var resume = false
    /// Hot-key and skew handling.
    public var skew = SkewOptions()
    /// Joins whose smaller side reads less than this from disk are broadcast (0: never).
    public var broadcastThreshold: Int64 = 10 << 20
    /// Faults to inject into worker tasks (see `FaultInjection`), for tests and demos.
    public var inject: FaultInjection?
    /// The same, as written by the user (passed to workers as `SLUICE_INJECT`).
    public var injectSpec: String?
    /// How workers are started.
    public var launcher: any WorkerLauncher = ProcessLauncher()
    /// Where to write the run's event log (default: `_events.jsonl` in the output folder, or
    /// next to it as `NAME.events.jsonl` when the run fails or has no output folder).
    public var eventLogPath: String?
    /// Receives progress after every task event and at least once a second.
    public var progress: (@Sendable (ProgressSnapshot) -> Void)?
    /// Receives every line a worker writes to its stderr, with the worker's id.
    public var workerLog: (@Sendable (Int, String) -> Void)?
    /// Receives one line per notable event (stage finished, task retried, worker replaced).
    public var log: (@Sendable (RunLogLevel, String) -> Void)?

    public init() {}

    var effectivePartitions: Int { partitions ?? max(2, 2 * workers) }
}

/// How much a coordinator log line matters.
public enum RunLogLevel: Sendable {
    /// Progress of the plan: stages finished or reused, speculative copies.
    case info
    /// Something went wrong and was recovered: retries, lost workers, lost map outputs.
    case warning
}

/// A running job's state, for live progress displays.
public struct ProgressSnapshot: Sendable {
    /// One line per stage that has started and not finished.
    public struct StageProgress: Sendable {
        public var id: Int
        public var kind: String
        public var done: Int
        public var running: Int
        public var total: Int
        public var records: Int
        public var bytes: Int64
        public var spills: Int
        public var retries: Int
        public var elapsedMicros: Int64
    }
    public var stages: [StageProgress]
    public var finished: Bool
}

/// What one stage did, for the run summary.
public struct StageSummary: @unchecked Sendable {
    public var id: Int
    public var kind: String
    public var operators: String
    public var tasks: Int
    public var recordsIn: Int
    public var recordsOut: Int
    public var bytesRead: Int64
    public var shuffleBytesWritten: Int64
    public var shuffleBytesRead: Int64
    public var outputBytes: Int64
    public var spills: Int
    public var spillBytes: Int64
    public var retries: Int
    public var wallMicros: Int64
    public var maxTaskMicros: Int64
    public var medianTaskMicros: Int64
    /// The largest peak resident memory of a worker that ran a task of this stage (KiB).
    public var peakWorkerRSSKiB: Int64
    /// Records read by the largest and the median task.
    public var maxTaskRecords: Int
    public var medianTaskRecords: Int
    /// The stage's longest task took much longer than its median (3× and over 0.2 s), or read
    /// far more records (5×).
    public var skewed: Bool
    /// Hot keys of the shuffles the stage reads: (key, share of the shuffle's records).
    public var hotKeys: [(key: String, share: Double)]
    /// What skew handling did to the stage.
    public var skewNotes: [String]
    /// Tasks completed by each worker (worker id → count).
    public var tasksPerWorker: [Int: Int]
}

/// The outcome of a successful run.
public struct JobResult: Sendable {
    /// Per action, the lines to show (counts, collected records); empty for writes.
    public var rendered: [[String]]
    /// Per stage, what it did.
    public var stages: [StageSummary]
    /// Output folders written.
    public var outputs: [String]
    public var wallMicros: Int64
    /// Process ids of every worker started.
    public var workerPids: [Int32]
    /// Task attempts that failed and were retried (all stages).
    public var retries: Int
    /// Workers that died or hung and were replaced.
    public var workersReplaced: Int
    /// Map tasks run again because a reducer found their output missing or corrupt.
    public var mapTasksRerun: Int
    /// Records skipped as bad, per input file (`--bad-records skip`).
    public var skippedByInput: [String: Int]
    /// Speculative copies launched for stragglers.
    public var speculativeAttempts: Int
    /// Map tasks whose committed outputs were reused from an interrupted run (`--resume`).
    public var reusedMapTasks: Int
    /// Where the run's event log was written.
    public var eventLog: String
    let results: [[[UInt8]]]

    /// The typed result of an action (`count()`, `collect()` …).
    public func value<R>(of handle: ResultHandle<R>) throws -> R {
        try handle.decode(results[handle.action.index])
    }
}

/// Why a run failed, as one clear line.
public struct JobFailure: Error, CustomStringConvertible {
    public var description: String
    /// The event log of the failed run, when one was written.
    public var eventLog: String?
    public init(description: String, eventLog: String? = nil) {
        self.description = description
        self.eventLog = eventLog
    }
}

/// The coordinator: plans the job, starts the workers, hands out tasks as workers ask for
/// them (pull-based), commits their outputs by rename (first attempt wins), retries failed
/// tasks, and commits the job's output atomically. Single-threaded around `poll(2)`.
public final class Coordinator {
    let job: Job
    let arguments: JobArguments
    let options: RunOptions

    public init(job: Job, arguments: JobArguments, options: RunOptions) {
        self.job = job
        self.arguments = arguments
        self.options = options
    }

    private struct TaskKey: Hashable {
        var stage: Int
        var partition: Int
    }

    private final class WorkerState {
        let process: WorkerProcess
        var reader = FrameReader()
        var running: (key: TaskKey, attempt: Int, started: Int64)?
        var idle = false
        var lastHeard = monotonicMicros()
        var alive = true
        var errorTail: [UInt8] = []
        init(_ p: WorkerProcess) { process = p }
    }

    private final class StageState {
        var submitted = false
        var remaining = Set<Int>()
        var done = false
        var results: [[UInt8]] = []
        var metrics = TaskMetrics()
        var taskMicros: [Int64] = []
        var taskRecords: [Int] = []
        var specs: [TaskSpec]?
        var retries = 0
        var started: Int64 = 0
        var finished: Int64 = 0
        var perWorker: [Int: Int] = [:]
    }

    /// Runs the job to completion; throws `JobFailure` with a one-line reason otherwise.
    public func run() throws -> JobResult {
        // Writing to a worker that died must give EPIPE (a worker failure), not kill us.
        sluice_ignore_sigpipe()
        let started = monotonicMicros()
        let runID = "\(getpid())-\(started)"
        let graph: JobGraph
        let splits: [[InputSplit]]
        let plan: PhysicalPlan
        do {
            graph = try job.graph(arguments)
            splits = try PhysicalPlan.planSplits(graph, splitSize: options.splitSize, workers: options.workers)
            plan = try PhysicalPlan(graph: graph, options: PlanOptions(partitions: options.effectivePartitions,
                                                                       broadcastThreshold: options.broadcastThreshold), splits: splits)
        } catch {
            throw JobFailure(description: "\(error)")
        }

        // Output folders: refuse to clobber unless asked; stage next to the target.
        let fm = FileManager.default
        var staging: [Int: (final: String, dir: String)] = [:]
        for action in graph.actions {
            guard let out = action.outputPath else { continue }
            if fm.fileExists(atPath: out) && !options.overwrite {
                throw JobFailure(description: "output folder \(out) already exists (use --overwrite to replace it)")
            }
            let url = URL(fileURLWithPath: out)
            let dir = url.deletingLastPathComponent().path + "/.\(url.lastPathComponent).sluice-\(runID)"
            staging[action.index] = (out, dir)
        }
        // The work folder is named by the job and its arguments, so that running the same command
        // again with --resume finds the map outputs a killed coordinator left behind.
        var argumentHash = StableHasher()
        var encodedArguments = ByteWriter()
        arguments.encode(to: &encodedArguments)
        job.name.encode(to: &encodedArguments)
        encodedArguments.bytes.withUnsafeBytes { argumentHash.combine(bytes: $0) }
        let workDir = options.workDir ?? ((ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
            + "/sluice-work/\(job.name)-" + String(argumentHash.finalize(), radix: 16))
        var succeeded = false
        defer {
            if !succeeded || !options.keepWork { try? fm.removeItem(atPath: workDir) }
            if !succeeded { for (_, s) in staging { try? fm.removeItem(atPath: s.dir) } }
        }
        // What the map outputs depend on: a resumed run may reuse them only if this is unchanged.
        var planHash = StableHasher()
        var planBytes = ByteWriter()
        Message.setup(Message.Setup(job: job.name, arguments: arguments, options: plan.options, splits: splits, workDir: "",
                                    memoryBudget: 0, maxExpandedBytes: 0, skipBadRecords: options.skipBadRecords,
                                    compressOutput: false)).encodePayload(to: &planBytes)
        planBytes.bytes.withUnsafeBytes { planHash.combine(bytes: $0) }
        let manifest = "sluice work folder v1 \(String(planHash.finalize(), radix: 16))\n"
        let manifestPath = workDir + "/manifest"
        let resumable = options.resume && (try? String(contentsOfFile: manifestPath, encoding: .utf8)) == manifest
        if options.resume && !resumable {
            options.log?(.warning, "nothing to resume in \(workDir) (missing, or made by a different plan): starting afresh")
        }
        if !resumable { try? fm.removeItem(atPath: workDir) }
        do {
            try fm.createDirectory(atPath: workDir + "/tmp", withIntermediateDirectories: true)
            try Data(manifest.utf8).write(to: URL(fileURLWithPath: manifestPath))
            for s in graph.shuffles { try fm.createDirectory(atPath: "\(workDir)/shuffle-\(s.id)", withIntermediateDirectories: true) }
            for (_, s) in staging {
                try fm.createDirectory(atPath: s.dir + "/_attempts", withIntermediateDirectories: true)
            }
        } catch {
            throw JobFailure(description: "cannot prepare folders: \(error)")
        }

        let events = RunEventLog(path: workDir + "/_events.jsonl")
        let firstOutput = staging.sorted(by: { $0.key < $1.key }).first?.value.final
        /// Where the log ends up: explicit path, else in the output folder (success) or beside it.
        func placeEventLog(success: Bool) -> String {
            let target = options.eventLogPath
                ?? (success && firstOutput != nil ? firstOutput! + "/_events.jsonl"
                    : (firstOutput ?? "\(job.name)-\(runID)") + ".events.jsonl")
            try? fm.removeItem(atPath: target)
            try? fm.copyItem(atPath: events.path, toPath: target)
            return target
        }
        events.emit("job_start", [
            "version": RunEventLog.version, "job": job.name, "summary": job.summary, "run_id": runID,
            "inputs": arguments.inputs, "output": arguments.output ?? "", "parameters": arguments.parameters,
            "options": ["workers": options.workers, "partitions": plan.options.partitions, "memory_per_task": options.memoryPerTask,
                        "split_size": options.splitSize.map { $0 as Any } ?? "auto", "max_attempts": options.maxAttempts,
                        "inject": options.injectSpec ?? "", "bad_records": options.skipBadRecords ? "skip" : "fail"],
            "stages": RunEventLog.describe(plan),
        ])
        let setup = Message.Setup(job: job.name, arguments: arguments, options: plan.options, splits: splits,
                                  workDir: workDir, memoryBudget: options.memoryPerTask,
                                  maxExpandedBytes: options.maxExpandedBytes, skipBadRecords: options.skipBadRecords,
                                  compressOutput: options.compressOutput)
        let states = plan.stages.map { _ in StageState() }
        var queue: [(key: TaskKey, attempt: Int)] = []
        var queueHead = 0
        var failures: [TaskKey: Int] = [:]
        var fetchFailures: [TaskKey: Int] = [:]
        var nextAttempt: [TaskKey: Int] = [:]
        var mapTasksRerun = 0
        var mapStageOfShuffle: [Int: Stage] = [:]
        for stage in plan.stages { if case .shuffleMap(let dep) = stage.kind { mapStageOfShuffle[dep.id] = stage } }
        func enqueue(_ key: TaskKey) {
            let attempt = nextAttempt[key, default: 0]
            nextAttempt[key] = attempt + 1
            queue.append((key, attempt))
        }
        var bounds: [Int: [UInt8]] = [:]
        var workers: [WorkerState] = []
        var allPids: [Int32] = []
        var nextWorkerID = 0
        var replacements = 0
        var speculated = Set<TaskKey>()
        var mapBytes: [Int: [[Int64]]] = [:]
        var hotKeyCounts: [Int: [String: Int]] = [:]
        var sketchedRecords: [Int: Int] = [:]
        var skewNotes: [Int: [String]] = [:]
        var speculativeAttempts = 0
        let logSink = options.log ?? { _, _ in }
        func log(_ message: String, _ level: RunLogLevel = .warning) { logSink(level, message) }

        func describe(_ stage: Stage, _ partition: Int) -> String {
            "job \(job.name), stage \(stage.id) (\(stage.kindName)), partition \(partition)"
        }

        /// Adaptive skew handling: when a reduce stage becomes ready, split its skewed
        /// partitions by groups of map outputs (see `SkewPlanner`): a join's big side with the
        /// other side replicated, or an aggregation in two steps (partials, then a merge).
        func planSkew(_ stage: Stage) -> [TaskSpec]? {
            guard options.skew.enabled else { return nil }
            let (shuffles, twoStep) = SkewPlanner.splittable(stage)
            let candidates = shuffles.filter { mapBytes[$0.id] != nil }
            guard let big = candidates.max(by: { totalBytes(of: $0) < totalBytes(of: $1) }) else { return nil }
            var skewOptions = options.skew
            if case .split(let s) = big.skewHint {
                skewOptions.splits = max(1, s)
                skewOptions.minBytes = 0
            }
            let partitions = plan.partitions(of: big)
            var specs = SkewPlanner.plan(partitions: partitions, bytes: mapBytes[big.id]!, shuffle: big.id,
                                         options: skewOptions, workers: options.workers)
            guard specs.count > partitions else { return nil }
            let split = Set(specs.filter { $0.maps != nil }.map(\.partition)).sorted()
            let splits = specs.count - partitions + split.count
            let partitionList = "skewed partition\(split.count == 1 ? "" : "s") \(split.map(String.init).joined(separator: ", ")) of shuffle \(big.id)"
            let note: String
            if twoStep {
                specs = SkewPlanner.twoStep(specs)
                note = "stage \(stage.id): \(partitionList) aggregated in two steps: \(splits) partial aggregations by map-output ranges, merged by \(split.count) task\(split.count == 1 ? "" : "s")"
            } else {
                note = "stage \(stage.id): \(partitionList) split into \(splits) tasks by map-output ranges; the other side replicated"
            }
            skewNotes[stage.id, default: []].append(note)
            events.emit("skew_split", ["stage": stage.id, "shuffle": big.id, "partitions": split, "tasks": specs.count,
                                       "mode": twoStep ? "two-step" : "join-split"])
            log(note, .info)
            return specs
        }

        /// Whether a task can start: a merge task waits for its partition's partials.
        func inputsReady(_ key: TaskKey) -> Bool {
            guard let specs = states[key.stage].specs, specs[key.partition].merges != nil else { return true }
            let p = specs[key.partition].partition
            return !states[key.stage].remaining.contains { i in specs[i].partition == p && specs[i].partial != nil }
        }

        /// After a merge task failed: partial files that are gone (deleted under a running
        /// job) are made again by re-running their tasks.
        func rerunLostPartials(_ key: TaskKey) {
            guard let specs = states[key.stage].specs, specs[key.partition].merges != nil,
                  let shuffle = specs[key.partition].shuffle else { return }
            let p = specs[key.partition].partition
            for (i, spec) in specs.enumerated() where spec.partition == p && !states[key.stage].remaining.contains(i) {
                guard let index = spec.partial else { continue }
                let path = ShuffleDependency.partialPath(workDir: workDir, shuffle: shuffle, partition: p, index: index)
                guard !fm.fileExists(atPath: path) else { continue }
                states[key.stage].remaining.insert(i)
                log("partial aggregation \(path) lost: running it again", .warning)
                enqueue(TaskKey(stage: key.stage, partition: i))
            }
        }

        func totalBytes(of dep: ShuffleDependency) -> Int64 {
            (mapBytes[dep.id] ?? []).reduce(0) { $0 + $1.reduce(0, +) }
        }

        func taskCount(_ stage: Stage) -> Int { states[stage.id].specs?.count ?? stage.taskCount }

        func submitReadyStages() throws {
            var progress = true
            while progress {
                progress = false
                for stage in plan.stages where !states[stage.id].submitted && stage.parents.allSatisfy({ states[$0.id].done }) {
                    let st = states[stage.id]
                    st.submitted = true
                    st.started = monotonicMicros()
                    st.specs = planSkew(stage)
                    let tasks = taskCount(stage)
                    events.emit("stage_submitted", ["stage": stage.id, "tasks": tasks])
                    st.results = Array(repeating: [], count: tasks)
                    if case .shuffleMap(let dep) = stage.kind, plan.needsSample(dep) {
                        let sampleStage = stage.parents.last!
                        bounds[dep.id] = try dep.bounds(fromSamples: states[sampleStage.id].results,
                                                        partitions: plan.partitions(of: dep))
                    }
                    if tasks == 0 {
                        st.done = true
                        st.finished = st.started
                        progress = true
                    } else {
                        st.remaining = Set(0..<tasks)
                        for p in 0..<tasks { enqueue(TaskKey(stage: stage.id, partition: p)) }
                    }
                }
            }
        }

        func spawnWorker() throws {
            let process = try options.launcher.launch(id: nextWorkerID, environment: options.injectSpec.map { ["SLUICE_INJECT": $0] } ?? [:])
            nextWorkerID += 1
            allPids.append(process.pid)
            events.emit("worker_start", ["worker": process.id, "pid": Int(process.pid)])
            let w = WorkerState(process)
            workers.append(w)
            do {
                try send(.setup(setup), to: w)
            } catch {
                try workerLost(w, reason: "worker \(w.process.id) died before setup (\(error))")
            }
        }

        /// Forwards a worker's complete stderr lines to the log, prefixed with its id.
        func forwardErrors(_ w: WorkerState, _ bytes: UnsafeRawBufferPointer) {
            w.errorTail.append(contentsOf: bytes)
            while let nl = w.errorTail.firstIndex(of: 0x0A) {
                let line = String(decoding: w.errorTail[..<nl], as: UTF8.self)
                w.errorTail.removeSubrange(...nl)
                if let sink = options.workerLog { sink(w.process.id, line) } else { log("[worker \(w.process.id)] \(line)") }
            }
        }

        func drainErrors(_ w: WorkerState) {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let flags = fcntl(w.process.errors, F_GETFL)
            _ = fcntl(w.process.errors, F_SETFL, flags | O_NONBLOCK)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(w.process.errors, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                chunk.withUnsafeBytes { forwardErrors(w, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            if !w.errorTail.isEmpty { [UInt8(0x0A)].withUnsafeBytes { forwardErrors(w, $0) } }
        }

        func reportProgress(finished: Bool = false) {
            guard let sink = options.progress else { return }
            let now = monotonicMicros()
            var lines: [ProgressSnapshot.StageProgress] = []
            for stage in plan.stages where states[stage.id].submitted && (!states[stage.id].done || finished) {
                let st = states[stage.id]
                let total = taskCount(stage)
                let running = workers.filter { $0.alive && $0.running?.key.stage == stage.id }.count
                lines.append(.init(id: stage.id, kind: stage.kindName, done: total - st.remaining.count, running: running,
                                   total: total, records: st.metrics.recordsRead,
                                   bytes: st.metrics.bytesRead + st.metrics.shuffleBytesRead, spills: st.metrics.spills,
                                   retries: st.retries, elapsedMicros: (st.done ? st.finished : now) - st.started))
            }
            sink(ProgressSnapshot(stages: lines, finished: finished))
        }

        func send(_ message: Message, to w: WorkerState) throws {
            try FrameWriter(fd: w.process.toWorker).send(message)
        }

        func killAll() {
            for w in workers where w.alive {
                kill(w.process.pid, SIGKILL)
                close(w.process.toWorker)
                close(w.process.fromWorker)
                if w.process.errors >= 0 { close(w.process.errors) }
                var status: Int32 = 0
                waitpid(w.process.pid, &status, 0)
                w.alive = false
            }
        }

        func taskFailed(_ key: TaskKey, attempt: Int, worker: WorkerState, reason: String,
                        lost: (shuffle: Int, map: Int)? = nil, fatal: Bool = false) throws {
            let stage = plan.stages[key.stage]
            guard !states[key.stage].done, states[key.stage].remaining.contains(key.partition) else { return }
            events.emit("task_end", ["stage": key.stage, "partition": key.partition, "attempt": attempt,
                                     "worker": worker.process.id, "status": lost != nil ? "fetch_failed" : "failed",
                                     "error": reason, "lost_shuffle": lost?.shuffle ?? -1, "lost_map": lost?.map ?? -1])
            if fatal {
                throw JobFailure(description: "bad input: \(reason) (\(describe(stage, key.partition)); use --bad-records skip to skip malformed records)")
            }
            if let lost, let mapStage = mapStageOfShuffle[lost.shuffle] {
                // Spark's FetchFailed: the map output is gone or corrupt. Run the map task again,
                // then this task; neither counts against the task's attempts, but repeated loss
                // of the same output is bounded.
                // The task that writes map output `lost.map` (after skew planning, the merge).
                let mapTask = states[mapStage.id].specs?.firstIndex { $0.partition == lost.map && $0.partial == nil } ?? lost.map
                let mapKey = TaskKey(stage: mapStage.id, partition: mapTask)
                fetchFailures[mapKey, default: 0] += 1
                if fetchFailures[mapKey]! > options.maxAttempts {
                    throw JobFailure(description: "\(describe(stage, key.partition)): the output of \(describe(mapStage, lost.map)) was lost \(fetchFailures[mapKey]!) times: \(reason)")
                }
                if !states[mapStage.id].remaining.contains(mapTask) {
                    unlink(ShuffleDependency.outputPath(workDir: workDir, shuffle: lost.shuffle, map: lost.map))
                    states[mapStage.id].remaining.insert(mapTask)
                    states[mapStage.id].done = false
                    mapTasksRerun += 1
                    enqueue(mapKey)
                }
                log("map output lost, re-running \(describe(mapStage, lost.map)): \(reason)")
                enqueue(key)
                return
            }
            rerunLostPartials(key)
            failures[key, default: 0] += 1
            states[key.stage].retries += 1
            let where_ = "\(describe(stage, key.partition)), attempt \(attempt + 1) of \(options.maxAttempts), worker \(worker.process.id) (pid \(worker.process.pid))"
            if failures[key]! >= options.maxAttempts {
                throw JobFailure(description: "\(where_) failed: \(reason)")
            }
            log("retrying after failure: \(where_): \(reason)")
            enqueue(key)
        }

        func commit(_ report: Message.TaskReport, worker: WorkerState) throws {
            let key = TaskKey(stage: report.stage, partition: report.partition)
            let stage = plan.stages[key.stage]
            let st = states[key.stage]
            var endFields = RunEventLog.fields(report.metrics)
            endFields.merge(["stage": key.stage, "partition": key.partition, "attempt": report.attempt,
                             "worker": worker.process.id, "duration_ms": Double(report.micros) / 1000], uniquingKeysWith: { $1 })
            guard st.remaining.contains(key.partition) else {
                // A losing duplicate attempt: its files never reach a reader.
                if let f = report.file { unlink(f) }
                endFields["status"] = "discarded"
                events.emit("task_end", endFields)
                return
            }
            endFields["status"] = "success"
            events.emit("task_end", endFields)
            // The first attempt to commit wins: other attempts of this task (speculative copies
            // or the straggler they raced) are stopped and their files never read.
            for other in workers where other.alive && other !== worker && other.running?.key == key {
                try stopLoser(other)
            }
            switch stage.kind {
            case .shuffleMap(let dep):
                let spec = st.specs?[key.partition]
                if spec?.partial != nil {
                    // A partial aggregation wrote its partial file; its (empty) map output goes.
                    unlink(report.file!)
                    break
                }
                // After skew planning, task indices differ from the map outputs (partitions).
                let map = spec?.partition ?? key.partition
                let final = ShuffleDependency.outputPath(workDir: workDir, shuffle: dep.id, map: map)
                guard rename(report.file!, final) == 0 else { throw SystemError("cannot commit \(final)") }
                if let stats = report.mapStats {
                    if mapBytes[dep.id] == nil {
                        mapBytes[dep.id] = Array(repeating: [], count: stage.taskCount)
                    }
                    mapBytes[dep.id]![map] = stats.bytes
                    for (k, n) in stats.hotKeys { hotKeyCounts[dep.id, default: [:]][k, default: 0] += n }
                    sketchedRecords[dep.id, default: 0] += stats.sketched
                }
            case .result(let action):
                if st.specs?[key.partition].partial != nil {
                    // A partial aggregation wrote its partial file; its (empty) part is dropped.
                    if let f = report.file { unlink(f) }
                } else if let s = staging[action.index], let f = report.file {
                    // Parts are numbered without gaps: partial aggregations (listed first) have none.
                    let part = key.partition - (st.specs?[..<key.partition].filter { $0.partial != nil }.count ?? 0)
                    let final = s.dir + "/" + partName(part) + (options.compressOutput ? ".gz" : "")
                    guard rename(f, final) == 0 else { throw SystemError("cannot commit \(final)") }
                }
            case .sample:
                break
            }
            st.results[key.partition] = report.result
            st.remaining.remove(key.partition)
            st.metrics.add(report.metrics)
            st.taskMicros.append(report.micros)
            st.taskRecords.append(report.metrics.recordsRead)
            st.perWorker[worker.process.id, default: 0] += 1
            if st.remaining.isEmpty {
                st.done = true
                st.finished = monotonicMicros()
                events.emit("stage_completed", ["stage": stage.id, "tasks": taskCount(stage),
                                                "duration_ms": Double(st.finished - st.started) / 1000])
                log("stage \(stage.id) (\(stage.kindName)) finished: \(taskCount(stage)) tasks in \(formatMicros(st.finished - st.started))", .info)
                try submitReadyStages()
            }
        }

        /// A straggler worth a speculative copy (Spark's rule): its stage has at least 75 % of
        /// its tasks finished and it has run 1.5× the median of its finished peers (and over
        /// half a second); one copy per task.
        func straggler(now: Int64) -> TaskKey? {
            guard options.speculation else { return nil }
            for w in workers where w.alive {
                guard let r = w.running, !speculated.contains(r.key) else { continue }
                let st = states[r.key.stage]
                let total = taskCount(plan.stages[r.key.stage])
                guard !st.done, st.taskMicros.count * 4 >= total * 3, !st.taskMicros.isEmpty else { continue }
                let median = st.taskMicros.sorted()[st.taskMicros.count / 2]
                if now - r.started > max(median * 3 / 2, 500_000) { return r.key }
            }
            return nil
        }

        func assign(_ w: WorkerState) throws {
            guard w.idle, w.alive else { return }
            // The first queued task whose stage can run now (a stage waits while a parent map
            // stage re-runs a lost output); finished tasks are dropped on the way.
            while queueHead < queue.count && !states[queue[queueHead].key.stage].remaining.contains(queue[queueHead].key.partition) {
                queueHead += 1
            }
            guard let index = queue[queueHead...].firstIndex(where: { t in
                states[t.key.stage].remaining.contains(t.key.partition)
                    && plan.stages[t.key.stage].parents.allSatisfy { states[$0.id].done } && inputsReady(t.key)
            }) else {
                if let key = straggler(now: monotonicMicros()) {
                    speculated.insert(key)
                    speculativeAttempts += 1
                    let attempt = nextAttempt[key, default: 0]
                    nextAttempt[key] = attempt + 1
                    log("speculating \(describe(plan.stages[key.stage], key.partition)) on worker \(w.process.id)", .info)
                    try dispatch(w, key, attempt, speculative: true)
                }
                return
            }
            let (key, attempt) = queue[index]
            queue.remove(at: index)
            try dispatch(w, key, attempt, speculative: false)
        }

        func dispatch(_ w: WorkerState, _ key: TaskKey, _ attempt: Int, speculative: Bool) throws {
            let stage = plan.stages[key.stage]
            var blob: [UInt8] = []
            var outputPath: String?
            switch stage.kind {
            case .shuffleMap(let dep): blob = bounds[dep.id] ?? []
            case .result(let action):
                if let s = staging[action.index] { outputPath = "\(s.dir)/_attempts/\(partName(key.partition)).attempt\(attempt)" }
            case .sample: break
            }
            w.idle = false
            w.running = (key, attempt, monotonicMicros())
            var startFields: [String: Any] = ["stage": key.stage, "partition": key.partition, "attempt": attempt,
                                              "worker": w.process.id, "pid": Int(w.process.pid), "speculative": speculative]
            for source in stage.fileSources where key.partition < plan.splits(of: source).count {
                startFields["input"] = plan.splits(of: source)[key.partition].summary
            }
            events.emit("task_start", startFields)
            do {
                try send(.assign(Message.TaskDescriptor(stage: key.stage, partition: key.partition, attempt: attempt,
                                                         blob: blob, outputPath: outputPath,
                                                         spec: states[key.stage].specs?[key.partition].encode() ?? [])), to: w)
            } catch {
                try workerLost(w, reason: "worker \(w.process.id) (pid \(w.process.pid)) cannot be sent a task: \(error)")
            }
        }

        /// Kills a worker, closes its pipes (forwarding what it had left on stderr) and reaps
        /// it; returns its wait status.
        func killAndReap(_ w: WorkerState) -> Int32 {
            w.alive = false
            kill(w.process.pid, SIGKILL)
            close(w.process.toWorker)
            close(w.process.fromWorker)
            if w.process.errors >= 0 { drainErrors(w); close(w.process.errors) }
            var status: Int32 = 0
            waitpid(w.process.pid, &status, 0)
            return status
        }

        /// Kills a worker whose attempt lost a race and starts a fresh one (not a failure).
        func stopLoser(_ w: WorkerState) throws {
            _ = killAndReap(w)
            if let r = w.running {
                events.emit("task_end", ["stage": r.key.stage, "partition": r.key.partition, "attempt": r.attempt,
                                         "worker": w.process.id, "status": "killed", "error": "another attempt committed first"])
                log("stopped the losing attempt \(r.attempt) of \(describe(plan.stages[r.key.stage], r.key.partition)) on worker \(w.process.id)", .info)
            }
            try spawnWorker()
        }

        func workerLost(_ w: WorkerState, reason: String) throws {
            guard w.alive else { return }
            let status = killAndReap(w)
            var code: Int32 = 0
            var why = reason
            switch sluice_wait_status(status, &code) {
            case 1: why += " (exit code \(code))"
            case 2: why += " (killed by signal \(code))"
            default: break
            }
            events.emit("worker_lost", ["worker": w.process.id, "pid": Int(w.process.pid), "reason": why,
                                        "stage": w.running?.key.stage ?? -1, "partition": w.running?.key.partition ?? -1])
            if let running = w.running {
                try taskFailed(running.key, attempt: running.attempt, worker: w, reason: "worker lost: \(why)")
            } else {
                log("worker \(w.process.id) (pid \(w.process.pid)) lost while idle: \(why)")
            }
            replacements += 1
            guard replacements <= options.maxAttempts * max(1, options.workers) else {
                throw JobFailure(description: "job \(job.name): workers keep failing (last: \(why)); giving up")
            }
            try spawnWorker()
        }

        var reusedMapTasks = 0
        if resumable {
            // Committed map outputs are complete by construction (rename commit): reuse them.
            for stage in plan.stages {
                guard case .shuffleMap(let dep) = stage.kind, !plan.needsSample(dep) else { continue }
                let done = (0..<stage.taskCount).filter {
                    fm.fileExists(atPath: ShuffleDependency.outputPath(workDir: workDir, shuffle: dep.id, map: $0))
                }
                guard done.count == stage.taskCount else { continue }
                let st = states[stage.id]
                st.submitted = true
                st.done = true
                st.results = Array(repeating: [], count: stage.taskCount)
                reusedMapTasks += done.count
                events.emit("stage_reused", ["stage": stage.id, "tasks": stage.taskCount])
                log("stage \(stage.id) (map) reused from the interrupted run: \(stage.taskCount) committed map outputs", .info)
            }
        }
        do {
            try submitReadyStages()
            for _ in 0..<max(1, options.workers) { try spawnWorker() }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while !plan.stages.allSatisfy({ states[$0.id].done }) {
                for w in workers where w.idle { try assign(w) }
                reportProgress()
                let live = workers.filter(\.alive)
                var fds = live.map { pollfd(fd: $0.process.fromWorker, events: Int16(POLLIN), revents: 0) }
                    + live.map { pollfd(fd: $0.process.errors, events: Int16(POLLIN), revents: 0) }
                let n = poll(&fds, nfds_t(fds.count), 1000)
                if n < 0 && errno != EINTR { throw SystemError("poll") }
                let now = monotonicMicros()
                for (i, w) in live.enumerated() where w.alive && w.process.errors >= 0 && fds[live.count + i].revents != 0 {
                    let got = buffer.withUnsafeMutableBytes { read(w.process.errors, $0.baseAddress, $0.count) }
                    if got > 0 { buffer.withUnsafeBytes { forwardErrors(w, UnsafeRawBufferPointer(rebasing: $0[0..<got])) } }
                }
                for (i, w) in live.enumerated() {
                    if fds[i].revents == 0 {
                        if w.running != nil && Double(now - w.lastHeard) > options.taskTimeout * 1e6 {
                            try workerLost(w, reason: "no heartbeat for \(Int(options.taskTimeout)) s (hung)")
                        }
                        continue
                    }
                    let got = buffer.withUnsafeMutableBytes { read(w.process.fromWorker, $0.baseAddress, $0.count) }
                    if got <= 0 {
                        if got < 0 && errno == EINTR { continue }
                        try workerLost(w, reason: "worker \(w.process.id) (pid \(w.process.pid)) closed its pipe")
                        continue
                    }
                    w.lastHeard = now
                    buffer.withUnsafeBytes { w.reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
                    while w.alive {
                        let message: Message?
                        do {
                            message = try w.reader.next()
                        } catch {
                            try workerLost(w, reason: "worker \(w.process.id) sent a malformed frame: \(error)")
                            break
                        }
                        guard let message else { break }
                        switch message {
                        case .hello(let version, _):
                            if version != Message.protocolVersion {
                                throw JobFailure(description: "worker speaks protocol \(version), coordinator \(Message.protocolVersion)")
                            }
                        case .ready:
                            w.running = nil
                            w.idle = true
                            try assign(w)
                        case .heartbeat:
                            break
                        case .done(let report):
                            w.running = nil
                            try commit(report, worker: w)
                        case .failed(let f):
                            w.running = nil
                            var lost: (Int, Int)?
                            if let shuffle = f.lostShuffle, let map = f.lostMap { lost = (shuffle, map) }
                            try taskFailed(TaskKey(stage: f.stage, partition: f.partition), attempt: f.attempt, worker: w,
                                           reason: f.message, lost: lost, fatal: f.fatal)
                        case .setup, .assign, .shutdown:
                            try workerLost(w, reason: "worker \(w.process.id) sent a coordinator-only frame")
                        }
                    }
                }
            }
            for w in workers where w.alive {
                try? send(.shutdown, to: w)
                close(w.process.toWorker)
                close(w.process.fromWorker)
                if w.process.errors >= 0 { close(w.process.errors) }
                var status: Int32 = 0
                waitpid(w.process.pid, &status, 0)
                w.alive = false
            }
        } catch {
            killAll()
            var failure = error as? JobFailure ?? JobFailure(description: "job \(job.name) failed: \(error)")
            events.emit("job_end", ["status": "failed", "error": failure.description])
            failure.eventLog = placeEventLog(success: false)
            throw failure
        }

        reportProgress(finished: true)
        // Job commit: every part is in place; mark success and move the folder into place.
        let allMetrics = TaskMetrics()
        for st in states { allMetrics.add(st.metrics) }
        var outputs: [String] = []
        for (_, s) in staging.sorted(by: { $0.key < $1.key }) {
            do {
                try? fm.removeItem(atPath: s.dir + "/_attempts")
                if !allMetrics.skippedByInput.isEmpty {
                    var text = "# records skipped by --bad-records skip: input<TAB>count, then a sample (file:line: reason)\n"
                    for (input, n) in allMetrics.skippedByInput.sorted(by: { $0.key < $1.key }) { text += "\(input)\t\(n)\n" }
                    text += allMetrics.badSamples.map { $0 + "\n" }.joined()
                    guard fm.createFile(atPath: s.dir + "/_bad_records", contents: Data(text.utf8)) else {
                        throw SystemError("cannot write _bad_records")
                    }
                }
                guard fm.createFile(atPath: s.dir + "/_SUCCESS", contents: Data()) else { throw SystemError("cannot write _SUCCESS") }
                if fm.fileExists(atPath: s.final) {
                    let old = s.dir + ".old"
                    try fm.moveItem(atPath: s.final, toPath: old)
                    try fm.moveItem(atPath: s.dir, toPath: s.final)
                    try? fm.removeItem(atPath: old)
                } else {
                    try fm.moveItem(atPath: s.dir, toPath: s.final)
                }
                outputs.append(s.final)
            } catch {
                throw JobFailure(description: "cannot commit output \(s.final): \(error)")
            }
        }
        succeeded = true
        events.emit("job_end", ["status": "success", "outputs": outputs, "duration_ms": Double(monotonicMicros() - started) / 1000,
                                "retries": states.reduce(0) { $0 + $1.retries }, "workers_replaced": replacements,
                                "map_tasks_rerun": mapTasksRerun])
        let eventLogPlace = placeEventLog(success: true)

        var rendered: [[String]] = []
        var results: [[[UInt8]]] = []
        for action in graph.actions {
            let stage = plan.stages.first { if case .result(let a) = $0.kind { return a === action } else { return false } }!
            results.append(states[stage.id].results)
            rendered.append(try action.render(states[stage.id].results))
        }
        let summaries = plan.stages.map { stage -> StageSummary in
            let st = states[stage.id]
            let sorted = st.taskMicros.sorted()
            let records = st.taskRecords.sorted()
            let maxMicros = sorted.last ?? 0, medianMicros = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
            let maxRecords = records.last ?? 0, medianRecords = records.isEmpty ? 0 : records[records.count / 2]
            var hot: [(key: String, share: Double)] = []
            for dep in stage.shuffleInputs {
                // Shares of the records the sketches saw: before any map-side combine.
                let total = sketchedRecords[dep.id] ?? 0
                guard total > 0 else { continue }
                for (k, n) in hotKeyCounts[dep.id] ?? [:] where Double(n) / Double(total) > options.skew.hotKeyShare {
                    hot.append((k, min(1, Double(n) / Double(total))))
                }
            }
            hot.sort { $0.share > $1.share }
            return StageSummary(id: stage.id, kind: stage.kindName, operators: stage.chain.map(plan.label).joined(separator: " → "),
                                tasks: taskCount(stage), recordsIn: st.metrics.recordsRead, recordsOut: st.metrics.recordsWritten,
                                bytesRead: st.metrics.bytesRead, shuffleBytesWritten: st.metrics.shuffleBytesWritten,
                                shuffleBytesRead: st.metrics.shuffleBytesRead, outputBytes: st.metrics.outputBytes,
                                spills: st.metrics.spills, spillBytes: st.metrics.spillBytes, retries: st.retries,
                                wallMicros: st.finished - st.started, maxTaskMicros: sorted.last ?? 0,
                                medianTaskMicros: sorted.isEmpty ? 0 : sorted[sorted.count / 2],
                                peakWorkerRSSKiB: st.metrics.peakRSSKiB, maxTaskRecords: maxRecords,
                                medianTaskRecords: medianRecords,
                                skewed: (maxMicros > 3 * max(medianMicros, 1) && maxMicros > 200_000)
                                    || (maxRecords > 5 * max(medianRecords, 1) && maxRecords > 10_000),
                                hotKeys: hot, skewNotes: skewNotes[stage.id] ?? [], tasksPerWorker: st.perWorker)
        }
        return JobResult(rendered: rendered, stages: summaries, outputs: outputs, wallMicros: monotonicMicros() - started,
                         workerPids: allPids, retries: states.reduce(0) { $0 + $1.retries }, workersReplaced: replacements,
                         mapTasksRerun: mapTasksRerun, skippedByInput: allMetrics.skippedByInput,
                         speculativeAttempts: speculativeAttempts, reusedMapTasks: reusedMapTasks, eventLog: eventLogPlace,
                         results: results)
    }
}

/// `part-00007`.
func partName(_ p: Int) -> String {
    let digits = String(p)
    return "part-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
}

/// `1.23 s` / `45 ms`.
func formatMicros(_ us: Int64) -> String {
    us >= 1_000_000 ? String(format1: Double(us) / 1e6) + " s" : "\(us / 1000) ms"
}
