/// One attempt of one task: the stage, the task's index in its stage's task set, and the
/// attempt number (0 for the first).
struct TaskAttempt: Hashable, Sendable, CustomStringConvertible {
    var stage: Int
    var index: Int
    var attempt: Int
    var description: String { "\(stage).\(index).\(attempt)" }
}

/// Spark's speculation rule: once `quantile` of a stage's tasks have finished, a task running
/// longer than `multiplier` × their median duration (and at least `minimumMicros`) gets one
/// speculative copy; the first attempt to commit wins.
struct SpeculationPolicy: Sendable {
    var quantile = 0.75
    var multiplier = 1.5
    var minimumMicros: Int64 = 500_000
}

/// The tasks of one submitted stage (Spark's TaskSetManager): which wait to run, the attempts
/// running, failures counted against `--max-attempts`, speculative copies, and the first
/// successful attempt of each task. Pure logic, no processes or clocks: the caller passes the
/// time, so tests drive it with a fake clock.
///
/// Tasks wait in a FIFO; picking the next one pops its head (finished or re-queued entries are
/// skipped, each at most once), never scanning the queue. After skew planning a merge task
/// waits outside the queue until the partial aggregations of its partition have finished.
final class TaskSet {
    enum State: Equatable { case waiting, queued, running, finished }

    /// What the caller must do after an attempt succeeded.
    enum Success: Equatable {
        /// The first success: commit its output; stop these other running attempts.
        case commit(losers: [TaskAttempt])
        /// The task had already succeeded: discard this attempt's output.
        case duplicate
    }

    /// What the caller must do after an attempt failed.
    enum Failure: Equatable {
        /// Queued again (or another attempt of it still runs).
        case retry
        /// The task failed `maxAttempts` times: the job fails.
        case abort(failures: Int)
        /// The task had already succeeded, or this attempt was superseded: nothing to do.
        case ignored
    }

    let stage: Int
    /// Skew-planned task specs (one per task), nil for one plain task per partition.
    let specs: [TaskSpec]?
    let count: Int
    let maxAttempts: Int
    private(set) var states: [State]
    private(set) var finishedCount = 0
    /// Failures counted against `maxAttempts`, per task.
    private(set) var failures: [Int]
    /// Failed attempts retried, over all tasks.
    private(set) var retries = 0
    /// Durations of the first successful attempts, in finishing order.
    private(set) var durations: [Int64] = []
    private var queue: [Int] = []
    private var head = 0
    private var nextAttempt: [Int]
    /// Running attempts per task: attempt number → start time.
    private var running: [Int: [Int: Int64]] = [:]
    private var speculated = Set<Int>()
    /// Merge task → partial tasks of its partition not finished yet.
    private var outstanding: [Int: Int] = [:]
    /// Partial task → the merge task waiting for it.
    private var mergeOf: [Int: Int] = [:]

    init(stage: Int, taskCount: Int, specs: [TaskSpec]? = nil, maxAttempts: Int) {
        self.stage = stage
        self.specs = specs
        count = specs?.count ?? taskCount
        self.maxAttempts = max(1, maxAttempts)
        states = Array(repeating: .queued, count: count)
        failures = Array(repeating: 0, count: count)
        nextAttempt = Array(repeating: 0, count: count)
        if let specs {
            for (m, spec) in specs.enumerated() where spec.merges != nil {
                let partials = specs.indices.filter { specs[$0].partition == spec.partition && specs[$0].partial != nil }
                for p in partials { mergeOf[p] = m }
                outstanding[m] = partials.count
                if !partials.isEmpty { states[m] = .waiting }
            }
        }
        queue = (0..<count).filter { states[$0] == .queued }
    }

    var isDone: Bool { finishedCount == count }
    var runningCount: Int { running.values.reduce(0) { $0 + $1.count } }

    /// Whether a task is waiting in the queue.
    var hasQueued: Bool {
        var h = head
        while h < queue.count && states[queue[h]] != .queued { h += 1 }
        return h < queue.count
    }

