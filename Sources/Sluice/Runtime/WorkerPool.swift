#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When a worker running a task counts as hung (Hadoop's progress rule): it sent nothing at
/// all for the timeout (a dead or frozen process), or its task's progress counter stood still
/// for the timeout while heartbeats kept coming (a task stuck in a loop or a lock).
struct Liveness: Sendable {
    enum Verdict: Equatable { case alive, silent, noProgress }
    var timeoutMicros: Int64

    func verdict(now: Int64, lastHeard: Int64, lastProgress: Int64, running: Bool) -> Verdict {
        guard running else { return .alive }
        if now - lastHeard > timeoutMicros { return .silent }
        if now - lastProgress > timeoutMicros { return .noProgress }
        return .alive
    }

    /// How often workers send heartbeats: often enough to show progress well within the timeout.
    var heartbeatMicros: Int64 { min(1_000_000, max(50_000, timeoutMicros / 8)) }
}

/// A worker as the pool tracks it.
final class PooledWorker {
    let handle: any WorkerHandle
    var reader = FrameReader()
    /// The attempt assigned to it and not yet reported.
    var task: TaskAttempt?
    var taskStarted: Int64 = 0
    /// It asked for a task and has none.
    var idle = false
    var alive = true
    var lastHeard: Int64
    var progress: UInt64 = 0
    var lastProgress: Int64
    var errorTail: [UInt8] = []
    var errorsOpen = true

    init(_ handle: any WorkerHandle, now: Int64) {
        self.handle = handle
        lastHeard = now
        lastProgress = now
    }

    var id: Int { handle.id }
    var label: String { "worker \(handle.id) (\(handle.location))" }
}

/// What happened to the pool's workers, for the coordinator to act on.
enum PoolEvent {
    /// The worker asks for a task.
    case ready(PooledWorker)
    case done(PooledWorker, Message.TaskReport)
    case failed(PooledWorker, Message.TaskFailure)
    /// The worker died, closed its pipe, sent garbage or went silent; it has been stopped.
    /// `worker.task` is the attempt it was running, if any.
    case lost(PooledWorker, reason: String)
    /// The worker's task made no progress for the timeout; the worker has been stopped.
    case stalled(PooledWorker, seconds: Int)
    /// The worker cannot work where it runs (it said why).
    case refused(PooledWorker, reason: String)
}

/// The workers of a run (Spark's SchedulerBackend): starts them through a `WorkerLauncher`,
/// sends each its setup as the first frame, hands out tasks, reads their frames in one
/// `poll(2)` loop, forwards their stderr, watches their liveness and stops them through their
/// launcher handles.
final class WorkerPool {
    let launcher: any WorkerLauncher
    let liveness: Liveness
    /// The setup frame of worker `id`.
    let setup: (Int) -> Message.Setup
    /// Receives every line a worker writes to stderr.
    let logLine: (PooledWorker, String) -> Void
    private(set) var workers: [PooledWorker] = []
    private var pending: [PoolEvent] = []
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    init(launcher: any WorkerLauncher, liveness: Liveness, setup: @escaping (Int) -> Message.Setup,
         logLine: @escaping (PooledWorker, String) -> Void) {
        self.launcher = launcher
        self.liveness = liveness
        self.setup = setup
        self.logLine = logLine
    }

    var live: [PooledWorker] { workers.filter(\.alive) }

    /// Starts one more worker and sends it its setup; a worker that dies at once is reported
    /// by the next `poll`.
    @discardableResult
    func launch() throws -> PooledWorker {
        let handle = try launcher.launch(id: workers.count)
        let w = PooledWorker(handle, now: monotonicMicros())
        workers.append(w)
        send(.setup(setup(w.id)), to: w)
        return w
    }

    /// Sends `attempt` to an idle worker.
    func assign(_ w: PooledWorker, _ attempt: TaskAttempt, _ descriptor: Message.TaskDescriptor) {
        let now = monotonicMicros()
        w.idle = false
        w.task = attempt
        w.taskStarted = now
        w.lastProgress = now
        send(.assign(descriptor), to: w)
    }

    private func send(_ message: Message, to w: PooledWorker) {
        guard w.alive else { return }
        do {
            try FrameWriter(fd: w.handle.input).send(message)
        } catch {
            lose(w, "\(w.label) cannot be sent a frame: \(error)")
        }
    }

    /// Stops a worker that lost a race or is no longer wanted (not a failure); returns how it
    /// ended, or nil when it was already stopped.
    @discardableResult
    func retire(_ w: PooledWorker) -> String? {
        guard w.alive else { return nil }
        w.alive = false
        let ended = w.handle.stop(force: true)
        drainErrors(w)
        return ended
    }

