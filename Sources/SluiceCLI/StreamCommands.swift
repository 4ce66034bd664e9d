import ArgumentParser
import Foundation
import Sluice
import SluiceStream

/// The stream jobs this binary knows. Set once by `SluiceMain.main(jobs:streamJobs:)` before parsing.
final class StreamJobRegistry: @unchecked Sendable {
    static let shared = StreamJobRegistry()
    private let lock = NSLock()
    private var _jobs: [StreamJob] = []

    var jobs: [StreamJob] {
        get { lock.withLock { _jobs } }
        set { lock.withLock { _jobs = newValue } }
    }

    func job(named name: String) throws -> StreamJob {
        guard let job = jobs.first(where: { $0.name == name }) else {
            throw ValidationError("no stream job named '\(name)'. Stream jobs: \(jobs.map(\.name).joined(separator: ", "))")
        }
        return job
    }
}

/// Writes a line to standard error.
private func note(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Runs `body`; a failure is printed as one line and becomes exit status `code`.
private func failing(with code: Int32, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as ValidationError {
        throw error
    } catch {
        note("error: \(error)")
        throw ExitCode(code)
    }
}

/// Parses `--allowed-lateness`.
private func lateness(_ text: String?) throws -> Int64? {
    guard let text else { return nil }
    guard let v = EventTime.parseDuration(text) else {
        throw ValidationError("--allowed-lateness expects a duration like 30s, 5m, 1h or 250ms, got '\(text)'")
    }
    return v
}

/// The event log folder of `log info` and `log verify`: `--log LOG` or the argument.
struct LogFolder: ParsableArguments {
    @Option(help: "The event log folder.") var log: String?
    @Argument(help: "The event log folder (the same as --log).") var folder: String?

    func validate() throws {
        if log == nil && folder == nil { throw ValidationError("Missing the event log folder: --log LOG (or LOG)") }
        if let log, let folder, log != folder { throw ValidationError("Two event log folders: --log \(log) and \(folder)") }
    }

    var path: String { log ?? folder ?? "" }
}

/// `sluice log append|info|verify`
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Append events to an event log, show what it holds, or verify it.",
        discussion: "An event log is a folder of segment files named by their first offset, each with a sparse offset index; "
            + "records carry an event time and a CRC, appends are fsync'd in batches. A torn tail left by a crash (the last "
            + "segment's last record cut off) is never read and is truncated by the next append; anything else that is not a "
            + "whole record (a bad checksum, a missing segment) is corruption, an error naming the file and byte.",
        subcommands: [Append.self, Info.self, Verify.self])

    struct Append: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append CSV or JSON Lines records (files, or standard input) as events.",
            discussion: """
            Examples:
              sluice gen events --rows 100000 -o events.csv
              sluice log append --log /tmp/log events.csv
              sluice log append --log /tmp/log --time-field time --time-format iso8601 more.jsonl
              sluice log append --log /tmp/flights --feed flightdelays
            """)
        @Option(help: "The event log folder (created when missing).") var log: String
        @Argument(help: "CSV or JSON Lines files (.gz too); none or '-' reads standard input.") var files: [String] = []
        @Option(name: .customLong("time-field"), help: "The event-time column (default: the log's, else ts, time, timestamp or event_time).")
        var timeField: String?
        @Option(name: .customLong("time-format"), help: "auto (integer: epoch ms, else ISO 8601), epoch-ms, epoch-s or iso8601.")
        var timeFormat: String?
        @Option(help: "auto (by extension; a first '{' on standard input), csv or json.") var format: String = "auto"
        @Option(help: "Append a stream job's prepared events (its feed) instead; files default to the feed's inputs.")
        var feed: String?
        @Option(name: .customLong("segment-size"), help: "Segment size of a new log, e.g. 64m.") var segmentSize: String = "64m"
        @Option(name: .customLong("commit-every"), help: "Events per fsync'd append batch.") var commitEvery: Int = 10_000

        func run() throws {
            var appender = LogAppender()
            appender.timeField = timeField
            if let timeFormat {
                guard let f = EventTime.Format(rawValue: timeFormat) else {
                    throw ValidationError("--time-format is one of \(EventTime.Format.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                appender.timeFormat = f
            }
            guard let f = LogAppender.Format(rawValue: format) else { throw ValidationError("--format is auto, csv or json") }
            appender.format = f
            appender.commitEvery = max(1, commitEvery)
            let feedJob = try feed.map { try StreamJobRegistry.shared.job(named: $0) }
            let segmentBytes = try parseSize(segmentSize, option: "--segment-size")
            try failing(with: 1) {
                let writer = try EventLogWriter(path: log, segmentBytes: segmentBytes)
                let first = writer.nextOffset
                if let feedJob {
                    guard let feed = feedJob.feed else { throw LambdaError("stream job \(feedJob.name) has no feed") }
                    try LogAppender.append(feed: feed, inputs: files, to: writer)
                } else {
                    for file in files.isEmpty ? ["-"] : files { try appender.append(path: file, to: writer) }
                }
                print("appended \(writer.nextOffset - first) events to \(log): offsets [\(first), \(writer.nextOffset))")
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a log's offsets, segments, size, time range and columns.",
            discussion: "Checks what it shows rests on whole segments: none missing, each starting with its base offset and ending "
                + "where the next begins, the last ending in whole records or a torn tail. It does not read every record unless "
                + "--verify is given (as `sluice log verify` does), and says which. Exit status: 0 shown, 1 a problem was found "
                + "or the log could not be read.")
        @OptionGroup var folder: LogFolder
        @Flag(help: "List every segment.") var segments = false
        @Flag(help: "Read and check every record and index entry first.") var verify = false
        @Flag(help: "JSON for programs.") var json = false

        func run() throws {
            try failing(with: 1) {
                let info = try EventLog(path: folder.path).info(verify: verify)
                let range = info.timeRange.isEmpty ? nil : [EventTime.iso(info.timeRange.min), EventTime.iso(info.timeRange.max)]
                if json {
                    let object: [String: Any] = [
                        "log": info.path, "firstOffset": info.firstOffset, "nextOffset": info.nextOffset,
                        "events": info.nextOffset - info.firstOffset, "bytes": info.bytes,
                        "segments": info.segments.map { ["base": $0.base, "bytes": $0.bytes] },
                        "timeRange": info.timeRange.isEmpty ? NSNull() : [info.timeRange.min, info.timeRange.max] as Any,
                        "timeRangeISO": range as Any, "columns": info.schema.columns, "timeField": info.schema.timeField as Any,
                        "verified": info.verified,
                        "tornTail": info.tornTail.map { ["segment": $0.segment, "byte": $0.byte, "bytes": $0.bytes] as Any } ?? NSNull(),
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                    return
                }
                print("event log \(info.path)")
                print("  offsets     [\(info.firstOffset), \(info.nextOffset))  (\(info.nextOffset - info.firstOffset) events)")
                print("  segments    \(info.segments.count), \(Summary.bytes(info.bytes))")
                if segments {
                    for s in info.segments { print("              \(s.base): \(Summary.bytes(s.bytes))") }
                }
                print("  event time  " + (range.map { "\($0[0]) .. \($0[1])" } ?? "(no events)"))
                print("  columns     \(info.schema.columns.joined(separator: ", "))"
                      + (info.schema.timeField.map { " (event time from \($0))" } ?? ""))
                if let torn = info.tornTail { print("  torn tail   \(describe(torn))") }
                print("  verified    " + (info.verified ? "every record and index entry checks out"
                                         : "no: segment sequence and ends checked, not every record (sluice log verify --log \(folder.path))"))
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read and check every segment, record and index entry of a log.",
            discussion: """
            Checks that segments follow each other from offset 0 with none missing, that every record is whole, passes its \
            checksum and holds the next offset, and that every index entry points at the record it names with the right \
            event times. A torn tail (the last segment's last record cut off by a crash) is reported, not an error: it is \
            never read, and the next append truncates it.

            Exit status: 0 the log checks out; 1 it is corrupt or incomplete (one line naming the file and byte of the \
            first problem); 2 it could not be checked (no event log there, a file that cannot be read); 64 a usage error.

            Examples:
              sluice log verify /tmp/log
              sluice log verify --log /tmp/log
            """)
        @OptionGroup var folder: LogFolder

        func run() throws {
            do {
                let info = try EventLog(path: folder.path).info(verify: true)
                print("event log \(info.path): every record checks out: \(info.segments.count) segment(s), \(info.nextOffset) events "
                      + "[0, \(info.nextOffset)), \(Summary.bytes(info.bytes))")
                if let torn = info.tornTail { print("torn tail: \(describe(torn))") }
            } catch let error as EventLogError where error.segment != nil {
                note("error: \(error)")
                throw ExitCode(1)
            } catch {
                note("error: \(error)")
                throw ExitCode(2)
            }
        }
    }
}

/// A torn tail for people.
private func describe(_ torn: TornTail) -> String {
    "\(torn.bytes) byte(s) at byte \(torn.byte) of \(torn.segment) (an interrupted append: never read, truncated by the next append)"
}

/// Options every lambda step takes.
struct LambdaLocation: ParsableArguments {
    @Argument(help: "The stream job.") var job: String
    @Option(help: "The event log folder.") var log: String
    @Option(name: .customLong("lambda-dir"), help: "The job's lambda state (default: LOG/_lambda/JOB).") var lambdaDir: String?

    func resolve() throws -> (StreamJob, LambdaStore) {
        let job = try StreamJobRegistry.shared.job(named: self.job)
        return (job, lambdaDir.map(LambdaStore.init(folder:)) ?? LambdaStore(log: log, job: job.name))
    }
}

/// Options for the batch engine runs.
struct EngineOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Worker processes of the batch layer (default: the core count).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Reduce partitions of the batch layer's shuffle (default: one per 625 000 events, at least 2 × workers).") var partitions: Int?
    @Option(name: .customLong("memory-per-task"), help: "Memory a task may use before spilling, e.g. 256m.") var memoryPerTask: String = "256m"
    @Flag(name: .shortAndLong, help: "Print no progress lines.") var quiet = false

    func runOptions() throws -> RunOptions {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        var run = RunOptions()
        run.workers = workers
        run.partitions = partitions
        run.memoryPerTask = Int(try parseSize(memoryPerTask, option: "--memory-per-task"))
        let quiet = self.quiet
        run.log = { _, line in if !quiet { note("sluice: \(line)") } }
        return run
    }
}

/// `sluice lambda batch|speed|query`
struct LambdaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lambda", abstract: "The lambda architecture: batch views, the speed layer, and queries merging both.",
        discussion: """
        Typical use:
          sluice lambda batch eventcounts --log LOG --batch-size 10000
          sluice lambda speed eventcounts --log LOG --follow
          sluice lambda query eventcounts --log LOG

        """ + "\nBatch b holds offsets [b·size, (b+1)·size); a batch view covers batches 0..<n and records its exclusive cut. "
            + "The speed layer keeps state per (key, batch), checkpoints it with the next offset atomically (kill -9 safe), "
            + "and drops the batches a newer batch view covers. The query merges the newest batch view with the speed "
            + "state after its cut through the monoid.",
        subcommands: [Batch.self, Speed.self, Query.self, Jobs.self])

    struct Batch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the batch layer on the batch engine up to a cut and land a batch view.")
        @OptionGroup var location: LambdaLocation
        @Option(help: "The exclusive cut, on a batch boundary (default: the last whole batch in the log).") var cut: Int64?
        @Option(name: .customLong("batch-size"), help: "Events per batch, fixed at first use (default 100000).") var batchSize: Int64?
        @OptionGroup var engine: EngineOptions

        func run() throws {
            let (job, store) = try location.resolve()
            let options = try engine.runOptions()
            try failing(with: 1) {
                let view = try BatchLayer.run(job: job, log: location.log, store: store, cut: cut, batchSize: batchSize, options: options)
                print("batch view \(view.batchId) of \(job.name): offsets [0, \(view.cut)), \(view.entries) entries, in \(view.path)")
            }
        }
    }

    struct Speed: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the speed layer over the events after the newest batch view's cut.")
        @OptionGroup var location: LambdaLocation
        @Flag(help: "Keep following the log as it grows (stop with Ctrl-C or kill; the checkpoint makes that safe).")
        var follow = false
        @Option(name: .customLong("allowed-lateness"), help: "Allowed lateness, e.g. 30s (default: the job's; fixed at first use).")
        var allowedLateness: String?
        @Option(name: .customLong("batch-size"), help: "Events per batch, fixed at first use (default 100000).") var batchSize: Int64?
        @Option(name: .customLong("checkpoint-every"), help: "Checkpoint at least every N events.") var checkpointEvery: Int = 1_000_000
        @Option(name: .customLong("checkpoint-interval"), help: "… and at least every S seconds.") var checkpointInterval: Double = 1
        @Option(help: "Stop before this offset.") var until: Int64?
        @Flag(name: .shortAndLong, help: "Print no summary.") var quiet = false

        func run() throws {
            let (job, store) = try location.resolve()
            let lateness = try lateness(allowedLateness)
            try failing(with: 1) {
                let speed = try SpeedLayer(job: job, log: location.log, store: store, batchSize: batchSize, allowedLateness: lateness)
                var options = SpeedOptions()
                options.follow = follow
                options.checkpointEvery = max(1, checkpointEvery)
                options.checkpointInterval = checkpointInterval
                options.until = until
                let quiet = self.quiet
                options.log = { line in if !quiet { note("sluice: \(line)") } }
                let s = try speed.run(options)
                if !quiet {
                    note(String(format: "speed layer %@: offsets [%lld, %lld), %d events (%d late) in %.3f s busy (%.3f s CPU): %.0f events/s, %.0f per CPU second; %d checkpoints",
                                job.name, s.from, s.to, s.events, s.lateEvents, s.busySeconds, s.cpuSeconds, s.eventsPerSecond,
                                s.eventsPerCPUSecond, s.checkpoints))
                }
            }
        }
    }

    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the merged view: the newest batch view ⊕ the speed layer's state after its cut.",
            discussion: "Fails (exit status 1) when a batch range is missing (offsets after the batch view's cut that the speed layer never saw), "
                + "when the log no longer holds what the views cover, and when a record not yet served is corrupt (naming the segment and byte).")
        @OptionGroup var location: LambdaLocation
        @Option(help: "Only this key.") var key: String?
        @Flag(help: "JSON for programs.") var json = false

        struct Output: Codable {
            var job: String
            var batchView: BatchView?
            var speedRange: [Int64]?
            var coverage: [Int64]
            var logEnd: Int64
            var lateEvents: Int64
            var sideOutput: String
            var columns: [String]
            var rows: [Row]
            struct Row: Codable {
                var key: String
                var window: String
                var values: [String]
            }
        }

        func run() throws {
            let (job, store) = try location.resolve()
            try failing(with: 1) {
                let view = try Serving.query(job: job, log: location.log, store: store)
                let rows = view.rows.filter { key == nil || $0.key == key }
                if json {
                    let out = Output(job: job.name, batchView: view.batchView, speedRange: view.speedRange.map { [$0.lowerBound, $0.upperBound] },
                                     coverage: [0, view.coverageEnd], logEnd: view.logEnd, lateEvents: view.lateEvents, sideOutput: store.speedSideOutput,
                                     columns: view.columns,
                                     rows: rows.map { .init(key: $0.key, window: $0.window, values: $0.value.components(separatedBy: "\t")) })
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try encoder.encode(out), as: UTF8.self))
                    return
                }
                print((["key", "window"] + view.columns).joined(separator: "\t"))
                for row in rows { print("\(row.key)\t\(row.window)\t\(row.value)") }
                let batch = view.batchView.map { "batch view \($0.batchId) [0, \($0.cut))" } ?? "no batch view"
                let speed = view.speedRange.map { "speed layer [\($0.lowerBound), \($0.upperBound))" } ?? "no speed state"
                let unread = view.logEnd > view.coverageEnd ? " (the log holds [0, \(view.logEnd)))" : ""
                note("served offsets [0, \(view.coverageEnd))\(unread): \(batch) ⊕ \(speed); \(view.lateEvents) late event(s) in the side output \(store.speedSideOutput)")
            }
        }
    }

    struct Jobs: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the stream jobs compiled into this binary.")
        @Flag(help: "Also list the hidden test jobs.") var all = false

        func run() throws {
            let jobs = StreamJobRegistry.shared.jobs.filter { all || !$0.hidden }
            let width = (jobs.map(\.name.count).max() ?? 0) + 2
            for job in jobs {
                let lateness = EventTime.describeDuration(job.allowedLateness)
                print(job.name.padding(toLength: width, withPad: " ", startingAt: 0) + job.summary + " (allowed lateness \(lateness)"
                      + (job.feed != nil ? "; has a feed" : "") + ")")
            }
        }
    }
}

