import Foundation
@testable import Sluice
import SluiceJobs
import Testing

/// Hot keys: detected from map statistics, skewed join partitions split, results exact with
/// skew handling on and off.
@Suite("Skew and hot keys", .serialized)
struct SkewTests {
    func options(workers: Int, skew: Bool, inject: String? = nil) throws -> RunOptions {
        var o = Harness.options(workers: workers, partitions: 16)
        o.skew.enabled = skew
        o.skew.minBytes = 16 << 10
        o.broadcastThreshold = 0
        o.inject = try inject.map { try FaultInjection($0) }
        return o
    }

    /// Generator parameters of the conformance jobs: key 0 holds 40 % of the rows.
    let hot = ["n": "40000", "keys": "3000", "skew": "0.4"]

    /// Runs `job` on the hot data with skew handling on, then off, both checked against the
    /// reference executor.
    func onAndOff(_ job: String, workers: Int) throws -> (on: JobResult, off: JobResult) {
        (try Harness.checkAgainstReference(job, parameters: hot, options: try options(workers: workers, skew: true)),
         try Harness.checkAgainstReference(job, parameters: hot, options: try options(workers: workers, skew: false)))
    }

    @Test("a key with 40 % of the rows: joins exact with skew handling on and off, and split when on",
          arguments: [1, 2, 4])
    func skewedJoin(workers: Int) throws {
        let (on, off) = try onAndOff("test-join", workers: workers)
        let splitStages = on.stages.filter { !$0.skewNotes.isEmpty }
        #expect(splitStages.count == 2, "inner and left outer join split; cogroup never: \(on.stages.map(\.skewNotes))")
        #expect(off.stages.allSatisfy { $0.skewNotes.isEmpty })
        #expect(on.stages.contains { $0.hotKeys.contains { $0.key == "0" && $0.share > 0.3 } }, "key 0 named hot")
        // The longest task of the split join reads far fewer records than without splitting.
        let joinOn = on.stages.first { $0.operators.hasPrefix("join") }!
        let joinOff = off.stages.first { $0.operators.hasPrefix("join") }!
        #expect(joinOn.maxTaskRecords * 4 < joinOff.maxTaskRecords * 3, "\(joinOn.maxTaskRecords) vs \(joinOff.maxTaskRecords)")
    }

