import Foundation
import Sluice
@testable import SluiceStream
import SluiceJobs
import Testing

// An independent oracle for event-time windows and the watermark (issue 16).
//
// `Window.forEachStart` is shared by the batch layer, the speed layer, kappa and the reference
// executor, so a bug in it is invisible to `sluice compare`. This file checks the layers
// against (1) tables computed by hand and written out literally, and (2) a reference written
// here from the definitions alone. Nothing in `WindowReference` calls Sluice: no
// `Window.forEachStart`, no `floorDiv`, no `Watermark`, no `EventTime.iso`, no monoid, no
// `Kappa`, no `ReferenceExecutor`.
//
// Definitions pinned down here (as the code behaves on 4392e9c):
//
// - Tumbling windows of `size`: the window holding time t starts at the largest multiple of
//   `size` that is <= t (rounding toward −∞ before 1970): [start, start + size). An event
//   exactly on a boundary opens the window starting there.
// - Sliding windows of `size` every `slide`: an event at t is in every window [s, s + size)
//   with s a multiple of `slide` and s <= t < s + size. When `size` is not a multiple of
//   `slide` an event is in ⌊size/slide⌋ or ⌈size/slide⌉ windows; when `slide > size` an event
//   in a gap between windows is in none (it is counted nowhere).
// - Sessions with gap g, per key: the event times sorted; consecutive times closer than g
//   (difference < g) are in the same session, a difference of exactly g starts a new one.
//   The window column reads `first..last+g`. An event that arrives later in the log may bridge
//   two sessions into one.
// - The watermark (Watermark.isLate): in log order, before each event, watermark = (largest
//   event time of the non-late events so far) − allowed lateness; nothing is late before the
//   first event, nor when the subtraction overflows Int64 (watermark = Int64.min). An event is
//   late when time < watermark — an event exactly on the watermark is not late. Late events
//   do not advance the maximum (with a lateness >= 0 a late event is below the maximum anyway).
//   `late.tsv` lists `offset<TAB>event_time<TAB>watermark<TAB>key` in log order, after a header.

// MARK: - The one place that runs kappa

/// Runs kappa for `job` over the log at `log` with `lateness` and returns the lines of its
/// `view.tsv` and `late.tsv` (headers included).
///
/// This is the only call of `Kappa.run` in this file. Kappa is a parallel engine job: 2 worker
/// processes, and 16 KiB splits, so that a log of a few thousand events is cut into many
/// tasks, each starting mid-log with the watermark of everything before it. Every job it is
/// given is one of the `sluice` binary's (the workers must know it).
func runKappa(_ job: StreamJob, log: String, lateness: Int64) throws -> (view: [String], late: [String]) {
    let dir = Harness.tempDir("oracle-kappa")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let output = dir + "/view"
    _ = try Kappa.run(job: job, log: log, output: output, allowedLateness: lateness,
                      options: Harness.options(workers: 2, partitions: 3, splitSize: 16 << 10))
    return (try OracleFiles.lines(output + "/view.tsv"), try OracleFiles.lines(output + "/late.tsv"))
}

/// Lambda: the batch layer up to `cut` (built-in jobs only: its workers are `sluice`
/// processes), then the speed layer to the log's end, then the serving layer's query. Returns
/// the served rows (`key<TAB>window<TAB>value`, no header) and the speed layer's side output
/// (no header).
func runLambda(_ job: StreamJob, log: String, cut: Int64, batchSize: Int64, lateness: Int64) throws -> (rows: [String], late: [String]) {
    let dir = Harness.tempDir("oracle-lambda")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let store = LambdaStore(folder: dir + "/state")
    _ = try store.configure(job: job.name, batchSize: batchSize, allowedLateness: lateness)
    if cut > 0 {
        try BatchLayer.run(job: job, log: log, store: store, cut: cut, options: Harness.options(workers: 2, partitions: 2))
    }
    try SpeedLayer(job: job, log: log, store: store, allowedLateness: lateness).run()
    let view = try Serving.query(job: job, log: log, store: store)
    return (view.rows.map { "\($0.key)\t\($0.window)\t\($0.value)" }, try OracleFiles.lines(store.speedSideOutput))
}

enum OracleFiles {
    /// A text file's lines without the final empty one; [] when the file does not exist.
    static func lines(_ path: String) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}

// MARK: - Events and logs

/// One event of a test log: columns `user`, `key`, `value`; its offset is its index.
struct OracleEvent: Sendable {
    var time: Int64
    var user: String
    var key: String
    var value: Int

    init(_ time: Int64, key: String, value: Int, user: String = "u") {
        self.time = time
        self.user = user
        self.key = key
        self.value = value
    }
}

enum OracleLog {
    static let columns = ["user", "key", "value"]

    /// Writes `events` in order to a new log (offset = index) with segments of `segmentBytes`.
    static func write(_ events: [OracleEvent], to path: String, segmentBytes: Int64 = 64 << 20) throws {
        let writer = try EventLogWriter(path: path, segmentBytes: segmentBytes)
        try writer.extendSchema(columns: columns, timeField: nil, timeFormat: nil)
        for (i, e) in events.enumerated() {
            try writer.append(EncodedEvent(time: e.time, fields: [Array(e.user.utf8), Array(e.key.utf8), Array(String(e.value).utf8)]))
            if i % 997 == 996 { try writer.commit() }
        }
        try writer.commit()
    }

    /// A fresh folder with the log of `events`; returns (folder, log path).
    static func make(_ events: [OracleEvent], segmentBytes: Int64 = 64 << 20) throws -> (dir: String, log: String) {
        let dir = Harness.tempDir("oracle")
        try write(events, to: dir + "/log", segmentBytes: segmentBytes)
        return (dir, dir + "/log")
    }

