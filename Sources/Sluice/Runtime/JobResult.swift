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
    /// Workers started, replacements included.
    public var workersStarted: Int
    /// Where each worker ran, as its launcher says (`pid 1234`, `node n2 (srun pid 99)`).
    public var workerLocations: [Int: String] = [:]
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
    /// The signal (SIGINT, SIGTERM, SIGHUP) that stopped the run, if one did.
    public var signal: Int32?
    public init(description: String, eventLog: String? = nil, signal: Int32? = nil) {
        self.description = description
        self.eventLog = eventLog
        self.signal = signal
    }
}
