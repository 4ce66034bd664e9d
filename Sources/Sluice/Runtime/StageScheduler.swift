/// The stages of a job as the scheduler sees them: ids, parents, task counts, and which
/// shuffle a map stage writes. Built from the physical plan; tests build it by hand.
struct StageGraph: Sendable {
    struct Node: Sendable {
        var id: Int
        var parents: [Int]
        var taskCount: Int
        /// The shuffle this stage's tasks write (map stages).
        var writesShuffle: Int?
    }
    var stages: [Node]
}

/// Which stages run, in what order, and the job's end (Spark's DAGScheduler): a stage is
/// submitted once all its parents are done; tasks are offered from the runnable task sets in
/// stage order; a reducer that finds a map output missing or corrupt (FetchFailed) makes the
/// map stage run that task again, and the reducer waits and retries without it counting as a
/// failure (repeated loss of one output is bounded by `maxAttempts`). Pure logic, like
/// `TaskSet`: the caller passes the time.
final class StageScheduler {
    /// What became of a fetch failure.
    enum FetchFailure: Equatable {
        /// The map task runs again (`rerun`: it had finished and its output is void now); the
        /// reducer waits for it.
        case resubmitted(mapStage: Int, mapTask: Int, rerun: Bool)
        /// The same map output was lost more than `maxAttempts` times: the job fails.
        case abort(mapStage: Int, mapTask: Int, losses: Int)
        /// The reducer had already succeeded (a late duplicate): nothing to do.
        case ignored
    }

    let graph: StageGraph
    let maxAttempts: Int
    private(set) var taskSets: [TaskSet?]
    private(set) var done: [Bool]
    private var submitted: [Bool]
    private var mapStageOfShuffle: [Int: Int] = [:]
    private var fetchFailures: [TaskAttempt: Int] = [:]
    /// Start and end of each stage's (last) run, for the summary.
    private(set) var started: [Int64]
    private(set) var finished: [Int64]

    init(_ graph: StageGraph, maxAttempts: Int) {
        self.graph = graph
        self.maxAttempts = max(1, maxAttempts)
        let n = graph.stages.count
        taskSets = Array(repeating: nil, count: n)
        done = Array(repeating: false, count: n)
        submitted = Array(repeating: false, count: n)
        started = Array(repeating: 0, count: n)
        finished = Array(repeating: 0, count: n)
        for s in graph.stages { if let shuffle = s.writesShuffle { mapStageOfShuffle[shuffle] = s.id } }
    }

    var isJobDone: Bool { !done.contains(false) }

    /// Stages not yet submitted whose parents are all done, in id order.
    func readyStages() -> [Int] {
        graph.stages.filter { !submitted[$0.id] && $0.parents.allSatisfy { done[$0] } }.map(\.id)
    }

    /// Submits `stage` with its tasks (skew-planned `specs`, or one per partition).
    @discardableResult
    func submit(_ stage: Int, specs: [TaskSpec]?, now: Int64) -> TaskSet {
        let set = TaskSet(stage: stage, taskCount: graph.stages[stage].taskCount, specs: specs, maxAttempts: maxAttempts)
        taskSets[stage] = set
        submitted[stage] = true
        started[stage] = now
        if set.isDone {
            done[stage] = true
            finished[stage] = now
        }
        return set
    }

    /// Marks a stage done without running it (its outputs were reused by `--resume`).
    func markReused(_ stage: Int, now: Int64) {
        let set = submit(stage, specs: nil, now: now)
        for _ in 0..<set.count {
            guard let a = set.next(now: now) else { break }
            _ = set.succeeded(a, micros: 0)
        }
        done[stage] = true
        finished[stage] = now
    }

    /// Whether a submitted stage may run tasks now (a parent may be re-running a lost output).
    func isRunnable(_ stage: Int) -> Bool {
        submitted[stage] && !done[stage] && graph.stages[stage].parents.allSatisfy { done[$0] }
    }

    /// The next task to run: the first queued task of the runnable stages, in stage order.
    func nextTask(now: Int64) -> TaskAttempt? {
        for set in taskSets.compactMap({ $0 }) where isRunnable(set.stage) {
            if let a = set.next(now: now) { return a }
        }
        return nil
    }

    /// A speculative copy of a straggler in a runnable stage, if any.
    func speculativeTask(now: Int64, policy: SpeculationPolicy) -> TaskAttempt? {
        for set in taskSets.compactMap({ $0 }) where isRunnable(set.stage) {
            if let a = set.speculate(now: now, policy: policy) { return a }
        }
        return nil
    }

    /// Records a success; `stageFinished` is true when it completed its stage.
    func taskSucceeded(_ a: TaskAttempt, micros: Int64, now: Int64) -> (TaskSet.Success, stageFinished: Bool) {
        guard let set = taskSets[a.stage] else { return (.duplicate, false) }
        let outcome = set.succeeded(a, micros: micros)
        guard case .commit = outcome, set.isDone, !done[a.stage] else { return (outcome, false) }
        done[a.stage] = true
        finished[a.stage] = now
        return (outcome, true)
    }

    /// Records a failure of the task's own making (counted against `maxAttempts`).
    func taskFailed(_ a: TaskAttempt) -> TaskSet.Failure {
        taskSets[a.stage]?.failed(a, counts: true) ?? .ignored
    }

    /// A reducer found output `map` of `shuffle` missing or corrupt (Spark's FetchFailed).
    func fetchFailed(_ a: TaskAttempt, shuffle: Int, map: Int) -> FetchFailure {
        guard let reducers = taskSets[a.stage], let mapStage = mapStageOfShuffle[shuffle],
              let mapSet = taskSets[mapStage] else { return .ignored }
        guard reducers.failed(a, counts: false) != .ignored else { return .ignored }
        let mapTask = mapSet.task(writingMapOutput: map)
        let key = TaskAttempt(stage: mapStage, index: mapTask, attempt: 0)
        fetchFailures[key, default: 0] += 1
        if fetchFailures[key]! > maxAttempts {
            return .abort(mapStage: mapStage, mapTask: mapTask, losses: fetchFailures[key]!)
        }
        let rerun = mapSet.states[mapTask] == .finished
        if rerun {
            mapSet.resubmit(mapTask)
            done[mapStage] = false
        }
        return .resubmitted(mapStage: mapStage, mapTask: mapTask, rerun: rerun)
    }

    /// A finished task of `stage` must run again (an input it wrote is gone).
    func resubmit(stage: Int, task: Int) {
        guard let set = taskSets[stage], set.states[task] == .finished else { return }
        set.resubmit(task)
        done[stage] = false
    }
}
