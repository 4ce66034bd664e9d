import Foundation
import Sluice

/// Why a lambda or kappa step refused to go on: inconsistent settings, a missing batch range,
/// an output that already exists. One line for people.
public struct LambdaError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One job's lambda state next to its log (default `LOG/_lambda/JOB`):
///
///   config.json                          batch size and allowed lateness, fixed at first use
///   views/batch-NNNNNNNNNNNNNNNNNNNN/    batch views by batch id: part files and `_VIEW`
///   speed/checkpoint                     the speed layer's state and next offset
///   speed/batch-NNNN….state              sealed per-batch speed state
///   speed/late.tsv                       the speed layer's side output of late events
///
/// Batch `b` holds offsets `[b·size, (b+1)·size)`; batch view `n` covers batches `0..<n`, so
/// its exclusive cut is offset `n·size`.
public struct LambdaStore: Sendable {
    public let folder: String

    public init(folder: String) { self.folder = folder }

    /// The default folder for `job`'s state beside the log at `log`.
    public init(log: String, job: String) { self.init(folder: "\(log)/_lambda/\(job)") }

    /// Settings that every layer must agree on.
    public struct Config: Codable, Equatable, Sendable {
        public var job: String
        /// Events per batch.
        public var batchSize: Int64
        /// The speed layer's allowed lateness (milliseconds); set by its first run.
        public var allowedLateness: Int64?
    }

    var configPath: String { folder + "/config.json" }
    var viewsFolder: String { folder + "/views" }
    var speedFolder: String { folder + "/speed" }
    /// The speed layer's side output: one `offset<TAB>event time<TAB>watermark<TAB>key` line per late event.
    public var speedSideOutput: String { speedFolder + "/late.tsv" }

    /// The settings, or nil before the first batch or speed run.
    public func config() throws -> Config? {
        guard let bytes = try Durable.read(configPath) else { return nil }
        return try JSONDecoder().decode(Config.self, from: Data(bytes))
    }

    private func save(_ config: Config) throws {
        try Durable.makeFolder(folder)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Durable.writeAtomically(configPath, Array(try encoder.encode(config)))
    }

    /// The settings, created at first use (batches of 100 000 events unless given); a value
    /// given later must match the recorded one, since the state depends on it. The allowed
    /// lateness is recorded by the first speed run.
    public func configure(job: String, batchSize: Int64?, allowedLateness: Int64?) throws -> Config {
        guard var config = try config() else {
            let config = Config(job: job, batchSize: max(1, batchSize ?? 100_000), allowedLateness: allowedLateness.map { max(0, $0) })
            try save(config)
            return config
        }
        guard config.job == job else {
            throw LambdaError("\(folder) holds the lambda state of job \(config.job), not \(job)")
        }
        if let batchSize, batchSize != config.batchSize {
            throw LambdaError("\(folder) uses batches of \(config.batchSize) events, not \(batchSize) (start a new --lambda-dir to change it)")
        }
        if let allowedLateness {
            if let recorded = config.allowedLateness, recorded != allowedLateness {
                throw LambdaError("\(folder) uses an allowed lateness of \(EventTime.describeDuration(recorded)), not \(EventTime.describeDuration(allowedLateness)) (start a new --lambda-dir to change it)")
            }
            if config.allowedLateness == nil {
                config.allowedLateness = max(0, allowedLateness)
                try save(config)
            }
        }
        return config
    }

    /// The settings, which must exist.
    func requireConfig(_ job: String) throws -> Config {
        guard let c = try config() else {
            throw LambdaError("no lambda state for \(job) in \(folder): run `sluice lambda batch` or `sluice lambda speed` first")
        }
        guard c.job == job else { throw LambdaError("\(folder) holds the lambda state of job \(c.job), not \(job)") }
        return c
    }

    /// The batch views that have landed, oldest first.
    public func views() throws -> [BatchView] {
        try Durable.list(viewsFolder).filter { $0.hasPrefix("batch-") }.sorted().compactMap { name in
            guard let bytes = try Durable.read("\(viewsFolder)/\(name)/_VIEW") else { return nil }
            var view = try JSONDecoder().decode(BatchView.self, from: Data(bytes))
            view.path = "\(viewsFolder)/\(name)"
            return view
        }
    }

    /// The newest batch view, if any.
    public func newestView() throws -> BatchView? { try views().last }

    /// Refuses state that counts offsets the log at `path`, ending at `end`, no longer holds
    /// (the log was truncated or replaced under it).
    func checkHeld(byLog path: String, end: Int64, view: BatchView?, speed: SpeedState?) throws {
        let advice = "the log was truncated or replaced under it: restore the log, or start afresh with a new --lambda-dir"
        if let view, view.cut > end {
            throw LambdaError("batch view \(view.batchId) (\(view.path)) covers offsets [0, \(view.cut)), but the event log \(path) ends at offset \(end): \(advice)")
        }
        if let speed, speed.next > end {
            throw LambdaError("the speed checkpoint \(SpeedState.manifestPath(self)) has read up to offset \(speed.next), but the event log \(path) ends at offset \(end): \(advice)")
        }
    }
}

