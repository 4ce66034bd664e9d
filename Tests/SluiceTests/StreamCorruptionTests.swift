#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Sluice
@testable import SluiceStream
import Testing

/// A torn tail (an append cut off by a crash) is the log's end; corruption — a bad checksum,
/// a cut-off record with data after it, a missing segment, a log shorter than the state built
/// on it — is an error naming the file and byte, everywhere the log is read.
@Suite("Event log corruption", .serialized)
struct StreamCorruptionTests {
    static let rows = 3000

    /// A log of `rows` fixture events in segments of 32 KiB, its appender closed.
    func makeLog(_ dir: String) throws -> String {
        let log = dir + "/log"
        let fixture = StreamFixture(rows: Self.rows, seed: 44)
        try StreamHarness.append(fixture, 0..<Self.rows, to: EventLogWriter(path: log, segmentBytes: 32 << 10), scratch: dir)
        return log
    }

    func segments(_ log: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: log).filter { $0.hasSuffix(".log") }.sorted().map { "\(log)/\($0)" }
    }

    /// The byte position and offset of every record of a segment (its name gives the first offset).
    func records(_ segment: String) throws -> [(byte: Int, offset: Int64)] {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        var base = Int64(URL(fileURLWithPath: segment).deletingPathExtension().lastPathComponent)!
        var out: [(Int, Int64)] = []
        var at = 0
        while at + 8 <= bytes.count {
            out.append((at, base))
            at += 8 + Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
            base += 1
        }
        return out
    }

    func patch(_ path: String, _ change: (inout [UInt8]) -> Void) throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        change(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Runs the built `sluice`: its exit status and what it wrote to standard output and error.
    func sluice(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The description of the error `body` throws ("" when it throws none).
    func failure(_ body: () throws -> Void) -> String {
        do {
            try body()
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test("a byte flipped mid last segment: speed layer, query, kappa, info --verify and log verify fail naming segment and byte")
    func flippedByte() throws {
        let dir = Harness.tempDir("flip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        let job = StreamHarness.job("eventcounts")
        let store = LambdaStore(log: log, job: job.name)
        let last = try segments(log).last!
        let all = try records(last)
        let victim = all[all.count / 2]
        #expect(try EventLog(path: log).info().verified == false, "a quick info says it did not read every record")
        // The speed layer has read part of the log before the corruption; the query serves that part.
        var options = SpeedOptions()
        options.until = victim.offset - 50
        try SpeedLayer(job: job, log: log, store: store, batchSize: 500).run(options)
        try patch(last) { $0[victim.byte + 30] ^= 0x5A } // a payload byte of the record
        let place = "\(last) at byte \(victim.byte): the record for offset \(victim.offset) fails its checksum"

        #expect(failure { try SpeedLayer(job: job, log: log, store: store).run() }.contains(place))
        #expect(failure { _ = try Serving.query(job: job, log: log, store: store) }.contains(place))
        // Kappa runs on the engine: its tasks report bad input in the engine's words.
        let kappaPlace = "\(last) at byte \(victim.byte): corrupt event log: the record for offset \(victim.offset) fails its checksum"
        #expect(failure { _ = try Kappa.run(job: job, log: log, output: dir + "/kappa", options: Harness.options(workers: 2)) }.contains(kappaPlace))
        #expect(failure { _ = try EventLog(path: log).info(verify: true) }.contains(place))
        for command in [["log", "verify", log], ["lambda", "speed", job.name, "--log", log, "-q"], ["lambda", "query", job.name, "--log", log]] {
            let run = try sluice(command)
            #expect(run.status == 1 && run.output.contains(place), "\(command.joined(separator: " ")): \(run.status) \(run.output)")
        }
    }

    @Test("the last record cut off mid-way is a torn tail: read up to it, reported by verify, truncated by the appender")
    func tornTail() throws {
        let dir = Harness.tempDir("torn2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        let job = StreamHarness.job("eventcounts")
        let last = try segments(log).last!
        let lastRecord = try records(last).last!
        let size = try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int
        truncate(last, off_t(lastRecord.byte + (size - lastRecord.byte) / 2))
        let end = Int64(Self.rows - 1)
        #expect(try EventLog(path: log).endOffset() == end)
        let info = try EventLog(path: log).info(verify: true)
        #expect(info.nextOffset == end && info.verified)
        #expect(info.tornTail?.segment == last && info.tornTail?.byte == Int64(lastRecord.byte))
        #expect(info.tornTail?.bytes == Int64((size - lastRecord.byte) / 2))
        let store = LambdaStore(log: log, job: job.name)
        #expect(try SpeedLayer(job: job, log: log, store: store).run().to == end)
        #expect(try Serving.query(job: job, log: log, store: store).coverageEnd == end)
        #expect(try Kappa.run(job: job, log: log, output: dir + "/kappa", options: Harness.options(workers: 2)).end == end)
        let verify = try sluice(["log", "verify", log])
        #expect(verify.status == 0 && verify.output.contains("torn tail") && verify.output.contains("at byte \(lastRecord.byte) of \(last)"), "\(verify.output)")
        // Zeros never written after the last record are a torn tail too; other bytes are corruption.
        truncate(last, off_t(lastRecord.byte))
        try patch(last) { $0 += [UInt8](repeating: 0, count: 100) }
        #expect(try EventLog(path: log).endOffset() == end)
        try patch(last) { $0[$0.count - 1] = 7 }
        #expect(failure { _ = try EventLog(path: log).endOffset() }.contains("\(last) at byte \(lastRecord.byte): the record for offset \(end) has an impossible length 0"))
        try patch(last) { $0[$0.count - 1] = 0 }
        let writer = try EventLogWriter(path: log)
        #expect(writer.nextOffset == end)
        #expect(try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int == lastRecord.byte)
    }

    @Test("a cut-off record followed by whole records is corruption, not a torn tail")
    func cutOffWithDataAfter() throws {
        let dir = Harness.tempDir("cutoff")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        let last = try segments(log).last!
        let all = try records(last)
        let victim = all[all.count - 2] // after the last index entry, where the appender looks
        try patch(last) { $0[victim.byte + 2] ^= 0x01 } // the length now reaches 64 KiB past the record, beyond the file
        let message = "\(last) at byte \(victim.byte): the record for offset \(victim.offset) is cut off, yet a whole record (offset \(victim.offset + 1)) follows"
        #expect(failure { try EventLog(path: log).read(from: 0) { _ in } }.contains(message))
        #expect(failure { _ = try EventLogWriter(path: log) }.contains(message), "the appender does not cut records off")
        #expect(try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int > all.last!.byte)
    }

    @Test("a missing middle segment is an error for info, verify, the speed layer and kappa")
    func missingSegment() throws {
        let dir = Harness.tempDir("gap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        let job = StreamHarness.job("eventcounts")
        let files = try segments(log)
        #expect(files.count >= 4)
        let before = files[1], gone = files[2]
        let end = try records(before).last.map { $0.offset + 1 }!
        let size = try FileManager.default.attributesOfItem(atPath: before)[.size] as! Int
        try FileManager.default.removeItem(atPath: gone)
        try FileManager.default.removeItem(atPath: String(gone.dropLast(4)) + ".index")
        let message = "\(before) at byte \(size): the segment ends at offset \(end), but the next segment"
        #expect(failure { _ = try EventLog(path: log).info() }.contains(message))
        #expect(failure { _ = try EventLog(path: log).info(verify: true) }.contains(message))
        #expect(failure { try SpeedLayer(job: job, log: log, store: LambdaStore(log: log, job: job.name)).run() }.contains(message))
        let kappaMessage = "\(before) at byte \(size): corrupt event log: the segment ends at offset \(end), but the next segment"
        #expect(failure { _ = try Kappa.run(job: job, log: log, output: dir + "/kappa", options: Harness.options(workers: 2)) }.contains(kappaMessage))
        let verify = try sluice(["log", "verify", "--log", log])
        #expect(verify.status == 1 && verify.output.contains(message), "\(verify.output)")
        // The first segment missing too: named as such.
        try FileManager.default.removeItem(atPath: files[0])
        #expect(failure { _ = try EventLog(path: log).info() }.contains("the segments holding offsets [0, "))
    }

    @Test("a speed checkpoint past the end of a truncated log is refused, by the speed layer and the query")
    func checkpointPastEnd() throws {
        let dir = Harness.tempDir("pastend")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        let job = StreamHarness.job("eventcounts")
        let store = LambdaStore(log: log, job: job.name)
        try SpeedLayer(job: job, log: log, store: store).run()
        let last = try segments(log).last!
        let all = try records(last)
        let cut = all[all.count / 2]
        truncate(last, off_t(cut.byte)) // at a record boundary: a clean, shorter log
        let message = "has read up to offset \(Self.rows), but the event log \(log) ends at offset \(cut.offset)"
        #expect(failure { _ = try SpeedLayer(job: job, log: log, store: store) }.contains(message))
        #expect(failure { _ = try Serving.query(job: job, log: log, store: store) }.contains(message))
        let run = try sluice(["lambda", "speed", job.name, "--log", log, "-q"])
        #expect(run.status == 1 && run.output.contains(message), "\(run.output)")
    }

    @Test("the batch layer fails at once on a corrupt record: bad input naming segment and byte, no retry")
    func batchLayerNoRetry() throws {
        let dir = Harness.tempDir("batchcorrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        let job = StreamHarness.job("eventcounts")
        let files = try segments(log)
        let segment = files[files.count - 2]
        let all = try records(segment)
        let victim = all[all.count / 2]
        try patch(segment) { $0[victim.byte + 30] ^= 0x5A }
        var options = Harness.options(workers: 2, partitions: 2, maxAttempts: 4)
        options.eventLogPath = dir + "/events.jsonl"
        let error = failure {
            try BatchLayer.run(job: job, log: log, store: LambdaStore(log: log, job: job.name), cut: Int64(Self.rows), batchSize: 1000, options: options)
        }
        #expect(error.hasPrefix("bad input (") && error.contains("): \(segment) at byte \(victim.byte): corrupt event log: the record for offset \(victim.offset) fails its checksum"), "\(error)")
        let events = try String(contentsOfFile: dir + "/events.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let failed = events.filter { $0["event"] as? String == "task_end" && $0["status"] as? String == "failed" }
        #expect(failed.count == 1 && (failed.first?["error"] as? String ?? "").contains("fails its checksum"))
        #expect(events.filter { $0["event"] as? String == "task_start" && ($0["attempt"] as? Int ?? 0) > 0 }.isEmpty, "not retried")
        #expect(try LambdaStore(log: log, job: job.name).views().isEmpty)
    }
}

@Suite("Stream jobs in the CLI")
struct StreamJobCLITests {
    func sluice(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("stream jobs are listed by `sluice jobs` and explained by `sluice describe`, with the aggregation on a given log")
    func listedAndDescribed() throws {
        let jobs = try sluice(["jobs"])
        #expect(jobs.status == 0 && jobs.output.contains("Stream jobs") && jobs.output.contains("flightdelays"), "\(jobs.output)")
        #expect(!jobs.output.contains("test-sliding"), "hidden test jobs are listed only with --all")
        let flights = try sluice(["describe", "flightdelays"])
        #expect(flights.status == 0 && flights.output.contains("flightdelays (stream job)") && flights.output.contains("--feed flightdelays"),
                "\(flights.output)")
        let dir = Harness.tempDir("describe-stream")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "ts,user,key,value\n1000,u1,k1,5\n".write(toFile: dir + "/e.csv", atomically: true, encoding: .utf8)
        #expect(try sluice(["log", "append", "--log", dir + "/log", dir + "/e.csv"]).status == 0)
        let counts = try sluice(["describe", "eventcounts", "--log", dir + "/log"])
        #expect(counts.status == 0 && counts.output.contains("count+sum per key, tumbling 1m windows"), "\(counts.output)")
        #expect(try sluice(["describe", "no-such-job"]).status == 64)
    }
}