    static func builtIn(_ name: String) -> StreamJob { StreamJobs.all.first { $0.name == name }! }
}

// MARK: - The independent reference

/// Window math, watermark and aggregates written from the definitions above, without Sluice.
enum WindowReference {
    /// a mod m in [0, m).
    static func posMod(_ a: Int64, _ m: Int64) -> Int64 {
        let r = a % m
        return r < 0 ? r + m : r
    }

    /// The start of the tumbling window holding t.
    static func tumblingStart(_ t: Int64, size: Int64) -> Int64 { t - posMod(t, size) }

    /// The starts of the sliding windows holding t, ascending: multiples of `slide` in
    /// [t − size + 1, t].
    static func slidingStarts(_ t: Int64, size: Int64, slide: Int64) -> [Int64] {
        let lowest = t - size + 1
        var s = lowest + posMod(-lowest, slide) // the first multiple of slide >= lowest
        var out: [Int64] = []
        while s <= t {
            out.append(s)
            s += slide
        }
        return out
    }

    /// `2013-01-01T10:00:00Z`, with `.SSS` when the milliseconds are not zero, by walking
    /// years and months from 1970 (fine for the few decades the tests use).
    static func iso(_ ms: Int64) -> String {
        let dayMillis: Int64 = 86_400_000
        let timeOfDay = posMod(ms, dayMillis)
        var days = (ms - timeOfDay) / dayMillis
        func leap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }
        func daysIn(_ y: Int64) -> Int64 { leap(y) ? 366 : 365 }
        var year: Int64 = 1970
        while days < 0 {
            year -= 1
            days += daysIn(year)
        }
        while days >= daysIn(year) {
            days -= daysIn(year)
            year += 1
        }
        let months: [Int64] = [31, leap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        var month = 0
        while days >= months[month] {
            days -= months[month]
            month += 1
        }
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        var text = "\(pad(year, 4))-\(pad(Int64(month + 1), 2))-\(pad(days + 1, 2))T"
        text += "\(pad(timeOfDay / 3_600_000, 2)):\(pad(timeOfDay / 60_000 % 60, 2)):\(pad(timeOfDay / 1000 % 60, 2))"
        if timeOfDay % 1000 != 0 { text += "." + pad(timeOfDay % 1000, 3) }
        return text + "Z"
    }

    struct Watermarked {
        /// `offset<TAB>event_time<TAB>watermark<TAB>key`, in log order (no header).
        var lateLines: [String]
        var isLate: [Bool]
        var lateCount: Int { lateLines.count }
    }

    /// The sequential watermark over `events` in log order from offset `from`, primed with
    /// `primedMax` (the largest time before `from`, when a layer starts mid-log); events before
    /// `from` are never late.
    static func watermark(_ events: [OracleEvent], key: (OracleEvent) -> String, lateness: Int64,
                          from: Int = 0, primedMax: Int64? = nil) -> Watermarked {
        var maxSeen = primedMax
        var out = Watermarked(lateLines: [], isLate: Array(repeating: false, count: events.count))
        for offset in from..<events.count {
            let t = events[offset].time
            if let m = maxSeen {
                let (w, overflow) = m.subtractingReportingOverflow(lateness)
                if !overflow && t < w {
                    out.isLate[offset] = true
                    out.lateLines.append("\(offset)\t\(t)\t\(w)\t\(key(events[offset]))")
                    continue
                }
            }
            maxSeen = max(maxSeen ?? t, t)
        }
        return out
    }

    static func bytesOrder(_ a: String, _ b: String) -> Bool { Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) }

    /// Rows of fixed windows, sorted by key (bytes) then window start: `key<TAB>window<TAB>value`.
    static func fixedWindowRows(_ events: [(key: String, time: Int64, value: Int)], starts: (Int64) -> [Int64],
                                text: (Int64) -> String, render: ([Int]) -> String) -> [String] {
        var groups: [String: [Int64: [Int]]] = [:]
        for e in events {
            for s in starts(e.time) { groups[e.key, default: [:]][s, default: []].append(e.value) }
        }
        var rows: [String] = []
        for key in groups.keys.sorted(by: bytesOrder) {
            for (start, values) in groups[key]!.sorted(by: { $0.key < $1.key }) {
                rows.append("\(key)\t\(text(start))\t\(render(values))")
            }
        }
        return rows
    }

    /// Session rows (count, n, mean as `test-sessions` renders them), sorted by key then start.
    static func sessionRows(_ events: [(key: String, time: Int64, value: Int)], gap: Int64) -> [String] {
        var byKey: [String: [(Int64, Int)]] = [:]
        for e in events { byKey[e.key, default: []].append((e.time, e.value)) }
        var rows: [String] = []
        for key in byKey.keys.sorted(by: bytesOrder) {
            let sorted = byKey[key]!.sorted { $0.0 < $1.0 }
            var start = sorted[0].0, last = sorted[0].0, values: [Int] = []
            func flush() {
                let mean = String(format: "%.2f", Double(values.reduce(0, +)) / Double(values.count))
                rows.append("\(key)\t\(iso(start))..\(iso(last + gap))\t\(values.count)\t\(values.count)\t\(mean)")
            }
            for (t, v) in sorted {
                if t - last >= gap {
                    flush()
                    start = t
                    values = []
                }
                last = t
                values.append(v)
            }
            flush()
        }
        return rows
    }

    static func countSum(_ values: [Int]) -> String { "\(values.count)\t\(values.reduce(0, +))" }

    static func top3MinMax(_ values: [Int]) -> String {
        let sorted = values.sorted(by: >)
        return sorted.prefix(3).map(String.init).joined(separator: ",") + "\t\(sorted.last!)\t\(sorted.first!)"
    }

    /// A job the reference knows: its view header, key, and view rows for the kept events.
    struct Spec: Sendable {
        var name: String
        var header: String
        /// Whether the job's key is the `user` column (otherwise `key`).
        var keyIsUser: Bool
        var rows: @Sendable ([(key: String, time: Int64, value: Int)]) -> [String]

        func key(_ e: OracleEvent) -> String { keyIsUser ? e.user : e.key }

        /// The view (header first) of the events not marked late.
        func view(_ events: [OracleEvent], late: [Bool]) -> [String] {
            let kept = events.indices.filter { !late[$0] }.map { (key: key(events[$0]), time: events[$0].time, value: events[$0].value) }
            return [header] + rows(kept)
        }
    }

    /// `eventcounts`: tumbling 1 minute, count and sum, by `key`.
    static let eventcounts = Spec(name: "eventcounts", header: "key\twindow\tcount\tsum", keyIsUser: false) { events in
        fixedWindowRows(events, starts: { [tumblingStart($0, size: 60_000)] }, text: iso, render: countSum)
    }

    /// `test-sliding`: 2 minutes every 30 s, top 3, min and max, by `key`.
    static let sliding = Spec(name: "test-sliding", header: "key\twindow\ttop3\tmin\tmax", keyIsUser: false) { events in
        fixedWindowRows(events, starts: { slidingStarts($0, size: 120_000, slide: 30_000) },
                        text: { "\(iso($0))..\(iso($0 + 120_000))" }, render: top3MinMax)
    }

    /// `test-sessions`: sessions with a 5 s gap, count and mean, by `user`.
    static let sessions = Spec(name: "test-sessions", header: "key\twindow\tcount\tn\tmean", keyIsUser: true) { events in
        sessionRows(events, gap: 5000)
    }

    static func spec(_ job: String) -> Spec { [eventcounts, sliding, sessions].first { $0.name == job }! }
}