/// `sluice kappa JOB --log DIR --output DIR`
struct KappaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kappa", abstract: "Replay the whole log with one stream processor and write its view to a new folder.",
        discussion: """
        The replay is a job on the batch engine: the log's offsets are cut into tasks run by --workers worker \
        processes, each folding its events into (key, window) aggregates that are shuffled by key and merged. \
        Each task's watermark starts from the largest event time before its first offset (kept in the log's \
        index), so the late events are exactly those of a sequential replay.

        Writes OUTPUT/view.tsv (sorted by key and window), OUTPUT/late.tsv (the side output of late events, \
        in offset order), OUTPUT/_VIEW and _SUCCESS; an existing OUTPUT is refused.
        """)
    @Argument(help: "The stream job.") var job: String
    @Option(help: "The event log folder.") var log: String
    @Option(name: .shortAndLong, help: "A new folder for the view.") var output: String
    @Option(name: .customLong("allowed-lateness"), help: "Allowed lateness, e.g. 30s (default: the job's).") var allowedLateness: String?
    @OptionGroup var engine: EngineOptions

    func run() throws {
        let job = try StreamJobRegistry.shared.job(named: self.job)
        let lateness = try lateness(allowedLateness)
        let options = try engine.runOptions()
        try failing(with: 1) {
            let r = try Kappa.run(job: job, log: log, output: output, allowedLateness: lateness, options: options)
            print("kappa view of \(job.name): offsets [0, \(r.end)), \(r.entries) entries, \(r.lateEvents.count) late event(s), in \(r.output)"
                  + String(format: " (%.2f s)", r.seconds))
        }
    }
}