    @Test("byte joins with a key holding 40 % of the rows: exact with skew handling on and off, split when on, and with the hot key's right values spilled")
    func skewedByteJoin() throws {
        let (on, off) = try onAndOff("test-bytejoin", workers: 2)
        #expect(on.stages.filter { !$0.skewNotes.isEmpty }.count == 3,
                "both inner joins and the left outer join split: \(on.stages.map(\.skewNotes))")
        #expect(off.stages.allSatisfy { $0.skewNotes.isEmpty })
        // A 64 KiB budget: the hot key's right values (16 000 of them) go to the group's file.
        var tight = try options(workers: 2, skew: false)
        tight.memoryPerTask = 1 << 16
        _ = try Harness.checkAgainstReference("test-bytejoin", parameters: hot, options: tight)
    }

    /// A CSV file (key `k0` on 40 % of the rows; quoted fields with commas and doubled quotes)
    /// and a TSV file keyed in its middle column (keys missing, doubled, empty values).
    static func viewJoinInputs(_ dir: String, rows: Int = 30_000) throws -> [String] {
        var csv = "id,v,text\n", tsv = "v\tid\tname\n"
        var rng = SplitMix64(seed: 11)
        for i in 0..<rows {
            let key = rng.next() % 10 < 4 ? 0 : rng.next() % 2_000
            let text = i % 7 == 0 ? "\"a, \"\"q\"\" \(i)\"" : "t\(i)"
            csv += "k\(key),\(i),\(text)\n"
        }
        for key in 0..<2_000 where key % 5 != 3 {
            tsv += "\(key)\tk\(key)\tname-\(key)\n"
            if key % 4 == 0 { tsv += "x\tk\(key)\t\n" }
        }
        tsv += "9\tk-none\tnobody\n"
        try Data(csv.utf8).write(to: URL(fileURLWithPath: dir + "/left.csv"))
        try Data(tsv.utf8).write(to: URL(fileURLWithPath: dir + "/right.tsv"))
        return [dir + "/left.csv", dir + "/right.tsv"]
    }

    @Test("joins of borrowed byte pairs: exact shuffled (skew on and off, split when on), spilling (a hot right key's values too) with a worker killed, and broadcast either side")
    func viewJoins() throws {
        let dir = Harness.tempDir("viewjoin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inputs = try Self.viewJoinInputs(dir)
        // Map tasks of 32 KiB: a skewed partition is split by groups of map outputs.
        func options(skew: Bool, inject: String? = nil) throws -> RunOptions {
            var o = try self.options(workers: 2, skew: skew, inject: inject)
            o.splitSize = 32 << 10
            return o
        }
        let on = try Harness.checkAgainstReference("test-viewjoin", inputs: inputs, options: try options(skew: true))
        #expect(on.stages.filter { !$0.skewNotes.isEmpty }.count >= 2, "the joins on k0 split: \(on.stages.map(\.skewNotes))")
        #expect(on.stages.contains { $0.hotKeys.contains { $0.key == "k0" && $0.share > 0.3 } }, "k0 named hot")
        let off = try Harness.checkAgainstReference("test-viewjoin", inputs: inputs, options: try options(skew: false))
        #expect(off.stages.allSatisfy { $0.skewNotes.isEmpty })
        var tight = try options(skew: false, inject: "crash@2.1.0:after=100,crash@5.2.0:after=50")
        tight.memoryPerTask = 1 << 16
        let spilled = try Harness.checkAgainstReference("test-viewjoin", inputs: inputs, options: tight)
        #expect(spilled.stages.contains { $0.spills > 0 })
        #expect(spilled.stages.filter { $0.kind == "result" && $0.retries == 1 }.map(\.operators) == ["join", "leftOuterJoin"],
                "workers killed in the inner and the outer join's reduce tasks: \(spilled.stages.map { ($0.id, $0.operators, $0.retries) })")
        var small = try options(skew: false)
        small.broadcastThreshold = 10 << 20
        let broadcast = try Harness.checkAgainstReference("test-viewjoin", inputs: inputs, options: small)
        #expect(broadcast.stages.allSatisfy { $0.kind != "map" }, "every join broadcast: \(broadcast.stages.map(\.kind))")
    }

    @Test("a hot key larger than the memory budget: the split join still spills and stays exact")
    func hotKeyBeyondBudget() throws {
        var o = try options(workers: 2, skew: true)
        o.memoryPerTask = 1 << 16
        let result = try Harness.checkAgainstReference("test-join", parameters: hot, options: o)
        #expect(result.stages.contains { !$0.skewNotes.isEmpty })
        #expect(result.stages.contains { $0.spills > 0 })
    }

    @Test("no skew: nothing is split and the plan is unchanged")
    func noSkew() throws {
        let result = try Harness.checkAgainstReference("test-join", parameters: ["n": "20000", "keys": "3000"],
                                                       options: try options(workers: 2, skew: true))
        #expect(result.stages.allSatisfy { $0.skewNotes.isEmpty })
        #expect(result.stages.filter { $0.kind == "result" }.allSatisfy { $0.tasks == 16 })
        let grouped = try Harness.checkAgainstReference("test-aggregate", parameters: ["n": "20000", "keys": "3000"],
                                                        options: try options(workers: 2, skew: true))
        #expect(grouped.stages.allSatisfy { $0.skewNotes.isEmpty })
        #expect(groupStage(grouped).tasks == 16)
    }

    /// The groupByKey stage of test-aggregate.
    func groupStage(_ result: JobResult) -> StageSummary { result.stages.first { $0.operators.hasPrefix("groupByKey") }! }

    @Test("a key with 40 % of the rows: groupByKey exact with skew handling on and off, in two steps when on",
          arguments: [1, 2, 4])
    func skewedGroups(workers: Int) throws {
        let (on, off) = try onAndOff("test-aggregate", workers: workers)
        let groupOn = groupStage(on), groupOff = groupStage(off)
        #expect(groupOn.skewNotes.contains { $0.contains("two steps") }, "\(groupOn.skewNotes)")
        #expect(groupOff.skewNotes.isEmpty)
        #expect(groupOn.hotKeys.contains { $0.key == "0" && abs($0.share - 0.4) < 0.05 }, "key 0 named hot with its share: \(groupOn.hotKeys)")
        // Map-side combined aggregations leave one record per key and map task: nothing to split.
        // The two groupings are split: the one writing output, and the one feeding a shuffle.
        #expect(on.stages.filter { !$0.skewNotes.isEmpty }.count == 2, "\(on.stages.map(\.skewNotes))")
        let feeding = on.stages.first { $0.kind == "map" && $0.operators.hasPrefix("groupByKey") }!
        #expect(feeding.skewNotes.contains { $0.contains("two steps") })
        // The longest task of the grouping reads far fewer records than without splitting.
        #expect(groupOn.maxTaskRecords * 3 < groupOff.maxTaskRecords * 2, "\(groupOn.maxTaskRecords) vs \(groupOff.maxTaskRecords)")
    }

    @Test("groupByKey and aggregations with a hot key stay exact under a tiny memory budget, split in two steps")
    func hotGroups() throws {
        var o = try options(workers: 3, skew: true)
        o.memoryPerTask = 1 << 16
        let result = try Harness.checkAgainstReference("test-aggregate", parameters: ["n": "30000", "keys": "500", "skew": "0.5"], options: o)
        #expect(groupStage(result).hotKeys.contains { $0.key == "0" })
        #expect(!groupStage(result).skewNotes.isEmpty)
        #expect(result.stages.contains { $0.spills > 0 })
    }

    /// Stages 5 and 12 are test-aggregate's groupings (12 is a map stage: it feeds a shuffle);
    /// with 2 workers each hot partition is cut into 4 partial aggregations (tasks 0–3), then
    /// comes the merge (task 4), then the 15 others. `corrupt@12.4.0` damages the merge's map
    /// output: the reducer's fetch fails and the merge runs again.
    @Test("a worker killed during a partial aggregation or its merge still gives the exact result",
          arguments: ["crash@5.0.0", "exit@5.3.0", "crash@5.4.0", "throw@5.4.0", "crash@12.1.0", "crash@12.4.0", "corrupt@12.4.0"])
    func crashDuringTwoStep(inject: String) throws {
        let result = try Harness.checkAgainstReference("test-aggregate", parameters: hot,
                                                       options: try options(workers: 2, skew: true, inject: inject))
        #expect(result.stages.filter { $0.skewNotes.contains { $0.contains("4 partial aggregations") } }.count == 2,
                "\(result.stages.map(\.skewNotes))")
        #expect(result.retries + result.mapTasksRerun > 0)
    }

    @Test("per-operator skew hints: off never splits, split:N splits into N whatever the size")
    func hints() throws {
        let off = try Harness.checkAgainstReference("test-aggregate", parameters: hot.merging(["group-skew": "off"]) { $1 },
                                                    options: try options(workers: 2, skew: true))
        #expect(groupStage(off).skewNotes.isEmpty)
        var o = try options(workers: 2, skew: true)
        o.skew.minBytes = 1 << 30
        let forced = try Harness.checkAgainstReference("test-aggregate", parameters: hot.merging(["group-skew": "split:3"]) { $1 },
                                                       options: o)
        #expect(groupStage(forced).skewNotes.contains { $0.contains("3 partial aggregations") }, "\(groupStage(forced).skewNotes)")
    }

    @Test("a worker killed during a split join stage still gives the exact result")
    func crashDuringSplit() throws {
        let result = try Harness.checkAgainstReference("test-join", parameters: hot,
                                                       options: try options(workers: 2, skew: true, inject: "crash@2.1.0"))
        #expect(result.stages.contains { !$0.skewNotes.isEmpty })
    }

    @Test("the skew planner splits only partitions far above the median, by map-output groups")
    func planner() {
        var o = SkewOptions()
        o.minBytes = 10
        let bytes: [[Int64]] = (0..<8).map { _ in [100, 100, 4000, 100] }
        let specs = SkewPlanner.plan(partitions: 4, bytes: bytes, shuffle: 3, options: o, workers: 2)
        let split = specs.filter { $0.partition == 2 }
        #expect(split.count == 4)
        #expect(split.compactMap(\.maps).map(\.count).reduce(0, +) == 8, "every map output read exactly once")
        #expect(specs.filter { $0.partition != 2 }.allSatisfy { $0.maps == nil })
    }

    @Test("the generic join job: inner and left joins of CSV files")
    func joinJob() throws {
        let dir = Harness.tempDir("joinjob")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("id,name\n1,a\n2,b\n3,c\n".utf8).write(to: URL(fileURLWithPath: dir + "/l.csv"))
        try Data("id\tscore\n1\t10\n1\t11\n3\t30\n".utf8).write(to: URL(fileURLWithPath: dir + "/r.tsv"))
        for (how, expected) in [("inner", ["1\ta\t10", "1\ta\t11", "3\tc\t30"]), ("left", ["1\ta\t10", "1\ta\t11", "2\tb\t", "3\tc\t30"])] {
            let out = dir + "/out-" + how
            _ = try Coordinator(job: Harness.job("join"),
                                arguments: JobArguments(output: out, parameters: ["left": dir + "/l.csv", "right": dir + "/r.tsv",
                                                                                  "on": "id", "how": how]),
                                options: Harness.options(workers: 2)).run()
            #expect(try Harness.readOutput(out).sorted() == expected)
        }
    }
}