// MARK: - Test-only jobs

enum OracleJobs {
    /// Sliding windows whose size (50 s) is not a multiple of the slide (20 s): count and sum
    /// (a hidden job of the `sluice` binary, so that its worker processes know it).
    static let slidingOdd = StreamJobs.all.first { $0.name == "test-oracle-sliding-50s-20s" }!

    /// Hopping windows with gaps (10 s windows every 30 s): count and sum.
    static let hopping = StreamJobs.all.first { $0.name == "test-oracle-hopping-10s-30s" }!
}

// MARK: - Random out-of-order data

/// Out-of-order events around a clock that advances about `step` ms per event: most a little
/// behind it, some far behind (bursts of very late events), a few ahead (spikes that push the
/// watermark forward), a quarter snapped to 30 s boundaries (window boundaries of every job).
struct OracleGenerator {
    var count: Int
    var keys = 12
    var users = 30
    var step: Int64 = 100
    /// Times are multiples of this (except boundary-snapped ones, multiples of 30 s).
    var quantum: Int64 = 1
    /// One event in this many starts a burst of 20–300 events 1–15 minutes behind the clock.
    var burstChance = 400
    /// When set, the events at offsets within 100 of every multiple of it (from the first
    /// one on) are 10–11 minutes behind the clock: runs of late events across those offsets.
    var forcedPeriod: Int?

    func events(seed: UInt64) -> [OracleEvent] {
        var rng = TestRandom(seed)
        func r(_ n: Int64) -> Int64 { Int64(rng.int(Int(n))) }
        func name(_ prefix: String, _ i: Int) -> String { prefix + (i < 10 ? "0\(i)" : "\(i)") }
        var clock = -(Int64(count) * step) / 2 // the data crosses 1970
        var burst = 0
        var lag: Int64 = 0
        var out: [OracleEvent] = []
        out.reserveCapacity(count)
        for offset in 0..<count {
            clock += r(2 * step + 1)
            var t: Int64
            if let p = forcedPeriod, offset >= p - 100, (offset + 100) % p < 200 {
                t = clock - 600_000 - r(60_000)
            } else if burst > 0 {
                burst -= 1
                t = clock - lag - r(5000)
            } else if rng.int(burstChance) == 0 {
                burst = 20 + rng.int(281)
                lag = 60_000 + r(840_000)
                t = clock - lag
            } else if rng.int(1_000) == 0 {
                t = clock + 1 + r(30_000)
            } else {
                switch rng.int(10) {
                case 0..<6: t = clock - r(500)
                case 6..<9: t = clock - r(10_000)
                default: t = clock - r(40_000)
                }
            }
            if rng.int(4) == 0 {
                t -= WindowReference.posMod(t, 30_000)
            } else if quantum > 1 {
                t -= WindowReference.posMod(t, quantum)
            }
            out.append(OracleEvent(t, key: name("k", rng.int(keys)), value: rng.int(151) - 50, user: name("u", rng.int(users))))
        }
        return out
    }
}

/// One randomized comparison.
struct OracleCase: Sendable, CustomTestStringConvertible {
    var job: String
    var seed: UInt64
    var lateness: Int64
    var testDescription: String { "\(job) seed \(seed) lateness \(lateness == .max ? "Int64.max" : String(lateness))" }
}

// MARK: - Comparisons

