@testable import Sluice
import Testing

/// The scheduler's policies, without processes: task sets and the stage scheduler are pure
/// logic driven here with a fake clock (plain microsecond values) and fake workers.
@Suite("Task sets: queue, attempts, speculation")
struct TaskSetTests {
    @Test("tasks come out in order, each once; an empty queue gives nil")
    func fifo() {
        let set = TaskSet(stage: 2, taskCount: 3, maxAttempts: 4)
        let got = (0..<4).map { _ in set.next(now: 0) }
        #expect(got == [TaskAttempt(stage: 2, index: 0, attempt: 0), TaskAttempt(stage: 2, index: 1, attempt: 0),
                        TaskAttempt(stage: 2, index: 2, attempt: 0), nil])
        #expect(set.runningCount == 3 && !set.isDone)
    }

    @Test("a failing task is retried with a new attempt number until max attempts, then aborts")
    func retryLimit() {
        let set = TaskSet(stage: 0, taskCount: 2, maxAttempts: 3)
        var a = set.next(now: 0)!
        #expect(a.index == 0)
        _ = set.next(now: 0) // task 1 runs and keeps running
        for attempt in 0..<2 {
            #expect(a.attempt == attempt)
            #expect(set.failed(a, counts: true) == .retry)
            a = set.next(now: 0)!
            #expect(a.index == 0)
        }
        #expect(set.failed(a, counts: true) == .abort(failures: 3))
        #expect(set.retries == 3)
    }

    @Test("a failure that is not the task's fault does not count against its attempts")
    func uncounted() {
        let set = TaskSet(stage: 0, taskCount: 1, maxAttempts: 1)
        for _ in 0..<5 {
            let a = set.next(now: 0)!
            #expect(set.failed(a, counts: false) == .retry)
        }
        #expect(set.failures == [0])
    }

    @Test("speculation: only after 75 % finished, only past 1.5× the median, one copy; first success wins")
    func speculation() {
        let policy = SpeculationPolicy(quantile: 0.75, multiplier: 1.5, minimumMicros: 0)
        let set = TaskSet(stage: 1, taskCount: 4, maxAttempts: 4)
        let attempts = (0..<4).map { _ in set.next(now: 0)! }
        _ = set.succeeded(attempts[0], micros: 1_000)
        _ = set.succeeded(attempts[1], micros: 1_000)
        #expect(set.speculate(now: 10_000, policy: policy) == nil, "only half the tasks finished")
        _ = set.succeeded(attempts[2], micros: 1_000)
        #expect(set.speculate(now: 1_400, policy: policy) == nil, "not yet 1.5× the median")
        let copy = set.speculate(now: 1_600, policy: policy)
        #expect(copy == TaskAttempt(stage: 1, index: 3, attempt: 1))
        #expect(set.speculate(now: 99_000, policy: policy) == nil, "one copy per task")
        // The copy wins: the straggler is named as the loser; its late success is a duplicate.
        #expect(set.succeeded(copy!, micros: 100) == .commit(losers: [attempts[3]]))
        #expect(set.succeeded(attempts[3], micros: 2_000) == .duplicate)
        #expect(set.isDone && set.finishedCount == 4)
    }

    @Test("an attempt that fails while its speculative copy runs leaves the task to the copy")
    func failureWithCopyRunning() {
        let set = TaskSet(stage: 0, taskCount: 2, maxAttempts: 2)
        let a = set.next(now: 0)!, b = set.next(now: 0)!
        _ = set.succeeded(b, micros: 10)
        let copy = set.speculate(now: 1_000_000, policy: SpeculationPolicy(quantile: 0.5))!
        #expect(set.failed(a, counts: true) == .retry)
        #expect(set.next(now: 0) == nil, "not queued again: the copy carries the task")
        #expect(set.succeeded(copy, micros: 10) == .commit(losers: []))
        #expect(set.failed(a, counts: true) == .ignored)
    }

    @Test("a merge task waits for its partials, and again when a partial must run again")
    func mergeWaits() {
        let specs = SkewPlanner.twoStep([TaskSpec(partition: 0, shuffle: 1, maps: 0..<2), TaskSpec(partition: 0, shuffle: 1, maps: 2..<4),
                                         TaskSpec(partition: 1)])
        // partials 0 and 1, merge 2, whole partition 3
        let set = TaskSet(stage: 3, taskCount: 2, specs: specs, maxAttempts: 4)
        #expect(set.partials(of: 2) == [0, 1])
        let p0 = set.next(now: 0)!, p1 = set.next(now: 0)!, whole = set.next(now: 0)!
        #expect([p0.index, p1.index, whole.index] == [0, 1, 3])
        #expect(set.next(now: 0) == nil, "the merge waits")
        _ = set.succeeded(p0, micros: 1)
        #expect(set.next(now: 0) == nil, "one partial still runs")
        _ = set.succeeded(p1, micros: 1)
        let merge = set.next(now: 0)!
        #expect(merge.index == 2)
        // The merge finds partial 1 gone: it runs again, and the merge waits for it.
        set.resubmit(1)
        #expect(set.failed(merge, counts: true) == .retry)
        let again = set.next(now: 0)!
        #expect(again.index == 1 && again.attempt == 1)
        #expect(set.next(now: 0) == nil)
        _ = set.succeeded(again, micros: 1)
        #expect(set.next(now: 0)?.index == 2)
    }

    @Test("picking the next task does not scan the queue: 200 000 tasks in seconds, not the minutes a scan would take")
    func noScan() {
        let set = TaskSet(stage: 0, taskCount: 200_000, maxAttempts: 4)
        let clock = ContinuousClock()
        let took = clock.measure {
            while let a = set.next(now: 0) { _ = set.succeeded(a, micros: 1) }
        }
        #expect(set.isDone)
        #expect(took < .seconds(10), "\(took)")
    }
}