@Suite("Broadcast joins")
struct BroadcastTests {
    @Test("a small side is broadcast (no shuffle); broadcast and shuffle joins equal the reference executor")
    func broadcast() throws {
        let dir = Harness.tempDir("bcast")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var big = "id,v\n"
        for i in 0..<20_000 { big += "\(i % 50 == 0 ? 7 : i % 300),\(i)\n" }
        try Data(big.utf8).write(to: URL(fileURLWithPath: dir + "/big.csv"))
        var small = "id,name\n"
        for i in stride(from: 0, to: 300, by: 2) { small += "\(i),n\(i)\n" }
        try Data(small.utf8).write(to: URL(fileURLWithPath: dir + "/small.csv"))
        // A big row with an even id has one match (the small side has ids 0, 2 … 298), except
        // every 50th row, whose id is 7; the left join keeps every big row.
        let rows = ["inner": 20_000 / 2 - 20_000 / 50, "left": 20_000]
        for (threshold, shuffles) in [(Int64(10 << 20), 0), (0, 2)] {
            for how in ["inner", "left"] {
                var o = Harness.options(workers: 2, partitions: 4, splitSize: 64 << 10)
                o.broadcastThreshold = threshold
                let result = try Harness.checkAgainstReference("join", parameters: [
                    "left": dir + "/big.csv", "right": dir + "/small.csv", "on": "id", "how": how], options: o)
                #expect(result.stages.filter { $0.kind == "map" }.count == shuffles, "\(how) at threshold \(threshold)")
                let written = result.stages.filter { $0.kind == "result" }.map(\.recordsOut).reduce(0, +)
                #expect(written == rows[how], "\(how) at threshold \(threshold)")
            }
        }
        let text = try Explain.render(Harness.job("join"), JobArguments(output: "o", parameters: [
            "left": dir + "/big.csv", "right": dir + "/small.csv", "on": "id"]), format: .text, partitions: 4, splitSize: 1 << 20, workers: 2)
        #expect(text.contains("broadcast hash join"))
    }