/// Expects `got == want` line for line; on a difference, says whether only the order differs
/// and shows the first missing and unexpected lines.
func expectSameLines(_ got: [String], _ want: [String], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    if got == want { return }
    if got.sorted() == want.sorted() {
        Issue.record("\(what): the same \(got.count) lines in another order; first difference at line \(zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)", sourceLocation: sourceLocation)
        return
    }
    var remaining: [String: Int] = [:]
    for l in want { remaining[l, default: 0] += 1 }
    var unexpected: [String] = []
    for l in got {
        if let n = remaining[l], n > 0 { remaining[l] = n - 1 } else { unexpected.append(l) }
    }
    let missing = want.filter { l in
        guard let n = remaining[l], n > 0 else { return false }
        remaining[l] = n - 1
        return true
    }
    Issue.record("""
        \(what): \(got.count) lines, expected \(want.count); \(missing.count) missing, \(unexpected.count) unexpected
        missing: \(missing.prefix(6).joined(separator: " | "))
        unexpected: \(unexpected.prefix(6).joined(separator: " | "))
        """, sourceLocation: sourceLocation)
}

/// Checks kappa's outputs for `job` on `log` against expected view rows and late lines (both
/// without headers).
func expectKappa(_ job: StreamJob, log: String, lateness: Int64, header: String, rows: [String], late: [String],
                 sourceLocation: SourceLocation = #_sourceLocation) throws {
    let got = try runKappa(job, log: log, lateness: lateness)
    expectSameLines(got.view, [header] + rows, "kappa view.tsv of \(job.name)", sourceLocation: sourceLocation)
    expectSameLines(got.late, ["offset\tevent_time\twatermark\tkey"] + late, "kappa late.tsv of \(job.name)", sourceLocation: sourceLocation)
}

// MARK: - Tests

@Suite("Window oracle", .serialized)
struct WindowOracleTests {
    static let hour: Int64 = 3_600_000
    static let lateHeader = "offset\tevent_time\twatermark\tkey"