/// `sluice compare JOB --log DIR`
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Run lambda, kappa and the reference on a log and compare them key by key.",
        discussion: "Lambda is a batch view (on the batch engine) up to a cut plus the speed layer after it — run afresh, "
            + "or with --served the job's lambda state as `lambda query` serves it. Kappa and the reference (every event, "
            + "no watermark) run as the stream job's engine job; a fresh comparison goes through the views one reduce "
            + "partition at a time, so its memory stays bounded. Every difference is attributed where "
            + "the cause is known: late events dropped by the watermark, duplicate delivery, a missing batch range, or an "
            + "approximate monoid within its error bound.\n\nExit status: 0 they agree, 1 they differ, 2 the comparison could not run.")
    @Argument(help: "The stream job.") var job: String
    @Option(help: "The event log folder.") var log: String
    @Option(name: .customLong("allowed-lateness"), help: "Allowed lateness, e.g. 30s (default: the job's).") var allowedLateness: String?
    @Option(help: "The batch view's cut (default: the middle of the log).") var cut: Int64?
    @Option(name: .customLong("batch-size"), help: "Events per batch (default: the cut, or a quarter of the log).") var batchSize: Int64?
    @Flag(help: "Compare the job's lambda state as served (see --lambda-dir) instead of a fresh batch and speed run.") var served = false
    @Option(name: .customLong("lambda-dir"), help: "The served lambda state (default: LOG/_lambda/JOB).") var lambdaDir: String?
    @Option(help: "Differences listed in the text report (0: all).") var limit: Int = 20
    @Flag(help: "JSON for programs (every difference).") var json = false
    @OptionGroup var engine: EngineOptions

    func run() throws {
        let job = try StreamJobRegistry.shared.job(named: self.job)
        var options = CompareOptions()
        options.allowedLateness = try lateness(allowedLateness)
        options.cut = cut
        options.batchSize = batchSize
        options.run = try engine.runOptions()
        options.run.log = nil
        if served { options.served = lambdaDir.map(LambdaStore.init(folder:)) ?? LambdaStore(log: log, job: job.name) }
        var agree = false
        try failing(with: 2) {
            let report = try Compare.run(job: job, log: log, options: options)
            print(json ? try report.json() : report.text(limit: limit), terminator: json ? "\n" : "")
            agree = report.agree
        }
        if !agree { throw ExitCode(1) }
    }
}
