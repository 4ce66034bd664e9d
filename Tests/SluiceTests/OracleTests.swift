import Foundation
@testable import Sluice
import SluiceGenerators
import SluiceJobs
import Testing

/// Every operator and example job, run on worker processes, equals the reference executor —
/// with 1, 2 and 4 workers, 1 to 64 partitions, and a tiny memory budget that forces spills
/// on both the map and the reduce side.
@Suite("Engine against the reference executor", .serialized)
struct OracleTests {
    static let configurations: [(workers: Int, partitions: Int, memory: Int)] = [
        (1, 1, 64 << 20), (2, 7, 64 << 20), (4, 64, 64 << 20), (2, 3, 1 << 16),
    ]

    @Test("operator jobs", arguments: ["test-narrow", "test-aggregate", "test-join", "test-bytejoin", "test-actions"])
    func operators(job: String) throws {
        for c in Self.configurations {
            try Harness.checkAgainstReference(job, parameters: ["n": "4000", "keys": "500", "seed": "\(c.partitions)"],
                                              options: Harness.options(workers: c.workers, partitions: c.partitions, memory: c.memory))
        }
    }

    @Test("skewed keys with a tiny memory budget", arguments: ["test-aggregate", "test-join"])
    func skewed(job: String) throws {
        let result = try Harness.checkAgainstReference(job, parameters: ["n": "30000", "keys": "2000", "skew": "0.4"],
                                                       options: Harness.options(workers: 2, partitions: 4, memory: 1 << 16))
        #expect(result.stages.contains { $0.spills > 0 }, "the tiny budget should force spills")
    }

    @Test("text jobs on awkward text", arguments: ["wordcount", "topwords", "invertedindex", "test-sort"])
    func textJobs(job: String) throws {
        let dir = Harness.tempDir("text")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let longest = try writeAwkwardTexts(into: dir, seed: 42)
        #expect(longest > LineReader.defaultCapacity, "a line longer than the line reader's buffer makes it grow")
        for c in Self.configurations {
            try Harness.checkAgainstReference(job, inputs: [dir],
                                              options: Harness.options(workers: c.workers, partitions: c.partitions,
                                                                       memory: c.memory, splitSize: 64 << 10))
        }
    }

    @Test("wordcount spills on both sides and splits big files")
    func wordcountSpills() throws {
        let dir = Harness.tempDir("spill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 3 << 20, seed: 9, vocabulary: 50_000).write(to: dir + "/big.txt")
        let result = try Harness.checkAgainstReference("wordcount", inputs: [dir + "/big.txt"],
                                                       options: Harness.options(workers: 2, partitions: 3, memory: 1 << 16,
                                                                                splitSize: 1 << 20))
        #expect(result.stages[0].tasks == 3, "3 MiB at 1 MiB splits")
        #expect(result.stages[0].spills > 0 && result.stages[1].spills > 0, "spills on the map and the reduce side")
        #expect(Set(result.stages[1].tasksPerWorker.keys).count == 2, "work spread over both workers")
    }

    @Test("empty inputs give empty, committed outputs")
    func emptyInput() throws {
        let dir = Harness.tempDir("empty")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data().write(to: URL(fileURLWithPath: dir + "/empty.txt"))
        for job in ["wordcount", "topwords", "invertedindex", "test-sort"] {
            try Harness.checkAgainstReference(job, inputs: [dir], options: Harness.options(workers: 2, partitions: 2))
        }
    }

    @Test("eventsum and the flight jobs")
    func tableJobs() throws {
        let dir = Harness.tempDir("events")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try EventGenerator(rows: 30_000, seed: 5, keys: 700, hotKeys: 2, hotShare: 0.3).write(to: dir + "/events.csv")
        let summed = try Harness.checkAgainstReference("eventsum", inputs: [dir + "/events.csv"],
                                                       options: Harness.options(workers: 2, partitions: 5, memory: 1 << 16, splitSize: 100 << 10))
        // The byte-key path samples its keys too: the two hot keys, 15 % of the rows each.
        #expect(summed.stages.contains { $0.hotKeys.count == 2 && $0.hotKeys.allSatisfy { abs($0.share - 0.15) < 0.03 } },
                "\(summed.stages.map(\.hotKeys))")
        // keyusers groups (no map-side combine): its hot keys are aggregated in two steps.
        var skewed = Harness.options(workers: 2, partitions: 8, memory: 1 << 16, splitSize: 100 << 10)
        skewed.skew.minBytes = 16 << 10
        try EventGenerator(rows: 30_000, seed: 6, keys: 700, hotKeys: 1, hotShare: 0.5).write(to: dir + "/hot.csv")
        let grouped = try Harness.checkAgainstReference("keyusers", inputs: [dir + "/hot.csv"], options: skewed)
        #expect(grouped.stages.contains { $0.skewNotes.contains { $0.contains("two steps") } })
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let flights = root + "/datasets/nycflights13/"
        try Harness.checkAgainstReference("carrierdelays", inputs: [flights + "flights.csv.gz"],
                                          parameters: ["airlines": flights + "airlines.csv"],
                                          options: Harness.options(workers: 2, partitions: 3))
        try Harness.checkAgainstReference("planedelays", inputs: [flights + "flights.csv.gz"],
                                          parameters: ["planes": flights + "planes.csv"],
                                          options: Harness.options(workers: 2, partitions: 4))
    }
}
