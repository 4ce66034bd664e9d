#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Sluice
@testable import SluiceStream
import SluiceGenerators
import SluiceJobs
import Testing

/// Generated events for the stream tests, as CSV chunks and as parsed rows.
struct StreamFixture {
    struct Row {
        var ts: Int64
        var user: String
        var key: String
        var value: Int
    }

    let header = "ts,user,key,value"
    let lines: [String]
    let rows: [Row]

    init(rows n: Int, seed: UInt64, keys: Int = 60, users: Int = 300, lateFraction: Double = 0, maxLateness: Int64 = 60_000) {
        let csv = String(decoding: EventGenerator(rows: n, seed: seed, keys: keys, users: users, hotKeys: 2, hotShare: 0.3,
                                                  lateFraction: lateFraction, maxLatenessMillis: maxLateness).makeBytes(), as: UTF8.self)
        lines = csv.split(separator: "\n").dropFirst().map(String.init)
        rows = lines.map { line in
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return Row(ts: Int64(f[0])!, user: f[1], key: f[2], value: Int(f[3])!)
        }
    }

    /// Writes rows `range` as a CSV file with a header; returns its path.
    func write(_ range: Range<Int>, to path: String) throws -> String {
        try ([header] + lines[range]).joined(separator: "\n").appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The offsets a stream processor starting at `from` (its watermark primed with the events
    /// before it) sends to the side output.
    func lateOffsets(from: Int, allowedLateness: Int64) -> [Int] {
        var maxSeen = rows[..<from].map(\.ts).max() ?? Int64.min
        var late: [Int] = []
        for i in from..<rows.count {
            if maxSeen != .min && rows[i].ts < maxSeen - allowedLateness {
                late.append(i)
            } else {
                maxSeen = max(maxSeen, rows[i].ts)
            }
        }
        return late
    }
}

enum StreamHarness {
    static func job(_ name: String) -> StreamJob { StreamJobs.all.first { $0.name == name }! }

    /// Appends rows `range` of `fixture` to the log.
    static func append(_ fixture: StreamFixture, _ range: Range<Int>, to writer: EventLogWriter, scratch: String) throws {
        let file = try fixture.write(range, to: scratch + "/chunk-\(range.lowerBound).csv")
        try LogAppender().append(path: file, to: writer)
    }

    static func compareOptions(served: LambdaStore? = nil, cut: Int64? = nil, batchSize: Int64? = nil,
                               allowedLateness: Int64? = nil) -> CompareOptions {
        var o = CompareOptions()
        o.run = Harness.options(workers: 2, partitions: 3)
        o.served = served
        o.cut = cut
        o.batchSize = batchSize
        o.allowedLateness = allowedLateness
        return o
    }

    /// Starts `sluice lambda speed JOB --follow` on the built binary.
    static func startSpeed(_ job: String, log: String, checkpointEvery: Int = 300) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
        p.arguments = ["lambda", "speed", job, "--log", log, "--follow", "--checkpoint-every", String(checkpointEvery), "-q"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    static func kill9(_ p: Process) {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Waits until the served view covers `end` (and, when given, the speed state starts at `start`).
    static func waitForSpeed(_ job: StreamJob, log: String, store: LambdaStore, end: Int64, start: Int64? = nil) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let view = try? Serving.query(job: job, log: log, store: store), view.coverageEnd == end,
               start == nil || view.speedRange?.lowerBound == start {
                return
            }
            usleep(20_000)
        }
        Issue.record("the speed layer did not reach offset \(end) in time")
    }
}

@Suite("Event log")
struct EventLogTests {
    @Test("events round-trip across many segments; any offset can be read")
    func roundTrip() throws {
        let dir = Harness.tempDir("log")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try EventLogWriter(path: dir, segmentBytes: 4096)
        try writer.extendSchema(columns: ["n", "text"], timeField: nil, timeFormat: nil)
        for i in 0..<3000 {
            try writer.append(EncodedEvent(time: Int64(1000 + (i * 7919) % 5000), fields: [Array(String(i).utf8), Array("e\(i)".utf8)]))
            if i % 700 == 0 { try writer.commit() }
        }
        try writer.commit()
        let log = try EventLog(path: dir)
        let info = try log.info()
        #expect(info.nextOffset == 3000)
        #expect(info.segments.count > 20, "small segments roll")
        #expect(info.segments.map(\.base) == info.segments.map(\.base).sorted())
        #expect(info.timeRange.min == 1000 && info.timeRange.max == 5999)
        var rng = TestRandom(3)
        for _ in 0..<40 {
            let from = Int64(rng.int(3000)), to = min(3000, from + Int64(rng.int(400)))
            var expected = from
            try log.read(from: from, to: to) { e in
                #expect(e.offset == expected)
                let n = try e.int(0)
                #expect(n == Int(e.offset))
                #expect(e.string(1) == "e\(e.offset)")
                #expect(e.time == Int64(1000 + (Int(e.offset) * 7919) % 5000))
                expected += 1
            }
            #expect(expected == to)
            let range = try log.timeRange(before: from)
            #expect(range.isEmpty == (from == 0))
        }
        // A second appender is refused while the first holds the log.
        #expect(throws: EventLogError.self) { try EventLogWriter(path: dir) }
    }

    @Test("a torn tail is never read and is truncated by the next appender")
    func tornTail() throws {
        let dir = Harness.tempDir("torn")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var writer: EventLogWriter? = try EventLogWriter(path: dir)
        for i in 0..<100 { try writer!.append(EncodedEvent(time: Int64(i), fields: [Array("v\(i)".utf8)])) }
        try writer!.commit()
        writer = nil
        let segment = dir + "/00000000000000000000.log"
        let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int
        // A crash mid-append: a header announcing 40 bytes, and only some of them.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: segment))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([40, 0, 0, 0, 0xAA, 0xBB, 0xCC, 0xDD, 100, 0, 0, 0, 0, 0]))
        try handle.close()
        #expect(try EventLog(path: dir).endOffset() == 100)
        var seen = 0
        try EventLog(path: dir).read(from: 0) { _ in seen += 1 }
        #expect(seen == 100)
        // The next appender truncates it and carries on from offset 100.
        writer = try EventLogWriter(path: dir)
        #expect(writer!.nextOffset == 100)
        #expect(try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int == size)
        for i in 100..<150 { try writer!.append(EncodedEvent(time: Int64(i), fields: [Array("v\(i)".utf8)])) }
        try writer!.commit()
        var offsets: [Int64] = []
        try EventLog(path: dir).read(from: 0) { e in
            #expect(e.string(0) == "v\(e.offset)")
            offsets.append(e.offset)
        }
        #expect(offsets == Array(0..<150))
    }

    @Test("an appender killed with -9 mid-append leaves a readable prefix, and the next append carries on")
    func killedAppender() throws {
        let dir = Harness.tempDir("killappend")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = StreamFixture(rows: 60_000, seed: 31)
        let csv = try fixture.write(0..<60_000, to: dir + "/events.csv")
        let log = dir + "/log"
        _ = try EventLogWriter(path: log) // the log exists even if the first kill comes early
        var rng = TestRandom(5)
        for round in 0..<2 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
            p.arguments = ["log", "append", "--log", log, "--commit-every", "500", "--segment-size", "256k", csv]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            usleep(UInt32(30_000 + rng.int(80_000)))
            StreamHarness.kill9(p)
            // Whatever was appended reads back as whole events: every round a prefix of the rows.
            var count = 0
            try EventLog(path: log).read(from: 0) { e in
                let row = fixture.rows[Int(e.offset) % fixture.rows.count]
                #expect(e.time == row.ts && e.string(2) == row.key, "round \(round), offset \(e.offset)")
                count += 1
            }
            #expect(try EventLog(path: log).endOffset() == Int64(count))
            // The next appender truncates any torn tail and appends after the last whole event.
            let writer = try EventLogWriter(path: log)
            #expect(writer.nextOffset == Int64(count))
            let missing = (60_000 - count % 60_000) % 60_000
            if missing > 0 {
                try StreamHarness.append(fixture, (count % 60_000)..<60_000, to: writer, scratch: dir)
            }
            #expect(writer.nextOffset % 60_000 == 0)
        }
    }

    @Test("a corrupt record in a closed segment is an error, not an early end")
    func corruption() throws {
        let dir = Harness.tempDir("corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try EventLogWriter(path: dir, segmentBytes: 4096)
        for i in 0..<400 { try writer.append(EncodedEvent(time: Int64(i), fields: [Array("value-\(i)".utf8)])) }
        try writer.commit()
        let first = dir + "/00000000000000000000.log"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: first))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: first))
        #expect(throws: EventLogError.self) { try EventLog(path: dir).read(from: 0) { _ in } }
    }

    @Test("CSV and JSON Lines appends: event-time formats, column order, new columns")
    func appendFormats() throws {
        let dir = Harness.tempDir("append")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let csv = dir + "/a.csv", json = dir + "/b.jsonl"
        try "key,when,amount\nx,2013-01-01T10:00:00Z,5\n\"y,z\",2013-01-01 10:00:30.5,6\n".write(toFile: csv, atomically: true, encoding: .utf8)
        try """
        {"amount": 7, "when": "2013-01-01T11:00:00+01:00", "key": "w\\u00e9", "extra": {"a": [1, 2]}}
        {"when": "2013-01-02", "key": "q", "amount": null}

        """.write(toFile: json, atomically: true, encoding: .utf8)
        let writer = try EventLogWriter(path: dir + "/log")
        var appender = LogAppender()
        appender.timeField = "when"
        #expect(try appender.append(path: csv, to: writer) == 2)
        appender.timeField = nil // the log remembers it
        #expect(try appender.append(path: json, to: writer) == 2)
        let log = try EventLog(path: dir + "/log")
        #expect(log.schema.columns == ["key", "when", "amount", "extra"])
        var events: [(Int64, [String])] = []
        try log.read(from: 0) { e in events.append((e.time, (0..<4).map { e.string($0) })) }
        let t0 = EventTime.parse("2013-01-01T10:00:00Z", format: .iso8601)!
        #expect(events.map(\.0) == [t0, t0 + 30_500, t0, t0 + 14 * EventTime.hour])
        #expect(events[1].1 == ["y,z", "2013-01-01 10:00:30.5", "6", ""])
        #expect(events[2].1 == ["wé", "2013-01-01T11:00:00+01:00", "7", "{\"a\": [1, 2]}"])
        #expect(events[3].1 == ["q", "2013-01-02", "", ""])
        #expect(EventTime.iso(t0 + 30_500) == "2013-01-01T10:00:30.500Z")
    }
}