    @Test("the reference's own window math and time text on literal cases")
    func referenceSelfCheck() {
        typealias R = WindowReference
        #expect(R.tumblingStart(0, size: 60_000) == 0)
        #expect(R.tumblingStart(59_999, size: 60_000) == 0)
        #expect(R.tumblingStart(60_000, size: 60_000) == 60_000)
        #expect(R.tumblingStart(-1, size: 60_000) == -60_000)
        #expect(R.tumblingStart(-60_000, size: 60_000) == -60_000)
        #expect(R.tumblingStart(-60_001, size: 60_000) == -120_000)
        #expect(R.slidingStarts(0, size: 120_000, slide: 30_000) == [-90_000, -60_000, -30_000, 0])
        #expect(R.slidingStarts(-1, size: 120_000, slide: 30_000) == [-120_000, -90_000, -60_000, -30_000])
        #expect(R.slidingStarts(30_000, size: 120_000, slide: 30_000) == [-60_000, -30_000, 0, 30_000])
        #expect(R.slidingStarts(10_000, size: 50_000, slide: 20_000) == [-20_000, 0])
        #expect(R.slidingStarts(0, size: 50_000, slide: 20_000) == [-40_000, -20_000, 0])
        #expect(R.slidingStarts(15_000, size: 10_000, slide: 30_000) == [])
        #expect(R.slidingStarts(5_000, size: 10_000, slide: 30_000) == [0])
        #expect(R.iso(0) == "1970-01-01T00:00:00Z")
        #expect(R.iso(-1) == "1969-12-31T23:59:59.999Z")
        #expect(R.iso(4_999) == "1970-01-01T00:00:04.999Z")
        #expect(R.iso(1_357_034_430_500) == "2013-01-01T10:00:30.500Z")
        #expect(R.iso(951_782_400_000) == "2000-02-29T00:00:00Z")
        #expect(R.iso(-31_536_000_000) == "1969-01-01T00:00:00Z")
        #expect(R.iso(-86_400_000 * 365 * 2 - 1) == "1968-01-01T23:59:59.999Z")
        let events = [OracleEvent(10, key: "a", value: 0), OracleEvent(5, key: "a", value: 0), OracleEvent(10, key: "b", value: 0),
                      OracleEvent(4, key: "c", value: 0), OracleEvent(11, key: "d", value: 0)]
        let w = R.watermark(events, key: \.key, lateness: 5)
        #expect(w.lateLines == ["3\t4\t5\tc"], "5 is on the watermark (not late), 4 is below it")
        #expect(R.watermark(events, key: \.key, lateness: .max).lateCount == 0, "an overflowing watermark is Int64.min")
        #expect(R.watermark(events, key: \.key, lateness: 0).lateLines == ["1\t5\t10\ta", "3\t4\t10\tc"])
        #expect(R.sessionRows([("u", 0, 1), ("u", 4999, 2), ("u", 9999, 3)], gap: 5000) == [
            "u\t1970-01-01T00:00:00Z..1970-01-01T00:00:09.999Z\t2\t2\t1.50",
            "u\t1970-01-01T00:00:09.999Z..1970-01-01T00:00:14.999Z\t1\t1\t3.00",
        ])
    }

    @Test("tumbling 1-minute windows by hand: before 1970, on boundaries, in 2013 (kappa and lambda)")
    func handTumbling() throws {
        let events = [
            OracleEvent(-60_001, key: "a", value: 4),
            OracleEvent(-60_000, key: "a", value: 2),
            OracleEvent(-1, key: "a", value: 1),
            OracleEvent(-30_000, key: "b", value: 64),
            OracleEvent(0, key: "a", value: 8),
            OracleEvent(59_999, key: "a", value: 16),
            OracleEvent(60_000, key: "a", value: 32),
            OracleEvent(119_999, key: "b", value: 128),
            OracleEvent(-120_000, key: "b", value: 256),
            OracleEvent(1_357_034_430_500, key: "c", value: 512), // 2013-01-01T10:00:30.500Z
        ]
        let rows = [
            "a\t1969-12-31T23:58:00Z\t1\t4",
            "a\t1969-12-31T23:59:00Z\t2\t3",
            "a\t1970-01-01T00:00:00Z\t2\t24",
            "a\t1970-01-01T00:01:00Z\t1\t32",
            "b\t1969-12-31T23:58:00Z\t1\t256",
            "b\t1969-12-31T23:59:00Z\t1\t64",
            "b\t1970-01-01T00:01:00Z\t1\t128",
            "c\t2013-01-01T10:00:00Z\t1\t512",
        ]
        let (dir, log) = try OracleLog.make(events)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = OracleLog.builtIn("eventcounts")
        try expectKappa(job, log: log, lateness: Self.hour, header: "key\twindow\tcount\tsum", rows: rows, late: [])
        let lambda = try runLambda(job, log: log, cut: 4, batchSize: 4, lateness: Self.hour)
        expectSameLines(lambda.rows, rows, "lambda rows")
        expectSameLines(lambda.late, [], "lambda late events")
        // The reference agrees with the hand table.
        expectSameLines(WindowReference.eventcounts.view(events, late: Array(repeating: false, count: events.count)),
                        ["key\twindow\tcount\tsum"] + rows, "reference")
    }

    @Test("sliding 2-minute windows every 30 s by hand: four windows per event, boundaries, top 3 with repeats (kappa and lambda)")
    func handSliding() throws {
        let events = [
            OracleEvent(-120_000, key: "k", value: 9),
            OracleEvent(-1, key: "k", value: 5),
            OracleEvent(0, key: "k", value: 7),
            OracleEvent(15_000, key: "k", value: 7),
            OracleEvent(30_000, key: "k", value: 3),
            OracleEvent(60_000, key: "j", value: -2),
        ]
        let rows = [
            "j\t1969-12-31T23:59:30Z..1970-01-01T00:01:30Z\t-2\t-2\t-2",
            "j\t1970-01-01T00:00:00Z..1970-01-01T00:02:00Z\t-2\t-2\t-2",
            "j\t1970-01-01T00:00:30Z..1970-01-01T00:02:30Z\t-2\t-2\t-2",
            "j\t1970-01-01T00:01:00Z..1970-01-01T00:03:00Z\t-2\t-2\t-2",
            "k\t1969-12-31T23:56:30Z..1969-12-31T23:58:30Z\t9\t9\t9",
            "k\t1969-12-31T23:57:00Z..1969-12-31T23:59:00Z\t9\t9\t9",
            "k\t1969-12-31T23:57:30Z..1969-12-31T23:59:30Z\t9\t9\t9",
            "k\t1969-12-31T23:58:00Z..1970-01-01T00:00:00Z\t9,5\t5\t9",
            "k\t1969-12-31T23:58:30Z..1970-01-01T00:00:30Z\t7,7,5\t5\t7",
            "k\t1969-12-31T23:59:00Z..1970-01-01T00:01:00Z\t7,7,5\t3\t7",
            "k\t1969-12-31T23:59:30Z..1970-01-01T00:01:30Z\t7,7,5\t3\t7",
            "k\t1970-01-01T00:00:00Z..1970-01-01T00:02:00Z\t7,7,3\t3\t7",
            "k\t1970-01-01T00:00:30Z..1970-01-01T00:02:30Z\t3\t3\t3",
        ]
        let (dir, log) = try OracleLog.make(events)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = OracleLog.builtIn("test-sliding")
        try expectKappa(job, log: log, lateness: Self.hour, header: "key\twindow\ttop3\tmin\tmax", rows: rows, late: [])
        let lambda = try runLambda(job, log: log, cut: 3, batchSize: 3, lateness: Self.hour)
        expectSameLines(lambda.rows, rows, "lambda rows")
        expectSameLines(WindowReference.sliding.view(events, late: Array(repeating: false, count: events.count)),
                        ["key\twindow\ttop3\tmin\tmax"] + rows, "reference")
    }

    @Test("sliding windows whose size is not a multiple of the slide (50 s every 20 s): two or three windows per event")
    func handSlidingNotMultiple() throws {
        let events = [
            OracleEvent(-10_000, key: "k", value: 4),
            OracleEvent(0, key: "k", value: 1),
            OracleEvent(10_000, key: "k", value: 2),
            OracleEvent(40_000, key: "k", value: 8),
            OracleEvent(-60_001, key: "k", value: 16),
        ]
        let rows = [
            "k\t1969-12-31T23:58:20Z..1969-12-31T23:59:10Z\t1\t16",
            "k\t1969-12-31T23:58:40Z..1969-12-31T23:59:30Z\t1\t16",
            "k\t1969-12-31T23:59:20Z..1970-01-01T00:00:10Z\t2\t5",
            "k\t1969-12-31T23:59:40Z..1970-01-01T00:00:30Z\t3\t7",
            "k\t1970-01-01T00:00:00Z..1970-01-01T00:00:50Z\t3\t11",
            "k\t1970-01-01T00:00:20Z..1970-01-01T00:01:10Z\t1\t8",
            "k\t1970-01-01T00:00:40Z..1970-01-01T00:01:30Z\t1\t8",
        ]
        let (dir, log) = try OracleLog.make(events)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try expectKappa(OracleJobs.slidingOdd, log: log, lateness: Self.hour, header: "key\twindow\tcount\tsum", rows: rows, late: [])
        // Lambda without a batch view (the batch layer's workers know only built-in jobs).
        let lambda = try runLambda(OracleJobs.slidingOdd, log: log, cut: 0, batchSize: 2, lateness: Self.hour)
        expectSameLines(lambda.rows, rows, "lambda (speed layer) rows")
        let reference = WindowReference.fixedWindowRows(events.map { (key: $0.key, time: $0.time, value: $0.value) },
                                                        starts: { WindowReference.slidingStarts($0, size: 50_000, slide: 20_000) },
                                                        text: { "\(WindowReference.iso($0))..\(WindowReference.iso($0 + 50_000))" },
                                                        render: WindowReference.countSum)
        expectSameLines(reference, rows, "reference")
    }

    @Test("hopping windows with gaps (10 s every 30 s): an event between windows is in none")
    func handHopping() throws {
        let events = [
            OracleEvent(5_000, key: "k", value: 1),
            OracleEvent(15_000, key: "k", value: 2),   // in the gap [10 s, 30 s)
            OracleEvent(10_000, key: "k", value: 4),   // on the end of [0, 10 s): outside
            OracleEvent(30_000, key: "k", value: 8),
            OracleEvent(-25_000, key: "k", value: 16),
            OracleEvent(-15_000, key: "k", value: 32), // in the gap [−20 s, 0)
        ]
        let rows = [
            "k\t1969-12-31T23:59:30Z..1969-12-31T23:59:40Z\t1\t16",
            "k\t1970-01-01T00:00:00Z..1970-01-01T00:00:10Z\t1\t1",
            "k\t1970-01-01T00:00:30Z..1970-01-01T00:00:40Z\t1\t8",
        ]
        let (dir, log) = try OracleLog.make(events)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try expectKappa(OracleJobs.hopping, log: log, lateness: Self.hour, header: "key\twindow\tcount\tsum", rows: rows, late: [])
        let lambda = try runLambda(OracleJobs.hopping, log: log, cut: 0, batchSize: 2, lateness: Self.hour)
        expectSameLines(lambda.rows, rows, "lambda (speed layer) rows")
    }

    /// Sessions (gap 5 s) by hand: u1's 4999 ms gap stays in a session and its exact 5000 ms gap
    /// starts a new one; u1's 24 s event arrives after 20 s and 28 s and bridges them; u2 is
    /// before 1970 and ends on a millisecond; u3's three events arrive out of order, exactly
    /// 5 s apart: three sessions.
    static let sessionEvents = [
        OracleEvent(0, key: "x", value: 10, user: "u1"),
        OracleEvent(4_999, key: "x", value: 20, user: "u1"),
        OracleEvent(9_999, key: "x", value: 30, user: "u1"),
        OracleEvent(-5_000, key: "x", value: -3, user: "u2"),
        OracleEvent(20_000, key: "x", value: 1, user: "u1"),
        OracleEvent(28_000, key: "x", value: 2, user: "u1"),
        OracleEvent(-1, key: "x", value: 4, user: "u2"),
        OracleEvent(24_000, key: "x", value: 4, user: "u1"),
        OracleEvent(110_000, key: "x", value: 5, user: "u3"),
        OracleEvent(100_000, key: "x", value: 1, user: "u3"),
        OracleEvent(105_000, key: "x", value: 3, user: "u3"),
    ]

    @Test("sessions by hand: a gap of exactly the session gap starts a new session; an out-of-order event bridges two (kappa and lambda)")
    func handSessions() throws {
        let rows = [
            "u1\t1970-01-01T00:00:00Z..1970-01-01T00:00:09.999Z\t2\t2\t15.00",
            "u1\t1970-01-01T00:00:09.999Z..1970-01-01T00:00:14.999Z\t1\t1\t30.00",
            "u1\t1970-01-01T00:00:20Z..1970-01-01T00:00:33Z\t3\t3\t2.33",
            "u2\t1969-12-31T23:59:55Z..1970-01-01T00:00:04.999Z\t2\t2\t0.50",
            "u3\t1970-01-01T00:01:40Z..1970-01-01T00:01:45Z\t1\t1\t1.00",
            "u3\t1970-01-01T00:01:45Z..1970-01-01T00:01:50Z\t1\t1\t3.00",
            "u3\t1970-01-01T00:01:50Z..1970-01-01T00:01:55Z\t1\t1\t5.00",
        ]
        let events = Self.sessionEvents
        let (dir, log) = try OracleLog.make(events)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = OracleLog.builtIn("test-sessions")
        try expectKappa(job, log: log, lateness: 60_000, header: "key\twindow\tcount\tn\tmean", rows: rows, late: [])
        // The batch view holds offsets [0, 6): 20 s and 28 s are apart there; the speed layer's
        // 24 s event bridges them and u2's −1 ms joins −5 s, through the serving layer's merge.
        let lambda = try runLambda(job, log: log, cut: 6, batchSize: 6, lateness: 60_000)
        expectSameLines(lambda.rows, rows, "lambda rows")
        expectSameLines(lambda.late, [], "lambda late events")
        expectSameLines(WindowReference.sessions.view(events, late: Array(repeating: false, count: events.count)),
                        ["key\twindow\tcount\tn\tmean"] + rows, "reference")
    }

    @Test("sessions by hand with a small lateness: the bridging event is late, so the sessions stay apart")
    func handSessionsLate() throws {
        let rows = [
            "u1\t1970-01-01T00:00:00Z..1970-01-01T00:00:09.999Z\t2\t2\t15.00",
            "u1\t1970-01-01T00:00:09.999Z..1970-01-01T00:00:14.999Z\t1\t1\t30.00",
            "u1\t1970-01-01T00:00:20Z..1970-01-01T00:00:25Z\t1\t1\t1.00",
            "u1\t1970-01-01T00:00:28Z..1970-01-01T00:00:33Z\t1\t1\t2.00",
            "u3\t1970-01-01T00:01:50Z..1970-01-01T00:01:55Z\t1\t1\t5.00",
        ]
        let late = [
            "3\t-5000\t6999\tu2",
            "6\t-1\t25000\tu2",
            "7\t24000\t25000\tu1",
            "9\t100000\t107000\tu3",
            "10\t105000\t107000\tu3",
        ]
        let events = Self.sessionEvents
        let (dir, log) = try OracleLog.make(events)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = OracleLog.builtIn("test-sessions")
        try expectKappa(job, log: log, lateness: 3_000, header: "key\twindow\tcount\tn\tmean", rows: rows, late: late)
        let lambda = try runLambda(job, log: log, cut: 0, batchSize: 4, lateness: 3_000)
        expectSameLines(lambda.rows, rows, "lambda (speed layer) rows")
        expectSameLines(lambda.late, late, "lambda (speed layer) late events")
        let w = WindowReference.watermark(events, key: \.user, lateness: 3_000)
        expectSameLines(w.lateLines, late, "reference late events")
    }

    static let watermarkEvents = [
        OracleEvent(120_000, key: "a", value: 1),
        OracleEvent(110_000, key: "a", value: 2),    // on the watermark with 10 s: not late
        OracleEvent(109_999, key: "b", value: 4),
        OracleEvent(200_000, key: "a", value: 8),
        OracleEvent(100_000, key: "a", value: 16),
        OracleEvent(195_000, key: "b", value: 32),
        OracleEvent(189_999, key: "b", value: 64),
        OracleEvent(190_000, key: "b", value: 128),  // on the watermark with 10 s
        OracleEvent(-60_000, key: "c", value: 256),
        OracleEvent(250_000, key: "c", value: 512),
        OracleEvent(239_999, key: "a", value: 1024),
        OracleEvent(250_000, key: "b", value: 2048), // on the maximum: not late even with lateness 0
    ]

    @Test("the watermark by hand: an event on the watermark is not late, one millisecond below is (kappa and speed layer)",
          arguments: [Int64(10_000), 0])
    func handWatermark(lateness: Int64) throws {
        let rows: [String], late: [String]
        if lateness == 10_000 {
            rows = [
                "a\t1970-01-01T00:01:00Z\t1\t2",
                "a\t1970-01-01T00:02:00Z\t1\t1",
                "a\t1970-01-01T00:03:00Z\t1\t8",
                "b\t1970-01-01T00:03:00Z\t2\t160",
                "b\t1970-01-01T00:04:00Z\t1\t2048",
                "c\t1970-01-01T00:04:00Z\t1\t512",
            ]
            late = [
                "2\t109999\t110000\tb",
                "4\t100000\t190000\ta",
                "6\t189999\t190000\tb",
                "8\t-60000\t190000\tc",
                "10\t239999\t240000\ta",
            ]
        } else {
            rows = [
                "a\t1970-01-01T00:02:00Z\t1\t1",
                "a\t1970-01-01T00:03:00Z\t1\t8",
                "b\t1970-01-01T00:04:00Z\t1\t2048",
                "c\t1970-01-01T00:04:00Z\t1\t512",
            ]
            late = [
                "1\t110000\t120000\ta",
                "2\t109999\t120000\tb",
                "4\t100000\t200000\ta",
                "5\t195000\t200000\tb",
                "6\t189999\t200000\tb",
                "7\t190000\t200000\tb",
                "8\t-60000\t200000\tc",
                "10\t239999\t250000\ta",
            ]
        }
        let events = Self.watermarkEvents
        let (dir, log) = try OracleLog.make(events)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = OracleLog.builtIn("eventcounts")
        try expectKappa(job, log: log, lateness: lateness, header: "key\twindow\tcount\tsum", rows: rows, late: late)
        // The speed layer from offset 0 is the same sequential replay.
        let lambda = try runLambda(job, log: log, cut: 0, batchSize: 5, lateness: lateness)
        expectSameLines(lambda.rows, rows, "lambda (speed layer) rows")
        expectSameLines(lambda.late, late, "lambda (speed layer) late events")
        let w = WindowReference.watermark(events, key: \.key, lateness: lateness)
        expectSameLines(w.lateLines, late, "reference late events")
        expectSameLines(WindowReference.eventcounts.view(events, late: w.isLate), ["key\twindow\tcount\tsum"] + rows, "reference view")
    }

    static let randomCases: [OracleCase] = {
        var cases: [OracleCase] = []
        for job in ["eventcounts", "test-sliding", "test-sessions"] {
            for seed: UInt64 in [1, 2, 3] {
                for lateness: Int64 in [job == "test-sessions" ? 1_000 : 2_000, 60_000, 10 * 86_400_000] {
                    cases.append(OracleCase(job: job, seed: seed, lateness: lateness))
                }
            }
        }
        cases.append(OracleCase(job: "eventcounts", seed: 4, lateness: 0))
        cases.append(OracleCase(job: "test-sessions", seed: 4, lateness: 0))
        cases.append(OracleCase(job: "eventcounts", seed: 5, lateness: .max))
        return cases
    }()

    static func generator(for job: String, count: Int) -> OracleGenerator {
        var g = OracleGenerator(count: count)
        if job == "test-sessions" {
            g.users = 40
            g.step = 120
            g.quantum = 1_000 // many gaps of exactly 5 s
        }
        return g
    }

    @Test("randomized out-of-order logs over many segments: kappa's view and late events = the independent reference",
          arguments: WindowOracleTests.randomCases)
    func randomized(_ c: OracleCase) throws {
        let spec = WindowReference.spec(c.job)
        let events = Self.generator(for: c.job, count: 6_000).events(seed: c.seed)
        let (dir, log) = try OracleLog.make(events, segmentBytes: 8 << 10)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try EventLog(path: log).info().segments.count >= 10, "the log has many segments")

        let w = WindowReference.watermark(events, key: spec.key, lateness: c.lateness)
        // The data exercises what it claims to.
        #expect(events.contains { $0.time < 0 } && events.contains { $0.time >= 0 }, "times on both sides of 1970")
        #expect(events.filter { $0.time % 30_000 == 0 }.count > 500, "events on window boundaries")
        switch c.lateness {
        case ...2_000: #expect(w.lateCount > 300, "many late events: \(w.lateCount)")
        case 60_000: #expect(w.lateCount > 50 && w.lateCount < 3_500, "some late events: \(w.lateCount)")
        default: #expect(w.lateCount == 0)
        }
        if c.job == "test-sessions" {
            var times: [String: [Int64]] = [:]
            for (i, e) in events.enumerated() where !w.isLate[i] { times[e.user, default: []].append(e.time) }
            let gaps = times.values.flatMap { t in zip(t.sorted(), t.sorted().dropFirst()).map { $1 - $0 } }
            #expect(gaps.filter { $0 == 5_000 }.count > 5, "gaps of exactly the session gap")
            #expect(gaps.filter { $0 > 5_000 }.count > 100, "sessions that end")
            // Events that arrive after two sessions of their key and bridge them into one.
            var seen: [String: [Int64]] = [:], bridges = 0
            for (i, e) in events.enumerated() where !w.isLate[i] {
                let before = seen[e.user, default: []]
                if let p = before.filter({ $0 < e.time }).max(), let n = before.filter({ $0 > e.time }).min(),
                   n - p >= 5_000, e.time - p < 5_000, n - e.time < 5_000 {
                    bridges += 1
                }
                seen[e.user, default: []].append(e.time)
            }
            if c.lateness >= 60_000 { // with a small lateness such an event is almost always late
                #expect(bridges > 5, "out-of-order events that bridge two sessions: \(bridges)")
            }
        }

        let got = try runKappa(OracleLog.builtIn(c.job), log: log, lateness: c.lateness)
        expectSameLines(got.late, [Self.lateHeader] + w.lateLines, "late.tsv, \(c.testDescription)")
        expectSameLines(got.view, spec.view(events, late: w.isLate), "view.tsv, \(c.testDescription)")
    }

    @Test("randomized lambda (batch view to a cut, speed layer after it) = the reference with the speed watermark primed at the cut",
          arguments: ["eventcounts", "test-sessions"])
    func randomizedLambda(_ jobName: String) throws {
        let spec = WindowReference.spec(jobName)
        let events = Self.generator(for: jobName, count: 6_000).events(seed: 7)
        let (dir, log) = try OracleLog.make(events, segmentBytes: 16 << 10)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cut = 3_000, lateness: Int64 = 2_000
        // The batch layer has no watermark; the speed layer's starts at the largest time before the cut.
        let w = WindowReference.watermark(events, key: spec.key, lateness: lateness, from: cut,
                                          primedMax: events[..<cut].map(\.time).max())
        #expect(w.lateCount > 100)
        let lambda = try runLambda(OracleLog.builtIn(jobName), log: log, cut: Int64(cut), batchSize: 1_000, lateness: lateness)
        expectSameLines(lambda.late, w.lateLines, "lambda speed late.tsv")
        expectSameLines(lambda.rows, Array(spec.view(events, late: w.isLate).dropFirst()), "lambda served rows")
    }

    @Test("50 000 events with runs of late events across every 1000th offset and most segment starts: kappa's late events = the sequential watermark",
          arguments: ["eventcounts", "test-sliding", "test-sessions"], [Int64(2_000), 60_000, 3_600_000])
    func lateRunsAcrossTaskBoundaries(_ jobName: String, lateness: Int64) throws {
        let spec = WindowReference.spec(jobName)
        var g = Self.generator(for: jobName, count: 50_000)
        g.burstChance = 150
        g.forcedPeriod = 1_000
        let events = g.events(seed: 11)
        let (dir, log) = try OracleLog.make(events, segmentBytes: 32 << 10)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = WindowReference.watermark(events, key: spec.key, lateness: lateness)
        let bases = try EventLog(path: log).info().segments.map(\.base).filter { $0 > 0 }.map { Int($0) }
        #expect(bases.count >= 20, "the log has many segments: \(bases.count)")
        func insideLateRun(_ o: Int) -> Bool { o > 0 && o < events.count && w.isLate[o - 1] && w.isLate[o] }
        if lateness <= 60_000 {
            // A task starting at one of these offsets starts inside a run of late events: its
            // watermark must come from the prefix before it, not from its own first events.
            let thousands = stride(from: 1_000, to: events.count, by: 1_000).filter(insideLateRun)
            #expect(thousands.count == 49, "every 1000th offset is inside a run of late events: \(thousands.count)")
            let inside = bases.filter(insideLateRun)
            #expect(inside.count * 4 >= bases.count, "segment starts inside late runs: \(inside.count) of \(bases.count)")
            #expect(w.lateCount > 10_000, "late events: \(w.lateCount)")
        } else {
            #expect(w.lateCount == 0)
        }
        let got = try runKappa(OracleLog.builtIn(jobName), log: log, lateness: lateness)
        expectSameLines(got.late, [Self.lateHeader] + w.lateLines, "late.tsv, \(jobName) lateness \(lateness)")
        expectSameLines(got.view, spec.view(events, late: w.isLate), "view.tsv, \(jobName) lateness \(lateness)")
    }
}