    @Test("a join key's right values beyond the group's limit go to a scratch file and come back whole, in order, for every left record")
    func joinGroupSpill() throws {
        let dir = Harness.tempDir("joingroup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let metrics = TaskMetrics()
        let group = JoinGroup(limit: 4096, spillPath: dir + "/group", metrics: metrics)
        var rng = TestRandom(5)
        // A hot key, a small one, then a hot one with a value larger than the read chunk (1 MiB).
        for (round, n) in [5_000, 10, 3_000].enumerated() {
            var values: [[UInt8]] = (0..<n).map { i in [UInt8](repeating: UInt8(i % 251), count: rng.int(300)) }
            if round == 2 { values.insert([UInt8](repeating: 7, count: 3 << 20), at: 1_000) }
            try Array("key\(round)".utf8).withUnsafeBytes { try group.start($0) }
            var held = 0
            for v in values {
                try v.withUnsafeBytes { try group.add($0) }
                held = max(held, group.count - group.keyCount)
            }
            #expect(held <= 4096 || round == 2, "at most the limit in memory")
            #expect(group.values.spilled == (n > 10))
            for _ in 0..<2 { // two left records of the key
                var got: [[UInt8]] = []
                try group.values.forEach { got.append(Array($0)) }
                #expect(got == values, "round \(round)")
            }
        }
        #expect(metrics.spills == 2)
    }
}