/// A batch view's description (`_VIEW`): what it covers.
public struct BatchView: Codable, Sendable, Equatable {
    public var job: String
    /// Batches `0..<batchId` are covered.
    public var batchId: Int64
    /// The exclusive cut: offsets `[0, cut)` are covered.
    public var cut: Int64
    public var batchSize: Int64
    /// The largest event time below the cut (nil for an empty range).
    public var maxEventTime: Int64?
    /// (key, window) entries in the view.
    public var entries: Int
    public var createdAt: String
    /// Where the view is (not stored).
    public var path: String = ""

    enum CodingKeys: String, CodingKey { case job, batchId, cut, batchSize, maxEventTime, entries, createdAt }
}

/// The batch layer: runs the job's aggregation on the batch engine (worker processes, shuffle)
/// — kappa's engine job without the watermark — over the log's offsets `[0, cut)` and lands the result as a new, immutable batch view.
public enum BatchLayer {
    /// Runs the batch layer up to `cut` (default: the last whole batch in the log). The view
    /// is assembled beside its final place and renamed into it with its `_VIEW` description,
    /// so it lands atomically. Views older than the previous one are then removed.
    @discardableResult
    public static func run(job: StreamJob, log path: String, store: LambdaStore, cut requested: Int64? = nil,
                           batchSize: Int64? = nil, options: RunOptions) throws -> BatchView {
        let log = try EventLog(path: path)
        _ = try job.program(log: log) // a job that cannot run on this log fails before the engine starts
        let config = try store.configure(job: job.name, batchSize: batchSize, allowedLateness: nil)
        let size = config.batchSize
        let end = try log.endOffset()
        let cut = requested ?? end / size * size
        guard cut >= 0, cut <= end else { throw LambdaError("cut \(cut) is beyond the end of the log (offset \(end))") }
        guard cut % size == 0 else {
            throw LambdaError("cut \(cut) is not on a batch boundary (batches of \(size) events): use \(cut / size * size) or \((cut / size + 1) * size)")
        }
        let batchId = cut / size
        if let newest = try store.newestView(), newest.batchId >= batchId {
            if newest.batchId == batchId { return newest }
            throw LambdaError("a newer batch view (batch \(newest.batchId), cut \(newest.cut)) has already landed")
        }
        try Durable.makeFolder(store.viewsFolder)
        let name = "batch-" + LogFormat.name(batchId)
        let staging = "\(store.viewsFolder)/.\(name).staging-\(getpid())"
        Durable.remove(staging)
        try Durable.makeFolder(staging)
        do {
            try Kappa.replay(job: job, log: path, to: cut, lateness: nil, into: staging + "/data", late: nil, format: .batch, options: options)
        } catch {
            Durable.remove(staging)
            throw error
        }
        var entries = 0
        for part in Durable.list(staging + "/data") where part.hasPrefix("part-") {
            entries += try Durable.read("\(staging)/data/\(part)").map(countLines) ?? 0
        }
        let range = try log.timeRange(before: cut)
        let view = BatchView(job: job.name, batchId: batchId, cut: cut, batchSize: size,
                             maxEventTime: range.isEmpty ? nil : range.max, entries: entries,
                             createdAt: ISO8601DateFormatter().string(from: Date()))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Durable.writeAtomically(staging + "/_VIEW", Array(try encoder.encode(view)))
        try Durable.syncFolder(staging)
        let final = "\(store.viewsFolder)/\(name)"
        guard rename(staging, final) == 0 else { throw SystemError("cannot move the batch view into \(final)") }
        try Durable.syncFolder(store.viewsFolder)
        let views = try store.views()
        for old in views.dropLast(2) { Durable.remove(old.path) }
        var landed = view
        landed.path = final
        return landed
    }

    /// The newline bytes in `bytes`.
    @usableFromInline static func countLines(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return 0 }
            var lines = 0, at = 0
            while at < raw.count, let nl = memchr(base + at, 0x0A, raw.count - at) {
                lines += 1
                at = base.distance(to: nl) + 1
            }
            return lines
        }
    }

    /// Reads a batch view's part files into a table: all of them, or part `part` of a view
    /// whose parts hold whole keys (`sluice compare` goes through its views part by part).
    static func loadViewData(_ folder: String, program: any StreamProgram, part only: Int? = nil) throws -> AggregateTable {
        let table = program.makeTable()
        let names = only.map { [partName($0)] } ?? Durable.list(folder).filter({ $0.hasPrefix("part-") }).sorted()
        for name in names { try program.addViewLines(try partBytes(folder, name), to: table) }
        return table
    }

    /// The bytes of part `part` of a batch-format view.
    static func viewPartBytes(_ folder: String, part: Int) throws -> [UInt8] { try partBytes(folder, partName(part)) }

    private static func partName(_ part: Int) -> String { "part-" + String(String(part + 100_000).dropFirst()) }

    private static func partBytes(_ folder: String, _ name: String) throws -> [UInt8] {
        guard let bytes = try Durable.read("\(folder)/\(name)") else {
            throw LambdaError("batch view part \(folder)/\(name) disappeared")
        }
        return bytes
    }

    /// Reads a landed batch view into a table.
    static func load(_ view: BatchView, program: any StreamProgram) throws -> AggregateTable {
        guard Durable.exists(view.path + "/data/_SUCCESS") else {
            throw LambdaError("batch view \(view.path) is incomplete (no data/_SUCCESS)")
        }
        return try loadViewData(view.path + "/data", program: program)
    }
}
