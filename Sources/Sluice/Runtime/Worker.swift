#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A worker process: the same binary re-executed in worker mode. It reads frames from
/// stdin, builds the job's graph from the setup message (so closures never cross the pipe),
/// runs the tasks it is given and reports on stdout. Anything printed by user code goes to
/// stderr: the frame channel is a private copy of the original stdout.
public struct Worker {
    let jobs: [Job]

    public init(jobs: [Job]) { self.jobs = jobs }

    /// Runs until the coordinator says shutdown or closes the pipe; returns the exit code.
    public func run() -> Int32 {
        let frameFD = dup(1)
        dup2(2, 1) // stray prints must never corrupt the frame stream
        let out = FrameWriter(fd: frameFD)
        var input = FrameReader()
        do {
            try out.send(.hello(version: Message.protocolVersion, pid: getpid()))
            guard case .setup(let setup)? = try readFrame(fd: 0, into: &input) else {
                throw DecodingError("expected a setup frame")
            }
            guard let job = jobs.first(where: { $0.name == setup.job }) else {
                throw JobError.invalid("this binary has no job named \(setup.job)")
            }
            let plan = try PhysicalPlan(graph: try job.graph(setup.arguments), options: setup.options, splits: setup.splits)
            let heartbeat = Heartbeat(out: out)
            heartbeat.start()
            let injection = try ProcessEnvironment.current["SLUICE_INJECT"].map { try FaultInjection($0) }
            try out.send(.ready)
            while let message = try readFrame(fd: 0, into: &input) {
                switch message {
                case .assign(let task):
                    let fault = injection?.fault(stage: task.stage, partition: task.partition, attempt: task.attempt)
                    switch fault {
                    case .crash?: kill(getpid(), SIGKILL)
                    case .exit?: exit(3)
                    case .hang?:
                        // Silent until killed; but never outlive a coordinator that died.
                        heartbeat.pause()
                        let parent = getppid()
                        while getppid() == parent { sleep(1) }
                        exit(1)
                    case .throw?:
                        try out.send(.failed(Message.TaskFailure(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                                                 message: InjectedFailure().description, lostShuffle: nil, lostMap: nil)))
                        try out.send(.ready)
                        continue
                    case .slow?:
                        sleep(5)
                    case .corrupt?, nil:
                        break
                    }
                    let reply = run(task, plan: plan, setup: setup)
                    if fault == .corrupt, case .done(let report) = reply, report.mapStats != nil, let file = report.file {
                        corruptFile(file)
                    }
                    try out.send(reply)
                    try out.send(.ready)
                case .shutdown:
                    return 0
                default:
                    throw DecodingError("unexpected frame from the coordinator")
                }
            }
            return 0
        } catch {
            let line = Array("sluice worker \(getpid()): \(error)\n".utf8)
            _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            return 1
        }
    }

    private func run(_ task: Message.TaskDescriptor, plan: PhysicalPlan, setup: Message.Setup) -> Message {
        let started = monotonicMicros()
        BytesTableShelf.enter(stage: task.stage)
        let ctx = TaskContext(stage: task.stage, partition: task.partition, attempt: task.attempt, workDir: setup.workDir,
                              memoryBudget: setup.memoryBudget, maxExpandedBytes: setup.maxExpandedBytes,
                              skipBadRecords: setup.skipBadRecords, compressOutput: setup.compressOutput,
                              plan: plan.withBounds(task.blob, forStage: task.stage))
        do {
            guard task.stage < plan.stages.count else { throw DecodingError("no stage \(task.stage)") }
            let stage = plan.stages[task.stage]
            var report = Message.TaskReport(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                            metrics: ctx.metrics, mapStats: nil, result: [], file: nil, micros: 0)
            // A task of a skew-planned stage: the real partition, and what part of it to do.
            var partition = task.partition
            if !task.spec.isEmpty {
                let spec = try TaskSpec.decode(task.spec)
                ctx.spec = spec
                partition = spec.partition
            }
            switch stage.kind {
            case .shuffleMap(let dep):
                let path = ShuffleDependency.outputPath(workDir: setup.workDir, shuffle: dep.id, map: partition)
                    + ".task\(task.partition).attempt\(task.attempt).tmp"
                report.mapStats = try dep.runMapTask(ctx, partition: partition, path: path)
                report.file = path
            case .sample(let dep):
                report.result = try dep.sample(ctx, partition: task.partition)
            case .result(let action):
                report.result = try action.runTask(ctx, partition: partition, partPath: task.outputPath)
                report.file = task.outputPath
            }
            report.micros = monotonicMicros() - started
            var usage = rusage()
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
            ctx.metrics.peakRSSKiB = Int64(usage.ru_maxrss)
            return .done(report)
        } catch let e as ShuffleDataError {
            return .failed(Message.TaskFailure(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                               message: e.description, lostShuffle: e.shuffle, lostMap: e.mapTask))
        } catch let e as InputError {
            return .failed(Message.TaskFailure(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                               message: e.description, lostShuffle: nil, lostMap: nil, fatal: true))
        } catch {
            return .failed(Message.TaskFailure(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                               message: "\(error)", lostShuffle: nil, lostMap: nil))
        }
    }
}

/// Sends a heartbeat frame every second from a background thread, so the coordinator can
/// tell a busy worker from a hung one.
final class Heartbeat: @unchecked Sendable {
    let out: FrameWriter
    private let lock = Mutex()
    private var paused = false
    init(out: FrameWriter) { self.out = out }

    /// Stops the heartbeats (an injected hang: the worker looks dead to the coordinator).
    func pause() { lock.withLock { paused = true } }
    var isPaused: Bool { lock.withLock { paused } }

    func start() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { arg in
            let heartbeat = Unmanaged<Heartbeat>.fromOpaque(arg!).takeRetainedValue()
            while true {
                sleep(1)
                if heartbeat.isPaused { continue }
                if (try? heartbeat.out.send(.heartbeat)) == nil { return nil }
            }
        }, box.toOpaque())
        pthread_detach(thread)
    }
}
