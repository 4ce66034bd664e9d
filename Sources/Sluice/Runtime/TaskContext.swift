/// Counters one task keeps while it runs; they travel back with the task's report and are
/// summed per stage for the run summary.
public final class TaskMetrics {
    public var recordsRead = 0
    public var recordsWritten = 0
    public var bytesRead: Int64 = 0
    public var shuffleBytesWritten: Int64 = 0
    public var shuffleBytesRead: Int64 = 0
    public var outputBytes: Int64 = 0
    public var spills = 0
    public var spillBytes: Int64 = 0
    /// The worker's peak resident memory (KiB) when the task ended.
    public var peakRSSKiB: Int64 = 0

    public init() {}

    func encode(to w: inout ByteWriter) {
        for v in [Int64(recordsRead), Int64(recordsWritten), bytesRead, shuffleBytesWritten, shuffleBytesRead,
                  outputBytes, Int64(spills), spillBytes, peakRSSKiB] { w.writeFixed(v) }
    }

    static func decode(from r: inout ByteReader) throws -> TaskMetrics {
        let m = TaskMetrics()
        m.recordsRead = Int(try r.readFixed(Int64.self))
        m.recordsWritten = Int(try r.readFixed(Int64.self))
        m.bytesRead = try r.readFixed()
        m.shuffleBytesWritten = try r.readFixed()
        m.shuffleBytesRead = try r.readFixed()
        m.outputBytes = try r.readFixed()
        m.spills = Int(try r.readFixed(Int64.self))
        m.spillBytes = try r.readFixed()
        m.peakRSSKiB = try r.readFixed()
        return m
    }

    func add(_ o: TaskMetrics) {
        recordsRead += o.recordsRead
        recordsWritten += o.recordsWritten
        bytesRead += o.bytesRead
        shuffleBytesWritten += o.shuffleBytesWritten
        shuffleBytesRead += o.shuffleBytesRead
        outputBytes += o.outputBytes
        spills += o.spills
        spillBytes += o.spillBytes
        peakRSSKiB = max(peakRSSKiB, o.peakRSSKiB)
    }
}

/// Everything a running task may need: where the work directory is, its memory budget,
/// its identity (for temporary file names) and its metrics.
public final class TaskContext {
    public let stage: Int
    public let partition: Int
    public let attempt: Int
    /// The job's work directory (shuffle files, spills).
    public let workDir: String
    /// Bytes the task may hold in memory before it spills.
    public let memoryBudget: Int
    /// Guard against decompression bombs: the most bytes one gzip stream or archive entry may expand to.
    public let maxExpandedBytes: Int64
    public let metrics = TaskMetrics()

    init(stage: Int, partition: Int, attempt: Int, workDir: String, memoryBudget: Int, maxExpandedBytes: Int64) {
        self.stage = stage
        self.partition = partition
        self.attempt = attempt
        self.workDir = workDir
        self.memoryBudget = memoryBudget
        self.maxExpandedBytes = maxExpandedBytes
    }

    /// A prefix for this attempt's temporary files, unique per stage, partition and attempt.
    @usableFromInline var tempPrefix: String { "\(workDir)/tmp/s\(stage)-p\(partition)-a\(attempt)" }
}