@Suite("Lambda and kappa", .serialized)
struct LambdaKappaTests {
    @Test("in-order data: lambda merged = kappa = reference", arguments: ["eventcounts", "distinctusers", "test-sliding", "test-sessions"])
    func inOrder(job: String) throws {
        let dir = Harness.tempDir("inorder")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = StreamFixture(rows: 6000, seed: 21, keys: 40, users: 3000)
        let writer = try EventLogWriter(path: dir + "/log")
        try StreamHarness.append(fixture, 0..<6000, to: writer, scratch: dir)
        let report = try Compare.run(job: StreamHarness.job(job), log: dir + "/log",
                                     options: StreamHarness.compareOptions(cut: 3000, batchSize: 1000, allowedLateness: 0))
        #expect(report.agree, "\(report.text())")
        #expect(report.lambdaLateEvents == 0 && report.kappaLateEvents == 0)
        #expect(report.unexplained == 0)
        if job != "distinctusers" { #expect(report.keysDifferent == 0) }
        #expect(report.keysCompared >= 40)
        // In order, nothing is late: kappa's run is the reference (an approximate monoid's exact one still runs).
        #expect(report.kappaLateEvents == 0 && report.referenceIsKappaRun == (job != "distinctusers"))
    }

    @Test("late data: lambda and kappa differ from the reference by exactly the late events, and compare names them")
    func lateEvents() throws {
        let dir = Harness.tempDir("late")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = StreamFixture(rows: 8000, seed: 5, keys: 50, lateFraction: 0.05, maxLateness: 60_000)
        let writer = try EventLogWriter(path: dir + "/log")
        try StreamHarness.append(fixture, 0..<8000, to: writer, scratch: dir)
        let lateness: Int64 = 20_000
        let report = try Compare.run(job: StreamHarness.job("eventcounts"), log: dir + "/log",
                                     options: StreamHarness.compareOptions(cut: 4000, batchSize: 2000, allowedLateness: lateness))
        // The expected differences, computed from the rows alone.
        func expected(_ late: [Int]) -> [String: Int] {
            var out: [String: Int] = [:]
            for i in late {
                let r = fixture.rows[i]
                out["\(r.key) \(r.ts / 60_000 * 60_000)", default: 0] += 1
            }
            return out
        }
        let lambdaLate = fixture.lateOffsets(from: 4000, allowedLateness: lateness)
        let kappaLate = fixture.lateOffsets(from: 0, allowedLateness: lateness)
        #expect(lambdaLate.count > 20 && kappaLate.count > lambdaLate.count)
        #expect(report.lambdaLateEvents == lambdaLate.count)
        #expect(report.kappaLateEvents == kappaLate.count)
        #expect(!report.referenceIsKappaRun)
        var lambdaGot: [String: Int] = [:], kappaGot: [String: Int] = [:]
        for d in report.differences {
            let id = "\(d.key) \(d.windowStart!)"
            if let c = d.lambdaCause {
                #expect(c.kind == .late)
                lambdaGot[id] = c.events
            }
            if let c = d.kappaCause {
                #expect(c.kind == .late)
                kappaGot[id] = c.events
            }
        }
        #expect(lambdaGot == expected(lambdaLate))
        #expect(kappaGot == expected(kappaLate))
        #expect(!report.agree && report.unexplained == 0)
        #expect(report.lambdaCauses["late"] == CauseSummary(keys: lambdaGot.count, events: lambdaLate.count))
        #expect(report.text().contains("every difference is explained (late event dropped by the watermark)"))
    }

    /// A log of `rows` events, 3 % of them late, in `dir`, and the speed layer (eventcounts,
    /// batches of 700, 10 s lateness) run over all of it in one go into store `once`.
    struct SpeedFixture {
        let job = StreamHarness.job("eventcounts")
        let log: String
        let once: LambdaStore

        init(_ dir: String, rows: Int, seed: UInt64) throws {
            log = dir + "/log"
            let writer = try EventLogWriter(path: log)
            try StreamHarness.append(StreamFixture(rows: rows, seed: seed, lateFraction: 0.03, maxLateness: 30_000),
                                     0..<rows, to: writer, scratch: dir)
            once = LambdaStore(folder: dir + "/once")
            try run(once)
        }

        /// Runs the speed layer into `store`.
        func run(_ store: LambdaStore, _ options: SpeedOptions = SpeedOptions()) throws {
            _ = try SpeedLayer(job: job, log: log, store: store, batchSize: 700, allowedLateness: 10_000).run(options)
        }
    }

    @Test("the speed layer stopped and restarted at random offsets ends in the same state")
    func restartsInProcess() throws {
        let dir = Harness.tempDir("restart")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try SpeedFixture(dir, rows: 5000, seed: 8)
        let (job, once, pieces) = (f.job, f.once, LambdaStore(folder: dir + "/pieces"))
        var rng = TestRandom(4)
        var at: Int64 = 0
        while at < 5000 {
            at = min(5000, at + Int64(1 + rng.int(900)))
            var options = SpeedOptions()
            options.until = at
            options.checkpointEvery = 1 + rng.int(400)
            try f.run(pieces, options)
        }
        let a = try Serving.query(job: job, log: dir + "/log", store: once)
        let b = try Serving.query(job: job, log: dir + "/log", store: pieces)
        #expect(a.rows == b.rows)
        #expect(a.lateEvents == b.lateEvents && a.lateEvents > 0)
        #expect(try String(contentsOfFile: once.speedSideOutput, encoding: .utf8) == String(contentsOfFile: pieces.speedSideOutput, encoding: .utf8))
    }

    @Test("a cancelled speed layer stops between reads without a checkpoint; the next run carries on to the same state")
    func cancelledSpeedLayer() throws {
        let dir = Harness.tempDir("cancel")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = try SpeedFixture(dir, rows: 3000, seed: 9)
        let (job, once, cancelled) = (f.job, f.once, LambdaStore(folder: dir + "/cancelled"))
        var options = SpeedOptions()
        options.until = 1000
        try f.run(cancelled, options)
        let asked = Flag()
        options.until = nil
        options.isCancelled = { asked.value }
        asked.value = true
        #expect(throws: CancellationError.self) { try f.run(cancelled, options) }
        #expect(try SpeedState.load(cancelled, program: job.program(log: EventLog(path: f.log)))?.next == 1000)
        asked.value = false
        try f.run(cancelled, options)
        #expect(try Serving.query(job: job, log: f.log, store: once).rows == Serving.query(job: job, log: f.log, store: cancelled).rows)
    }

    @Test("speed layer killed with -9 at random points during --follow, restarted: the served view equals the reference")
    func killedSpeedLayer() throws {
        let dir = Harness.tempDir("kill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/log"
        let job = StreamHarness.job("eventcounts")
        let fixture = StreamFixture(rows: 9000, seed: 13, lateFraction: 0.02, maxLateness: 5000)
        let writer = try EventLogWriter(path: log)
        try StreamHarness.append(fixture, 0..<1500, to: writer, scratch: dir)
        let store = LambdaStore(log: log, job: job.name)
        _ = try store.configure(job: job.name, batchSize: 1000, allowedLateness: 60_000)
        try BatchLayer.run(job: job, log: log, store: store, options: Harness.options(workers: 2, partitions: 2))
        var speed = try StreamHarness.startSpeed(job.name, log: log, checkpointEvery: 40)
        var rng = TestRandom(99)
        var kills = 0
        var start = 1500
        while start < 9000 {
            let end = min(9000, start + 100 + rng.int(1200))
            try StreamHarness.append(fixture, start..<end, to: writer, scratch: dir)
            start = end
            // Kill at a random moment: while it starts, catches up, checkpoints or waits.
            usleep(UInt32(rng.int(120_000)))
            if rng.int(3) > 0 {
                StreamHarness.kill9(speed)
                kills += 1
                speed = try StreamHarness.startSpeed(job.name, log: log, checkpointEvery: 40)
            }
        }
        try StreamHarness.waitForSpeed(job, log: log, store: store, end: 9000)
        StreamHarness.kill9(speed)
        #expect(kills >= 5)
        let report = try Compare.run(job: job, log: log, options: StreamHarness.compareOptions(served: store))
        #expect(report.agree, "\(report.text())")
        #expect(report.keysDifferent == 0 && report.end == 9000 && report.cut == 1000)
        #expect(report.duplicateBatches.isEmpty && report.missingRanges.isEmpty)
    }

    @Test("a batch view landing while the speed layer runs keeps the merged answer exact")
    func batchViewLandsDuringSpeed() throws {
        let dir = Harness.tempDir("land")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/log"
        let job = StreamHarness.job("eventcounts")
        let fixture = StreamFixture(rows: 6000, seed: 17, lateFraction: 0.02, maxLateness: 5000)
        let writer = try EventLogWriter(path: log)
        try StreamHarness.append(fixture, 0..<1000, to: writer, scratch: dir)
        let store = LambdaStore(log: log, job: job.name)
        _ = try store.configure(job: job.name, batchSize: 500, allowedLateness: 60_000)
        try BatchLayer.run(job: job, log: log, store: store, options: Harness.options(workers: 2, partitions: 2))
        let speed = try StreamHarness.startSpeed(job.name, log: log)
        defer { StreamHarness.kill9(speed) }
        for start in stride(from: 1000, to: 6000, by: 500) {
            try StreamHarness.append(fixture, start..<(start + 500), to: writer, scratch: dir)
            if start == 3500 {
                let view = try BatchLayer.run(job: job, log: log, store: store, options: Harness.options(workers: 2, partitions: 2))
                #expect(view.cut == 4000)
                let merged = try Serving.query(job: job, log: log, store: store)
                #expect(merged.batchView?.cut == 4000)
            }
            usleep(30_000)
        }
        try StreamHarness.waitForSpeed(job, log: log, store: store, end: 6000, start: 4000)
        let report = try Compare.run(job: job, log: log, options: StreamHarness.compareOptions(served: store))
        #expect(report.agree, "\(report.text())")
        #expect(report.cut == 4000 && report.speedRange == [4000, 6000])
        #expect(!FileManager.default.fileExists(atPath: store.folder + "/speed/batch-00000000000000000002.state"),
                "speed state below the new cut is dropped")
    }

    @Test("a missing batch range makes the query fail loudly, and compare names it")
    func missingBatchRange() throws {
        let dir = Harness.tempDir("missing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/log"
        let job = StreamHarness.job("eventcounts")
        let fixture = StreamFixture(rows: 4000, seed: 2)
        let writer = try EventLogWriter(path: log)
        try StreamHarness.append(fixture, 0..<4000, to: writer, scratch: dir)
        let store = LambdaStore(log: log, job: job.name)
        let engine = Harness.options(workers: 2, partitions: 2)
        try BatchLayer.run(job: job, log: log, store: store, cut: 1000, batchSize: 1000, options: engine)
        let second = try BatchLayer.run(job: job, log: log, store: store, cut: 2000, options: engine)
        try SpeedLayer(job: job, log: log, store: store).run()
        #expect(try Serving.query(job: job, log: log, store: store).coverageEnd == 4000)
        try FileManager.default.removeItem(atPath: second.path) // the speed layer has dropped [1000, 2000)
        do {
            _ = try Serving.query(job: job, log: log, store: store)
            Issue.record("the query should fail")
        } catch let error as LambdaError {
            #expect(error.description.contains("missing batch range [1000, 2000)"))
        }
        let report = try Compare.run(job: job, log: log, options: StreamHarness.compareOptions(served: store))
        #expect(!report.agree && report.missingRanges == [[1000, 2000]])
        #expect(report.lambdaCauses.keys.sorted() == ["missing-range"])
        #expect(report.lambdaCauses["missing-range"]!.events == 1000)
    }

    @Test("a comparison part in one byte-key table: agreement, and each side's entries of the pairs that differ")
    func partAgreement() throws {
        func line(_ key: String, _ start: Int64, _ count: Int) -> [UInt8] {
            var record = ByteWriter()
            record.writeLengthPrefixed(Array(key.utf8))
            record.writeFixed(start)
            count.encode(to: &record)
            var text = ByteWriter()
            Hex.encode(record.bytes, into: &text)
            return text.bytes + [0x0A]
        }
        let reference = line("a", 0, 2) + line("b", 60_000, 1) + line("c", 0, 3)
        // Lambda: c's window straddles the cut, so its count is split between the batch view and the speed layer.
        let batch = line("b", 60_000, 1) + line("a", 0, 2) + line("c", 0, 2)
        let speed = ByteKeyTable<Int>()
        let keys = WindowKeyBuffer()
        Array("c".utf8).withUnsafeBytes { raw in
            let composite = keys.compose(ByteView(raw), 0).raw
            speed.table.upsert(composite, hash: StableHasher.hash(bytes: composite), create: { 1 }, update: { $0 += 1 })
        }
        typealias Table = TypedTable<Pair<Bytes, Int64>, Int>
        /// The pairs compared and, per differing pair, its (lambda, kappa, reference) entries.
        func check(batch: [UInt8]?, speed: ByteKeyTable<Int>?, kappa: [UInt8]?) throws -> (Int, [String: [Int?]]) {
            let part = try comparePart(monoid: Count(), batch: batch, speed: speed, kappa: kappa, reference: reference)
            let sides = [part.lambda, part.kappa, part.reference].map { $0 as! Table }
            var differing: [String: [Int?]] = [:]
            for k in Set(sides.flatMap(\.entries.keys)) {
                differing["\(String(decoding: k.first.storage, as: UTF8.self))@\(k.second)"] = sides.map { $0.entries[k] }
            }
            #expect(part.differing == differing.count)
            return (part.compared, differing)
        }
        #expect(try check(batch: batch, speed: speed, kappa: reference) == (3, [:]))
        #expect(try check(batch: batch, speed: speed, kappa: nil) == (3, [:]), "kappa's view is the reference's")
        // The lines' order does not matter; a pair only one side holds, at the identity, agrees.
        #expect(try check(batch: batch + line("d", 0, 0), speed: speed, kappa: line("c", 0, 3) + line("b", 60_000, 1) + line("a", 0, 2)) == (4, [:]))
        // Differences come back with each side's entry (nil: the side has none).
        #expect(try check(batch: batch, speed: nil, kappa: reference) == (3, ["c@0": [2, 3, 3]]))
        #expect(try check(batch: batch, speed: nil, kappa: nil) == (3, ["c@0": [2, 3, 3]]))
        #expect(try check(batch: batch, speed: speed, kappa: line("a", 0, 2) + line("b", 60_000, 1)) == (3, ["c@0": [3, nil, 3]]))
        #expect(try check(batch: batch, speed: speed, kappa: reference + line("e", 120_000, 1)) == (4, ["e@120000": [nil, 1, nil]]))
        #expect(try check(batch: batch + line("b", 0, 1), speed: speed, kappa: reference) == (4, ["b@0": [1, nil, nil]]))
        #expect(throws: CorruptDataError.self) { try check(batch: Array("zz\n".utf8), speed: speed, kappa: reference) }
    }

    @Test("hex digits decode in either case; anything else is refused")
    func hexDecoding() {
        var out: [UInt8] = [9, 9, 9]
        #expect(Hex.decode(Array("000aFf7e".utf8)[...], into: &out) && out == [0, 0x0a, 0xff, 0x7e])
        #expect(Hex.decode([][...], into: &out) && out.isEmpty)
        for bad in ["0", "0g", "g0", "0:", "/0", "@0", "`0", "G0", " 0"] {
            #expect(!Hex.decode(Array(bad.utf8)[...], into: &out), "\(bad)")
        }
        var w = ByteWriter()
        let all = (0...255).map(UInt8.init)
        Hex.encode(all, into: &w)
        #expect(Hex.decode(w.bytes[...], into: &out) && out == all)
    }

    @Test("a byte-key table decodes from the typed encoding it writes")
    func byteKeyTableCoding() throws {
        let table = ByteKeyTable<Int>()
        let keys = WindowKeyBuffer()
        for (key, start, count) in [("", 0, 1), ("k1", -60_000, 2), ("a much longer key than twelve bytes", 120_000, 3)] as [(String, Int64, Int)] {
            Array(key.utf8).withUnsafeBytes { raw in
                let composite = keys.compose(ByteView(raw), start).raw
                table.table.upsert(composite, hash: StableHasher.hash(bytes: composite), create: { count }, update: { $0 += count })
            }
        }
        var w = ByteWriter()
        #expect(table.encodeDirectly(to: &w))
        let decoded = try w.bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            return try ByteKeyTable<Int>.decode(from: &r, combine: { $0 += $1 })
        }
        let a = table.typedForm() as! TypedTable<Pair<Bytes, Int64>, Int>
        let b = decoded.typedForm() as! TypedTable<Pair<Bytes, Int64>, Int>
        #expect(a.entries == b.entries && a.entries.count == 3)
        #expect(throws: CorruptDataError.self) {
            try Array(w.bytes.dropLast(3)).withUnsafeBytes { raw in
                var r = ByteReader(raw)
                _ = try ByteKeyTable<Int>.decode(from: &r, combine: { $0 += $1 })
            }
        }
    }