    /// Stops a failed worker and queues a `lost` event naming how it ended.
    private func lose(_ w: PooledWorker, _ reason: String) {
        guard let ended = retire(w) else { return }
        pending.append(.lost(w, reason: "\(reason) (\(ended))"))
    }

    /// Waits up to `timeoutMillis` for frames and returns what happened.
    func poll(timeoutMillis: Int32) throws -> [PoolEvent] {
        var events = pending
        pending.removeAll()
        guard events.isEmpty else { return events }
        let watched = live
        var fds = watched.map { pollfd(fd: $0.handle.output, events: Int16(POLLIN), revents: 0) }
            + watched.map { pollfd(fd: $0.handle.errors, events: Int16(POLLIN), revents: 0) }
        if Glibc.poll(&fds, nfds_t(fds.count), timeoutMillis) < 0 && errno != EINTR { throw SystemError("poll") }
        let now = monotonicMicros()
        for (i, w) in watched.enumerated() where w.alive && w.handle.errors >= 0 && fds[watched.count + i].revents != 0 {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(w.handle.errors, $0.baseAddress, $0.count) }
            if got > 0 { buffer.withUnsafeBytes { forwardErrors(w, UnsafeRawBufferPointer(rebasing: $0[0..<got])) } }
        }
        for (i, w) in watched.enumerated() where w.alive && fds[i].revents != 0 {
            try receive(w, now: now, into: &events)
        }
        for w in watched where w.alive {
            switch liveness.verdict(now: now, lastHeard: w.lastHeard, lastProgress: w.lastProgress, running: w.task != nil) {
            case .alive: break
            case .silent: lose(w, "\(w.label) sent nothing for \(Int(liveness.timeoutMicros / 1_000_000)) s (hung)")
            case .noProgress:
                retire(w)
                events.append(.stalled(w, seconds: Int((now - w.lastProgress) / 1_000_000)))
            }
        }
        events += pending
        pending.removeAll()
        return events
    }

    /// Reads what a worker sent and turns its complete frames into events.
    private func receive(_ w: PooledWorker, now: Int64, into events: inout [PoolEvent]) throws {
        let got = buffer.withUnsafeMutableBytes { Glibc.read(w.handle.output, $0.baseAddress, $0.count) }
        if got < 0 && errno == EINTR { return }
        guard got > 0 else { return lose(w, "\(w.label) closed its pipe") }
        w.lastHeard = now
        buffer.withUnsafeBytes { w.reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
        while w.alive {
            let message: Message?
            do {
                message = try w.reader.next()
            } catch {
                return lose(w, "\(w.label) sent a malformed frame: \(error)")
            }
            guard let message else { return }
            switch message {
            case .hello(let version, _):
                if version != Message.protocolVersion {
                    throw JobFailure(description: "\(w.label) speaks protocol \(version), the coordinator \(Message.protocolVersion): mixed binaries?")
                }
            case .ready:
                w.task = nil
                w.idle = true
                events.append(.ready(w))
            case .heartbeat(let progress):
                if progress != w.progress {
                    w.progress = progress
                    w.lastProgress = now
                }
            case .done(let report):
                w.task = nil
                events.append(.done(w, report))
            case .failed(let failure):
                w.task = nil
                events.append(.failed(w, failure))
            case .refused(let reason):
                events.append(.refused(w, reason: reason))
            case .setup, .assign, .shutdown:
                return lose(w, "\(w.label) sent a coordinator-only frame")
            }
        }
    }

    /// Forwards a worker's complete stderr lines.
    private func forwardErrors(_ w: PooledWorker, _ bytes: UnsafeRawBufferPointer) {
        w.errorTail.append(contentsOf: bytes)
        while let nl = w.errorTail.firstIndex(of: 0x0A) {
            let line = String(decoding: w.errorTail[..<nl], as: UTF8.self)
            w.errorTail.removeSubrange(...nl)
            logLine(w, line)
        }
    }

    /// Forwards what a stopped worker left on stderr, then closes it.
    private func drainErrors(_ w: PooledWorker) {
        let fd = w.handle.errors
        guard fd >= 0, w.errorsOpen else { return }
        w.errorsOpen = false
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            chunk.withUnsafeBytes { forwardErrors(w, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        if !w.errorTail.isEmpty { [UInt8(0x0A)].withUnsafeBytes { forwardErrors(w, $0) } }
        close(fd)
    }

    /// Tells every live worker to shut down and waits for them (the job's end).
    func shutdown() {
        for w in live {
            send(.shutdown, to: w)
            guard w.alive else { continue }
            w.alive = false
            _ = w.handle.stop(force: false)
            drainErrors(w)
        }
        pending.removeAll()
    }

    /// Stops every live worker at once (the job failed).
    func stopAll() {
        for w in live { retire(w) }
        pending.removeAll()
    }
}
