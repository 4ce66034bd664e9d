#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

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
                throw CorruptDataError("expected a setup frame")
            }
            // Shuffle files cross between workers through the work folder: it must be the same
            // folder here (shared storage when workers run on other nodes).
            guard access(setup.workDir + "/manifest", R_OK) == 0 else {
                var host = [CChar](repeating: 0, count: 256)
                gethostname(&host, host.count - 1)
                let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                try out.send(.refused("the work folder \(setup.workDir) is not visible on host \(name)"))
                return 4
            }
            guard let job = jobs.first(where: { $0.name == setup.job }) else {
                throw JobError.invalid("this binary has no job named \(setup.job)")
            }
            let plan = try PhysicalPlan(graph: try job.graph(setup.arguments), options: setup.options, splits: setup.splits)
            let injection = setup.inject.isEmpty ? nil : try FaultInjection(setup.inject)
            let scratch = setup.localDir.isEmpty ? nil : try ScratchFolder(base: ScratchFolder.base(setup.localDir))
            defer { scratch?.remove() }
            let watch = TaskWatch(out: out, intervalMicros: setup.heartbeatMicros)
            watch.start()
            try out.send(.ready)
            while let message = try readFrame(fd: 0, into: &input) {
                switch message {
                case .assign(let task):
                    let fault = injection?.fault(stage: task.stage, partition: task.partition, attempt: task.attempt)
                    try out.send(run(task, fault: fault, watch: watch, plan: plan, setup: setup, scratch: scratch?.path))
                    try out.send(.ready)
                case .shutdown:
                    return 0
                default:
                    throw CorruptDataError("unexpected frame from the coordinator")
                }
            }
            return 0
        } catch {
            let line = Array("sluice worker \(getpid()): \(error)\n".utf8)
            _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            return 1
        }
    }

    /// Carries out an injected fault on the task's own thread: at assignment, or when the task's
    /// input ended before the fault's record count. Returns normally only for `slow`.
    private func carryOut(_ kind: FaultInjection.Kind, watch: TaskWatch) throws {
        switch kind {
        case .crash: kill(getpid(), SIGKILL)
        case .exit: _exit(3)
        case .stall: waitForParentToDie() // heartbeats go on, progress stands still
        case .hang:
            watch.pause()
            waitForParentToDie()
        case .throw: throw InjectedFailure()
        case .slow:
            for _ in 0..<50 { // a straggler: slow, but making progress
                usleep(100_000)
                TaskProgress.advance()
            }
        case .corrupt: break
        }
    }

    /// Runs one task attempt, with its injected fault if any, and returns the report to send.
    private func run(_ task: Message.TaskDescriptor, fault: FaultInjection.Armed?, watch: TaskWatch, plan: PhysicalPlan,
                     setup: Message.Setup, scratch: String?) -> Message {
        let ctx = TaskContext(stage: task.stage, partition: task.partition, attempt: task.attempt, workDir: setup.workDir,
                              memoryBudget: setup.memoryBudget, maxExpandedBytes: setup.maxExpandedBytes,
                              maxRecordBytes: setup.maxRecordBytes, scratchDir: scratch,
                              skipBadRecords: setup.skipBadRecords, compressOutput: setup.compressOutput,
                              plan: plan.withBounds(task.blob, forStage: task.stage))
        var reply: Message
        do {
            // `slow` and `corrupt` act at the start and the end of a task; the others may wait
            // for a record count.
            let midTask = fault.flatMap { $0.afterRecords > 0 && $0.kind != .slow && $0.kind != .corrupt ? $0 : nil }
            if let fault, midTask == nil { try carryOut(fault.kind, watch: watch) }
            watch.begin(ctx.metrics, fault: midTask)
            reply = run(task, ctx: ctx, plan: plan, setup: setup)
            if let due = watch.end() { try carryOut(due.kind, watch: watch) }
        } catch {
            reply = .failed(Message.TaskFailure(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                                message: "\(error)", lostShuffle: nil, lostMap: nil))
        }
        if fault?.kind == .corrupt, case .done(let report) = reply, report.mapStats != nil, let file = report.file {
            corruptFile(file)
        }
        return reply
    }

    private func run(_ task: Message.TaskDescriptor, ctx: TaskContext, plan: PhysicalPlan, setup: Message.Setup) -> Message {
        let started = monotonicMicros()
        BytesTableShelf.enter(stage: task.stage)
        do {
            guard task.stage < plan.stages.count else { throw CorruptDataError("no stage \(task.stage)") }
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
                                               message: e.failureDescription, lostShuffle: nil, lostMap: nil, fatal: .badInput))
        } catch let e as SystemError where e.isDiskFull {
            return .failed(Message.TaskFailure(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                               message: e.description, lostShuffle: nil, lostMap: nil, fatal: .diskFull))
        } catch {
            return .failed(Message.TaskFailure(stage: task.stage, partition: task.partition, attempt: task.attempt,
                                               message: "\(error)", lostShuffle: nil, lostMap: nil))
        }
    }
}