    @Test("kappa's view merges sorted parts: runs across buffer refills, long lines, empty parts, a last line without newline")
    func sortedPartMerge() throws {
        let dir = Harness.tempDir("merge")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var random = SystemRandomNumberGenerator()
        // Keys spread over four parts, each key in one part, some lines longer than the 1 MiB buffer.
        let keys = (0..<60_000).map { i in (i, "k\(String(i * 7919 % 100_000, radix: 16))") }
            .sorted { Array($0.1.utf8).lexicographicallyPrecedes(Array($1.1.utf8)) }
        var expected: [String] = []
        var parts = [[String]](repeating: [], count: 4)
        for (i, key) in keys {
            let part = Int.random(in: 0..<3, using: &random) // part 3 stays empty
            for w in 0..<(i % 5_000 == 0 ? 1 : Int.random(in: 1...3, using: &random)) {
                let value = i % 20_000 == 1 ? String(repeating: "x", count: 1_500_000) : "\(i)"
                parts[part].append("\(key)\t2024-01-01T00:0\(w):00Z\t\(value)")
                expected.append(parts[part].last!)
            }
        }
        for p in 0..<4 {
            let text = parts[p].joined(separator: "\n") + (p == 1 || parts[p].isEmpty ? "" : "\n")
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/part-0000\(p)"))
        }
        let rows = try Kappa.mergeSortedParts(dir, header: ["key", "window", "value"], into: dir + "/view.tsv")
        let lines = try String(contentsOfFile: dir + "/view.tsv", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(rows == expected.count)
        #expect(lines.first == "key\twindow\tvalue" && lines.last == "")
        // Keys in byte order; each key's lines in its part's order.
        #expect(lines.dropFirst().dropLast().map(String.init) == expected)
    }
}
