/// Counters one task keeps while it runs; they travel back with the task's report and are
/// summed per stage for the run summary.
///
/// The counters are bumped per record in hot loops, so they opt out of the runtime's dynamic
/// exclusivity checks (two checks per line cost 4 % of wordcount): nothing holds an access to
/// one across a call.
public final class TaskMetrics {
    @exclusivity(unchecked) public var recordsRead = 0
    @exclusivity(unchecked) public var recordsWritten = 0
    @exclusivity(unchecked) public var bytesRead: Int64 = 0
    @exclusivity(unchecked) public var shuffleBytesWritten: Int64 = 0
    @exclusivity(unchecked) public var shuffleBytesRead: Int64 = 0
    @exclusivity(unchecked) public var outputBytes: Int64 = 0
    @exclusivity(unchecked) public var spills = 0
    @exclusivity(unchecked) public var spillBytes: Int64 = 0
    /// The worker's peak resident memory (KiB) when the task ended.
    public var peakRSSKiB: Int64 = 0
    /// Records skipped as bad (`--bad-records skip`), per input file.
    public var skippedByInput: [String: Int] = [:]
    /// A sample of the skipped records' errors (file, line, reason).
    public var badSamples: [String] = []
    static let maxBadSamples = 100

    public init() {}

    func encode(to w: inout ByteWriter) {
        for v in [Int64(recordsRead), Int64(recordsWritten), bytesRead, shuffleBytesWritten, shuffleBytesRead,
                  outputBytes, Int64(spills), spillBytes, peakRSSKiB] { w.writeFixed(v) }
        let inputs = skippedByInput.keys.sorted()
        inputs.encode(to: &w)
        for k in inputs { skippedByInput[k]!.encode(to: &w) }
        badSamples.encode(to: &w)
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
        for k in try [String].decode(from: &r) { m.skippedByInput[k] = try Int.decode(from: &r) }
        m.badSamples = try [String].decode(from: &r)
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
        for (k, v) in o.skippedByInput { skippedByInput[k, default: 0] += v }
        badSamples += o.badSamples.prefix(TaskMetrics.maxBadSamples - min(badSamples.count, TaskMetrics.maxBadSamples))
    }
}

/// Everything a running task may need: where the work directory is, its memory budget,
/// its identity (for temporary file names), the plan it runs under and its metrics.
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
    /// The longest record (a line) the task may hold.
    public let maxRecordBytes: Int
    public let metrics = TaskMetrics()
    /// `--bad-records skip`: malformed records are counted and sampled instead of failing the task.
    public let skipBadRecords: Bool
    /// `--compress gzip`: part files are written gzip-compressed.
    public let compressOutput: Bool
    /// Set for one split of a skewed partition.
    @usableFromInline var spec: TaskSpec?
    /// The physical plan: splits, partition counts, broadcast sides, range bounds.
    @usableFromInline let plan: PhysicalPlan

    init(stage: Int, partition: Int, attempt: Int, workDir: String, memoryBudget: Int, maxExpandedBytes: Int64,
         maxRecordBytes: Int = 64 << 20, scratchDir: String? = nil,
         skipBadRecords: Bool = false, compressOutput: Bool = false, plan: PhysicalPlan) {
        self.plan = plan
        self.skipBadRecords = skipBadRecords
        self.compressOutput = compressOutput
        self.stage = stage
        self.partition = partition
        self.attempt = attempt
        self.workDir = workDir
        self.memoryBudget = memoryBudget
        self.maxExpandedBytes = maxExpandedBytes
        self.maxRecordBytes = maxRecordBytes
        self.scratchDir = scratchDir ?? workDir + "/tmp"
    }

    /// Tells the engine the task is making progress (see `JobContext.progress()`).
    public func progress() { TaskProgress.advance() }

    /// Counts a skipped bad record and keeps a sample of it.
    public func recordBad(_ error: InputError) {
        let file = error.source.split(separator: " (").first.map(String.init) ?? error.source
        metrics.skippedByInput[file, default: 0] += 1
        if metrics.badSamples.count < TaskMetrics.maxBadSamples { metrics.badSamples.append(error.description) }
    }

    /// A prefix for this attempt's temporary files, unique per stage, partition and attempt.
    /// Spills and sort runs that never leave the task go there: node-local scratch
    /// (`--local-dir`), or the work folder's `tmp`.
    @usableFromInline var tempPrefix: String { "\(scratchDir)/s\(stage)-p\(partition)-a\(attempt)" }
    /// Where the task's own temporary files go.
    let scratchDir: String
}
