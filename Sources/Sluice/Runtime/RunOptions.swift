#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a run is carried out.
public struct RunOptions: Sendable {
    /// Worker processes (default: the core count).
    public var workers: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Reduce partitions per shuffle (default: twice the workers; a sort of a large input gets
    /// more, see `planOptions`).
    public var partitions: Int?
    /// Bytes a task may hold before it spills (map-side table, buffers, reduce tables).
    public var memoryPerTask: Int = 256 << 20
    /// Target size of one input split of a large plain file; nil: automatic (see
    /// `SplitPlanner.automaticSplitSize`).
    public var splitSize: Int64?
    /// Where shuffle and spill files go (default: a fresh folder under $TMPDIR or /tmp).
    public var workDir: String?
    /// Node-local scratch for spills and sort runs that never leave a task: nil for the work
    /// folder's `tmp`, `$TMPDIR` for each worker's own temporary folder (on its node).
    public var localDir: String?
    /// Keep the work directory after the run, failed or not (it is removed otherwise).
    public var keepWork = false
    /// Replace an existing output folder.
    public var overwrite = false
    /// Attempts per task before the job fails (Spark's spark.task.maxFailures).
    public var maxAttempts = 4
    /// Seconds a running task may go without progress (records or bytes read or written, or
    /// a `progress()` call), or its worker without a heartbeat, before the attempt is taken as
    /// hung: the worker is stopped and the task retried (Hadoop's `mapreduce.task.timeout`).
    public var taskTimeout: Double = 120
    /// Skip malformed records (counted, sampled into `_bad_records`) instead of failing.
    public var skipBadRecords = false
    /// Write part files gzip-compressed (`part-NNNNN.gz`).
    public var compressOutput = false
    /// Guard against decompression bombs, per gzip stream or archive entry.
    public var maxExpandedBytes: Int64 = 64 << 30
    /// The longest record (a line of text) a task may hold: a longer one is a bad record
    /// (an error naming file and byte, or skipped with `skipBadRecords`), so one huge line
    /// cannot take a worker's memory. Never more than half the task's memory budget (or 4 MiB).
    public var maxRecordBytes = 64 << 20
    /// Launch speculative copies of straggling tasks (first attempt to commit wins).
    public var speculation = false
    /// Reuse the committed map outputs of an interrupted run of the same command (same job,
    /// arguments and plan) found in the work folder.
    public var resume = false
    /// Hot-key and skew handling.
    public var skew = SkewOptions()
    /// Joins whose smaller side reads less than this from disk are broadcast (0: never).
    public var broadcastThreshold: Int64 = 10 << 20
    /// Faults to inject into worker tasks (see `FaultInjection`), for tests and demos; sent
    /// to every worker in its setup frame.
    public var inject: FaultInjection?
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

    /// The knobs of the plan: without `--partitions`, a sort's reducers are sized to half the
    /// task budget (`PlanOptions.rangeShareBytes`).
    public var planOptions: PlanOptions {
        PlanOptions(partitions: effectivePartitions, broadcastThreshold: broadcastThreshold,
                    rangeShareBytes: partitions == nil ? Int64(memoryPerTask / 2) : 0)
    }

    /// `maxRecordBytes` within half the task's budget; tiny test budgets (which force spills)
    /// still allow lines of 4 MiB.
    var effectiveMaxRecordBytes: Int { max(1, min(maxRecordBytes, max(4 << 20, memoryPerTask / 2))) }
}

/// How much a coordinator log line matters.
public enum RunLogLevel: Sendable {
    /// Progress of the plan: stages finished or reused, speculative copies.
    case info
    /// Something went wrong and was recovered: retries, lost workers, lost map outputs.
    case warning
}
