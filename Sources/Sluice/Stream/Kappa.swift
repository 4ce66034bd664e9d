#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

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
/// the same aggregation code and watermark as the speed layer, and writes its view to a new
/// folder (never into an existing one).
public enum Kappa {
    /// A replay's aggregates and side output.
    struct Replay {
        var table: AggregateTable
        var late: [LateEvent]
    }

    /// Aggregates offsets `[0, end)`; late events go to the side output.
    static func replay(program: any StreamProgram, log: EventLog, allowedLateness: Int64, end: Int64) throws -> Replay {
        let table = program.makeTable()
        var late: [LateEvent] = []
        var watermark = Watermark(allowedLateness: allowedLateness)
        let reached = try log.read(from: 0, to: end) { e in
            if watermark.isLate(e.time) {
                late.append(LateEvent(offset: e.offset, time: e.time, watermark: watermark.value, key: try program.keyText(e) ?? ""))
            } else {
                _ = try program.fold(e, into: table)
            }
        }
        guard reached >= end else { throw EventLogError("the event log ends at offset \(reached), before \(end)") }
        return Replay(table: table, late: late)
    }

    /// Replays the log up to its current end and writes `output`: `view.tsv` (the view),
    /// `late.tsv` (the side output), `_VIEW` (what was replayed) and `_SUCCESS`, assembled
    /// beside the folder and renamed into place.
    public static func run(job: StreamJob, log path: String, output: String, allowedLateness: Int64? = nil) throws -> KappaResult {
        guard !Durable.exists(output) else {
            throw LambdaError("output folder \(output) already exists: kappa writes a new view, never into an old one")
        }
        let started = monotonicMicros()
        let log = try EventLog(path: path)
        let program = try job.program(log: log)
        let lateness = allowedLateness ?? job.allowedLateness
        let end = try log.endOffset()
        let replay = try replay(program: program, log: log, allowedLateness: lateness, end: end)
        let parent = Durable.parent(of: output)
        try Durable.makeFolder(parent)
        let staging = "\(parent)/.\(URL(fileURLWithPath: output).lastPathComponent).kappa-\(getpid())"
        Durable.remove(staging)
        try Durable.makeFolder(staging)

        var view = ByteWriter(capacity: 1 << 16)
        view.write(contentsOf: (["key", "window"] + program.columns).joined(separator: "\t").utf8)
        view.write(0x0A)
        for row in program.rows(replay.table) {
            view.write(contentsOf: "\(row.key)\t\(row.window)\t\(row.value)\n".utf8)
        }
        try Durable.writeAtomically(staging + "/view.tsv", view.bytes)
        var late = ByteWriter(capacity: 1 << 12)
        late.write(contentsOf: "offset\tevent_time\twatermark\tkey\n".utf8)
        for e in replay.late { late.write(contentsOf: "\(e.offset)\t\(e.time)\t\(e.watermark)\t\(sideOutputField(e.key))\n".utf8) }
        try Durable.writeAtomically(staging + "/late.tsv", late.bytes)
        let description: [String: String] = [
            "job": job.name, "log": path, "end": String(end), "lateEvents": String(replay.late.count),
            "allowedLateness": String(lateness), "entries": String(replay.table.count),
            "createdAt": ISO8601DateFormatter().string(from: Date()),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Durable.writeAtomically(staging + "/_VIEW", Array(try encoder.encode(description)))
        try Durable.writeAtomically(staging + "/_SUCCESS", [])
        guard rename(staging, output) == 0 else {
            let error = SystemError("cannot move the kappa view into \(output)")
            Durable.remove(staging)
            throw error
        }
        try Durable.syncFolder(parent)
        return KappaResult(output: output, end: end, lateEvents: replay.late, entries: replay.table.count,
                           seconds: Double(monotonicMicros() - started) / 1e6)
    }
}
