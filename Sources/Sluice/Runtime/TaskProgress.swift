#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys
import Synchronization

/// Ticks of progress in this process that the task's metrics do not show: a buffer read from
/// an input file or a shuffle file, a block written, or a user's `progress()` call during long
/// per-record work. Liveness follows progress (Hadoop's rule): a task whose metrics and ticks
/// stand still for `--task-timeout` is hung, even when its process answers.
enum TaskProgress {
    private static let ticks = Atomic<UInt64>(0)

    /// Counts one step of progress (cheap: one relaxed atomic add).
    static func advance() { ticks.add(1, ordering: .relaxed) }

    static var value: UInt64 { ticks.load(ordering: .relaxed) }
}

/// The worker's background thread: sends a heartbeat carrying the running task's progress
/// every `interval`, and fires an injected fault that is due mid-task (after N records) the way
/// the real failure happens — the process killed or exiting wherever the task is, or the task's
/// thread frozen while this thread goes on.
final class TaskWatch: @unchecked Sendable {
    private let out: FrameWriter
    private let intervalMicros: Int64
    private let lock = Mutex(())
    // Guarded by `lock`.
    private var metrics: TaskMetrics?
    private var fault: FaultInjection.Armed?
    private var taskThread: pthread_t?
    private var paused = false
    /// A `throw` fault came due; the task thread raises it before it reports.
    private var throwDue = false

    init(out: FrameWriter, intervalMicros: Int64) {
        self.out = out
        self.intervalMicros = max(10_000, intervalMicros)
    }

    /// A task starts on the calling thread; `fault` fires once it has read its records.
    func begin(_ metrics: TaskMetrics, fault: FaultInjection.Armed?) {
        lock.withLock { _ in
            self.metrics = metrics
            self.fault = fault
            self.taskThread = pthread_self()
            self.throwDue = false
        }
    }

    /// The task ended; returns the fault still armed (its input ended before the trigger), or
    /// a `throw` that came due, for the task thread to carry out.
    func end() -> FaultInjection.Armed? {
        lock.withLock { _ in
            defer { metrics = nil; fault = nil; taskThread = nil; throwDue = false }
            if throwDue { return FaultInjection.Armed(kind: .throw, afterRecords: 0) }
            return fault
        }
    }

    /// Stops the heartbeats for good (an injected hang: the worker looks dead).
    func pause() { lock.withLock { _ in paused = true } }

    /// The progress counter a heartbeat carries. The metrics are read while the task thread
    /// bumps them: aligned word loads, at worst a value one update old.
    private func progress() -> UInt64 {
        var p = TaskProgress.value
        if let m = metrics {
            for v in [m.recordsRead, m.recordsWritten, m.spills] { p &+= UInt64(truncatingIfNeeded: v) }
            for v in [m.bytesRead, m.shuffleBytesRead, m.shuffleBytesWritten, m.outputBytes, m.spillBytes] {
                p &+= UInt64(truncatingIfNeeded: v)
            }
        }
        return p
    }

    /// Fires the armed fault if its record count is reached; called with the lock held.
    private func fireIfDue() {
        guard let f = fault, f.afterRecords > 0, let m = metrics, m.recordsRead >= f.afterRecords else { return }
        fault = nil
        switch f.kind {
        case .crash: kill(getpid(), SIGKILL)
        case .exit: _exit(3)
        case .stall:
            if let t = taskThread { _ = sluice_stall_thread(t) }
        case .hang:
            paused = true
            if let t = taskThread { _ = sluice_stall_thread(t) }
        case .throw: throwDue = true
        case .slow, .corrupt: break // never armed mid-task
        }
    }

    func start() {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { arg in
            let watch = Unmanaged<TaskWatch>.fromOpaque(arg!).takeRetainedValue()
            var lastSent = monotonicMicros()
            while true {
                let armed = watch.lock.withLock { _ in watch.fault.map { $0.afterRecords > 0 } ?? false }
                usleep(useconds_t(armed ? 5_000 : min(watch.intervalMicros, 100_000)))
                let (silent, progress) = watch.lock.withLock { _ in
                    watch.fireIfDue()
                    return (watch.paused, watch.progress())
                }
                let now = monotonicMicros()
                guard !silent, now - lastSent >= watch.intervalMicros else { continue }
                lastSent = now
                if (try? watch.out.send(.heartbeat(progress: progress))) == nil { return nil }
            }
        }, box.toOpaque())
        pthread_detach(thread)
    }
}

/// Blocks the calling thread until the coordinator that started this process is gone (its
/// parent changed, or its stdin closed: through `srun` the parent is Slurm's step daemon),
/// then exits: what a stalled or hung task does, without ever outliving its coordinator.
func waitForParentToDie() -> Never {
    sluice_wait_for_coordinator_to_go()
    exit(1)
}