@Suite("Stage scheduler: ready stages, FetchFailed, the job's end")
struct StageSchedulerTests {
    /// map 0 → shuffle 10, map 1 → shuffle 11, result 2 reads both.
    func diamond(maxAttempts: Int = 4) -> StageScheduler {
        StageScheduler(StageGraph(stages: [
            .init(id: 0, parents: [], taskCount: 2, writesShuffle: 10),
            .init(id: 1, parents: [], taskCount: 1, writesShuffle: 11),
            .init(id: 2, parents: [0, 1], taskCount: 3),
        ]), maxAttempts: maxAttempts)
    }

    func runStage(_ s: StageScheduler, _ stage: Int) {
        while !s.done[stage], let a = s.nextTask(now: 0) {
            #expect(a.stage == stage)
            _ = s.taskSucceeded(a, micros: 1, now: 0)
        }
    }

    @Test("a stage is submitted once its parents are done; the job ends when every stage is")
    func readiness() {
        let s = diamond()
        #expect(s.readyStages() == [0, 1])
        s.submit(0, specs: nil, now: 0)
        s.submit(1, specs: nil, now: 0)
        #expect(s.readyStages().isEmpty)
        runStage(s, 0)
        #expect(s.readyStages().isEmpty, "stage 1 still runs")
        let last = s.nextTask(now: 0)!
        let (_, finished) = s.taskSucceeded(last, micros: 1, now: 5)
        #expect(finished && s.finished[1] == 5)
        #expect(s.readyStages() == [2])
        s.submit(2, specs: nil, now: 0)
        #expect(!s.isJobDone)
        runStage(s, 2)
        #expect(s.isJobDone)
    }

    @Test("FetchFailed re-runs the lost map task, the reducer waits and retries without a counted failure")
    func fetchFailed() {
        let s = diamond(maxAttempts: 1)
        s.submit(0, specs: nil, now: 0)
        s.submit(1, specs: nil, now: 0)
        runStage(s, 0)
        runStage(s, 1)
        s.submit(2, specs: nil, now: 0)
        let reducer = s.nextTask(now: 0)!
        #expect(s.fetchFailed(reducer, shuffle: 10, map: 1) == .resubmitted(mapStage: 0, mapTask: 1, rerun: true))
        #expect(!s.done[0] && !s.isRunnable(2))
        // Only the map task is offered while its stage is incomplete, not the waiting reducer.
        let map = s.nextTask(now: 0)!
        #expect(map == TaskAttempt(stage: 0, index: 1, attempt: 1))
        // A second reducer losing the same output while it re-runs does not re-run it twice.
        let other = s.nextTask(now: 0)
        #expect(other == nil, "stage 2 waits for stage 0")
        _ = s.taskSucceeded(map, micros: 1, now: 0)
        #expect(s.done[0] && s.isRunnable(2))
        let retried = s.nextTask(now: 0)!
        #expect(retried.stage == 2)
        #expect(s.taskSets[2]!.failures.allSatisfy { $0 == 0 }, "a fetch failure is not the reducer's fault")
    }