    /// The next queued task, as a new attempt started at `now`; nil when none is queued.
    func next(now: Int64) -> TaskAttempt? {
        while head < queue.count {
            let index = queue[head]
            head += 1
            guard states[index] == .queued else { continue }
            return launch(index, now: now)
        }
        if head > 0 {
            queue.removeAll(keepingCapacity: true)
            head = 0
        }
        return nil
    }

    private func launch(_ index: Int, now: Int64) -> TaskAttempt {
        let attempt = nextAttempt[index]
        nextAttempt[index] += 1
        states[index] = .running
        running[index, default: [:]][attempt] = now
        return TaskAttempt(stage: stage, index: index, attempt: attempt)
    }

    private func enqueue(_ index: Int) {
        states[index] = .queued
        queue.append(index)
    }

    /// A running task that deserves a speculative copy under `policy`, if any (one copy per
    /// task); the copy is started at `now`. Looks only at running tasks.
    func speculate(now: Int64, policy: SpeculationPolicy) -> TaskAttempt? {
        guard !durations.isEmpty, Double(durations.count) >= policy.quantile * Double(count) else { return nil }
        let sorted = durations.sorted()
        let threshold = max(Int64(Double(sorted[sorted.count / 2]) * policy.multiplier), policy.minimumMicros)
        for (index, attempts) in running.sorted(by: { $0.key < $1.key })
        where attempts.count == 1 && !speculated.contains(index) && states[index] == .running {
            guard let started = attempts.values.first, now - started > threshold else { continue }
            speculated.insert(index)
            return launch(index, now: now)
        }
        return nil
    }

    /// Records that `attempt` succeeded after `micros`.
    func succeeded(_ a: TaskAttempt, micros: Int64) -> Success {
        running[a.index]?[a.attempt] = nil
        guard states[a.index] != .finished else {
            if running[a.index]?.isEmpty == true { running[a.index] = nil }
            return .duplicate
        }
        let losers = (running[a.index] ?? [:]).keys.sorted().map { TaskAttempt(stage: stage, index: a.index, attempt: $0) }
        running[a.index] = nil
        states[a.index] = .finished
        finishedCount += 1
        durations.append(micros)
        if let m = mergeOf[a.index], states[m] != .finished {
            outstanding[m, default: 1] -= 1
            if outstanding[m] == 0 && states[m] == .waiting { enqueue(m) }
        }
        return .commit(losers: losers)
    }

    /// Records that `attempt` failed; `counts` is false when the failure is not the task's
    /// fault (a lost map output it had to read).
    func failed(_ a: TaskAttempt, counts: Bool) -> Failure {
        guard running[a.index]?[a.attempt] != nil else { return .ignored }
        running[a.index]?[a.attempt] = nil
        if running[a.index]?.isEmpty == true { running[a.index] = nil }
        guard states[a.index] != .finished else { return .ignored }
        if counts {
            failures[a.index] += 1
            retries += 1
            if failures[a.index] >= maxAttempts { return .abort(failures: failures[a.index]) }
        }
        // Another attempt (a speculative copy) still runs: it carries the task on. A merge
        // whose partials must run again waits for them.
        if running[a.index] == nil {
            if outstanding[a.index, default: 0] > 0 { states[a.index] = .waiting } else { enqueue(a.index) }
        }
        return .retry
    }

    /// A finished task must run again: its output was lost. Its merge, if any, waits for it.
    func resubmit(_ index: Int) {
        guard states[index] == .finished else { return }
        finishedCount -= 1
        enqueue(index)
        if let m = mergeOf[index], states[m] != .finished {
            outstanding[m, default: 0] += 1
            if states[m] == .queued { states[m] = .waiting }
        }
    }

    /// The attempts running now.
    var runningAttempts: [TaskAttempt] {
        running.flatMap { index, attempts in attempts.keys.map { TaskAttempt(stage: stage, index: index, attempt: $0) } }
    }

    /// The task that writes map output `map` (after skew planning, the partition's merge).
    func task(writingMapOutput map: Int) -> Int {
        specs?.firstIndex { $0.partition == map && $0.partial == nil } ?? map
    }

    /// The partial tasks feeding merge task `index` (empty for other tasks).
    func partials(of index: Int) -> [Int] {
        mergeOf.filter { $0.value == index }.map(\.key).sorted()
    }
}
