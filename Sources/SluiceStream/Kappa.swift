#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Sluice

/// An event later than the watermark, sent to a side output instead of the aggregates.
public struct LateEvent: Sendable, Codable, Equatable {
    public var offset: Int64
    /// Its event time.
    public var time: Int64
    /// The watermark it missed.
    public var watermark: Int64
    /// Its key as text (empty when the key function skipped it).
    public var key: String
}

/// A key as one field of a side-output line: tabs and line breaks become spaces.
func sideOutputField(_ text: String) -> String {
    String(text.map { $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
}

/// What a kappa run wrote.
public struct KappaResult: Sendable {
    /// The view's folder.
    public var output: String
    /// Events replayed: offsets `[0, end)`.
    public var end: Int64
    public var lateEvents: [LateEvent]
    /// (key, window) entries in the view.
    public var entries: Int
    public var seconds: Double
}

/// The kappa architecture's one stream processor: replays the whole log from offset 0 with
/// the same aggregation code and watermark as the speed layer — as a job on the engine, its
/// offset range cut into parallel tasks (see `ReplayTask` for why the watermark stays exact)
/// — and writes its view to a new folder (never into an existing one).
public enum Kappa {
    /// Replays the log up to its current end and writes `output`: `view.tsv` (the view, sorted
    /// by key and window), `late.tsv` (the side output, in offset order), `_VIEW` (what was
    /// replayed) and `_SUCCESS`, assembled beside the folder and renamed into place.
    public static func run(job: StreamJob, log path: String, output: String, allowedLateness: Int64? = nil,
                           options: RunOptions = RunOptions()) throws -> KappaResult {
        guard !Durable.exists(output) else {
            throw LambdaError("output folder \(output) already exists: kappa writes a new view, never into an old one")
        }
        let started = monotonicMicros()
        let log = try EventLog(path: path)
        let program = try job.program(log: log)
        let lateness = allowedLateness ?? job.allowedLateness
        let end = try log.endOffset()
        let parent = Durable.parent(of: output)
        try Durable.makeFolder(parent)
        let staging = "\(parent)/.\(URL(fileURLWithPath: output).lastPathComponent).kappa-\(getpid())"
        Durable.remove(staging)
        try Durable.makeFolder(staging + "/late")
        do {
            try replay(job: job, log: path, to: end, lateness: lateness, into: staging + "/parts", late: staging + "/late",
                       format: .view, options: options)
            let entries = try mergeSortedParts(staging + "/parts", header: ["key", "window"] + program.columns, into: staging + "/view.tsv")
            let late = try gatherLate(staging + "/late", into: staging + "/late.tsv")
            Durable.remove(staging + "/parts")
            Durable.remove(staging + "/late")
            let description: [String: String] = [
                "job": job.name, "log": path, "end": String(end), "lateEvents": String(late.count),
                "allowedLateness": String(lateness), "entries": String(entries),
                "createdAt": ISO8601DateFormatter().string(from: Date()),
            ]
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try Durable.writeAtomically(staging + "/_VIEW", Array(try encoder.encode(description)))
            try Durable.writeAtomically(staging + "/_SUCCESS", [])
            guard rename(staging, output) == 0 else { throw SystemError("cannot move the kappa view into \(output)") }
            try Durable.syncFolder(parent)
            return KappaResult(output: output, end: end, lateEvents: late, entries: entries,
                               seconds: Double(monotonicMicros() - started) / 1e6)
        } catch {
            Durable.remove(staging)
            throw error
        }
    }

    /// Runs the stream job's engine job over offsets `[0, end)`: a kappa view (`lateness`
    /// given) or a batch view (nil) in `folder`; late events' side files in `late`.
    static func replay(job: StreamJob, log path: String, to end: Int64, lateness: Int64?, into folder: String, late: String?,
                       format: ReplayRequest.Format, exact: Bool = false, options: RunOptions) throws {
        let log = try EventLog(path: path)
        do {
            try log.checkSequence()
        } catch let e as EventLogError {
            throw InputError(source: e.segment ?? path, offset: e.byte, reason: e.segment == nil ? e.reason : "corrupt event log: \(e.reason)")
        }
        let sourceTasks = sourceTaskCount(log, to: end, options: options)
        let arguments = JobArguments(output: folder, parameters: [
            "log": path, "from": "0", "to": String(end), "partitions": String(sourceTasks), "exact": exact ? "1" : "0",
            "lateness": lateness.map(String.init) ?? "none", "late": late ?? "", "format": format.rawValue])
        var run = options
        run.overwrite = false
        // Without --partitions, about 625 000 events per reduce partition (at least two per
        // worker), so that a reducer's table and sort stay small (5 M events: 8 partitions,
        // about 10 % faster than 4 and a quarter less memory per worker).
        if run.partitions == nil { run.partitions = max(2 * max(1, run.workers), Int(min(4096, (end + 624_999) / 625_000))) }
        _ = try Coordinator(job: job.engineJob, arguments: arguments, options: run).run()
    }

    /// Source tasks for offsets `[0, end)`: the bytes they span cut by `--split-size` (or the
    /// automatic split size, as for files), at least one per worker.
    static func sourceTaskCount(_ log: EventLog, to end: Int64, options: RunOptions) -> Int {
        var st = stat()
        let bytes = log.segmentBases().reduce(Int64(0)) { sum, base in
            stat(log.segmentPath(base), &st) == 0 ? sum + Int64(st.st_size) : sum
        }
        let logEnd = max(1, (try? log.endOffset()) ?? end)
        let spanned = Int64(Double(bytes) * Double(min(end, logEnd)) / Double(logEnd))
        let split = options.splitSize ?? SplitPlanner.automaticSplitSize(totalBytes: spanned, workers: options.workers)
        let tasks = (spanned + split - 1) / max(1, split)
        return Int(max(Int64(options.workers), min(tasks, 4096, max(1, end))))
    }

    /// Merges part files whose lines are sorted by key, each key in one part, into `path`
    /// under a header line; the number of rows.
    static func mergeSortedParts(_ folder: String, header: [String], into path: String) throws -> Int {
        let parts = Durable.list(folder).filter { $0.hasPrefix("part-") }.sorted()
        let readers = try parts.map { try SortedPartReader(path: "\(folder)/\($0)") }
        let out = try OutputFile(path: path, mode: 0o644, durable: true)
        try out.write(Array((header.joined(separator: "\t") + "\n").utf8))
        var rows = 0
        while true {
            // The reader whose key is smallest copies its lines up to the next smallest key.
            var best: SortedPartReader?, second: SortedPartReader?
            for r in readers where r.hasLine {
                if best == nil || r.keyPrecedes(best!) {
                    second = best
                    best = r
                } else if second == nil || r.keyPrecedes(second!) {
                    second = r
                }
            }
            guard let best else { break }
            rows += try best.copyLines(upTo: second, to: out)
        }
        try out.finish()
        return rows
    }

    /// Concatenates the tasks' late-event files, in offset order, into `path` under a header;
    /// the late events.
    static func gatherLate(_ folder: String, into path: String) throws -> [LateEvent] {
        var bytes = Array("offset\tevent_time\twatermark\tkey\n".utf8)
        var events: [LateEvent] = []
        for name in Durable.list(folder).filter({ $0.hasPrefix("late-") && !$0.contains(".tmp-") }).sorted() {
            guard let part = try Durable.read("\(folder)/\(name)") else { continue }
            bytes += part
            for line in part.split(separator: 0x0A) {
                let f = line.split(separator: 0x09, maxSplits: 3, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                guard f.count == 4, let o = Int64(f[0]), let t = Int64(f[1]), let w = Int64(f[2]) else {
                    throw CorruptDataError("late-event file \(folder)/\(name) has a malformed line")
                }
                events.append(LateEvent(offset: o, time: t, watermark: w, key: f[3]))
            }
        }
        try Durable.writeAtomically(path, bytes)
        return events
    }
}

/// Reads a part file of lines sorted by key (the bytes before the first tab) in chunks of
/// 1 MiB or more, and copies runs of its lines to the merged file.
final class SortedPartReader {
    private let source: FileByteSource
    private var buffer: UnsafeMutableRawPointer
    private var capacity = 1 << 21
    /// Bytes read into `buffer`.
    private var count = 0
    /// The current line: `buffer[start..<lineEnd]` (newline excluded); its key ends at `keyEnd`.
    private var start = 0
    private var lineEnd = 0
    private var keyEnd = 0
    private var atEnd = false
    private(set) var hasLine = false

    init(path: String) throws {
        source = try FileByteSource(path: path)
        buffer = .allocate(byteCount: capacity, alignment: 8)
        try advance(from: 0)
    }

    deinit { buffer.deallocate() }

    /// Sets the current line to the one starting at `from`, when it is whole in the buffer.
    private func lineAt(_ from: Int) -> Bool {
        guard from < count, let nl = memchr(buffer + from, 0x0A, count - from) else { return false }
        start = from
        lineEnd = buffer.distance(to: nl)
        keyEnd = memchr(buffer + from, 0x09, lineEnd - from).map { buffer.distance(to: $0) } ?? lineEnd
        return true
    }

    /// Moves to the line starting at `from`, reading more when it is not all in the buffer.
    private func advance(from first: Int) throws {
        var from = first
        while !lineAt(from) {
            if atEnd {
                // The last line, without a newline, or none.
                hasLine = from < count
                start = from
                lineEnd = count
                keyEnd = from < count ? memchr(buffer + from, 0x09, count - from).map { buffer.distance(to: $0) } ?? count : count
                return
            }
            // Keep the partial line at the front and read more behind it.
            let partial = count - from
            if partial > 0 && from > 0 { memmove(buffer, buffer + from, partial) }
            count = partial
            from = 0
            if capacity - count < 1 << 20 {
                let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 8)
                bigger.copyMemory(from: buffer, byteCount: count)
                buffer.deallocate()
                buffer = bigger
                capacity *= 2
            }
            let n = try source.read(into: UnsafeMutableRawBufferPointer(start: buffer + count, count: capacity - count))
            count += n
            if n == 0 { atEnd = true }
        }
        hasLine = true
    }

    private var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer + start, count: keyEnd - start) }

    /// Whether this reader's current key sorts before `other`'s.
    func keyPrecedes(_ other: SortedPartReader) -> Bool {
        let a = key, b = other.key
        let c = memcmp(a.baseAddress!, b.baseAddress!, min(a.count, b.count))
        return c != 0 ? c < 0 : a.count < b.count
    }

    /// Writes the current line, and the lines after it whose key does not sort after `limit`'s
    /// (nil: every line left), to `out` in runs; the number of lines.
    func copyLines(upTo limit: SortedPartReader?, to out: OutputFile) throws -> Int {
        var lines = 0
        var runStart = start
        repeat {
            lines += 1
            let next = lineEnd + 1
            if lineAt(next) { continue }
            // The run ends where the buffer does: written before reading more.
            try out.write(UnsafeRawBufferPointer(start: buffer + runStart, count: min(next, count) - runStart))
            if next > count { try out.write([0x0A]) } // the last line had no newline
            try advance(from: min(next, count))
            runStart = start
        } while hasLine && !(limit?.keyPrecedes(self) ?? false)
        try out.write(UnsafeRawBufferPointer(start: buffer + runStart, count: start - runStart))
        return lines
    }
}