    @Test("losing the same map output again and again is bounded")
    func fetchFailedBounded() {
        let s = diamond(maxAttempts: 2)
        s.submit(0, specs: nil, now: 0)
        s.submit(1, specs: nil, now: 0)
        runStage(s, 0)
        runStage(s, 1)
        s.submit(2, specs: nil, now: 0)
        var outcome: StageScheduler.FetchFailure = .ignored
        for _ in 0..<3 {
            let reducer = s.nextTask(now: 0)!
            outcome = s.fetchFailed(reducer, shuffle: 10, map: 0)
            if case .abort = outcome { break }
            runStage(s, 0)
        }
        #expect(outcome == .abort(mapStage: 0, mapTask: 0, losses: 3))
    }

    @Test("a task failing max-attempts times aborts; a stage without tasks is done at once")
    func abortAndEmpty() {
        let s = StageScheduler(StageGraph(stages: [.init(id: 0, parents: [], taskCount: 0, writesShuffle: 1),
                                                   .init(id: 1, parents: [0], taskCount: 1)]), maxAttempts: 2)
        s.submit(0, specs: nil, now: 0)
        #expect(s.done[0] && s.readyStages() == [1])
        s.submit(1, specs: nil, now: 0)
        #expect(s.taskFailed(s.nextTask(now: 0)!) == .retry)
        #expect(s.taskFailed(s.nextTask(now: 0)!) == .abort(failures: 2))
    }
}

@Suite("Liveness and fault specs")
struct LivenessTests {
    @Test("a running worker is hung when silent, or when heartbeats come but progress stands still")
    func verdicts() {
        let l = Liveness(timeoutMicros: 2_000_000)
        #expect(l.verdict(now: 10_000_000, lastHeard: 0, lastProgress: 0, running: false) == .alive)
        #expect(l.verdict(now: 2_500_000, lastHeard: 0, lastProgress: 2_000_000, running: true) == .silent)
        #expect(l.verdict(now: 2_500_000, lastHeard: 2_400_000, lastProgress: 100_000, running: true) == .noProgress)
        #expect(l.verdict(now: 2_500_000, lastHeard: 2_400_000, lastProgress: 1_000_000, running: true) == .alive)
        #expect(l.heartbeatMicros <= 250_000, "several heartbeats within the timeout")
    }

    @Test("faults fire at the start or after N records; stall defaults to mid-task; random records are reproducible")
    func triggers() throws {
        let f = try FaultInjection("crash@0.1.0,stall@1.*.0,throw@2.0.0:after=500,exit@3.0.*:after=random")
        #expect(f.fault(stage: 0, partition: 1, attempt: 0) == .init(kind: .crash, afterRecords: 0))
        #expect(f.fault(stage: 0, partition: 1, attempt: 1) == nil)
        #expect(f.fault(stage: 1, partition: 7, attempt: 0) == .init(kind: .stall, afterRecords: 100))
        #expect(f.fault(stage: 2, partition: 0, attempt: 0) == .init(kind: .throw, afterRecords: 500))
        let r = f.fault(stage: 3, partition: 0, attempt: 2)!
        #expect(r.kind == .exit && (1...10_000).contains(r.afterRecords))
        #expect(f.fault(stage: 3, partition: 0, attempt: 2) == r)
        #expect(f.description == "crash@0.1.0,stall@1.*.0,throw@2.0.0:after=500,exit@3.0.*:after=random")
        #expect(throws: JobError.self) { try FaultInjection("stall@0.0.0:after=0") }
        #expect(throws: JobError.self) { try FaultInjection("stall@0.0.0:after=soon") }
    }
}
