import Foundation
@testable import Sluice
import Testing

/// The physical plan is a value of its own: planning never writes into the logical graph, so
/// one graph planned several ways gives independent plans, each of which runs correctly.
@Suite("Physical plan")
struct PlanTests {
    /// Two CSV files of `key,value` rows: the first summed by key, joined with the second (a
    /// small side, so a broadcast candidate) and sorted by key; and both counted as a union.
    static let job = Job("plan-test", summary: "reduceByKey, a join that may be broadcast, sortByKey, union") { ctx in
        let rows: (String) -> Dataset<(Int, Int)> = { path in
            ctx.csv([path], header: false) { r -> (Int, Int)? in (try r.int(0), try r.int(1)) }
        }
        let big = rows(ctx.inputs[0]), small = rows(ctx.inputs[1])
        big.reduceByKey(+).join(small).mapValues { $0.0 * 1000 + $0.1 }.sortByKey().collect()
        big.union(small).count()
    }

    /// Writes the two inputs into `dir` (with a header row when `header` is given) and returns
    /// their paths.
    static func writeInputs(_ dir: String, header: (String, String)? = nil) throws -> [String] {
        var big = header.map { "\($0.0)\n" } ?? "", small = header.map { "\($0.1)\n" } ?? ""
        for i in 0..<4000 { big += "\(i % 200),\(i)\n" }
        for k in stride(from: 0, to: 200, by: 2) { small += "\(k),\(3 * k)\n" }
        try Data(big.utf8).write(to: URL(fileURLWithPath: dir + "/big.csv"))
        try Data(small.utf8).write(to: URL(fileURLWithPath: dir + "/small.csv"))
        return [dir + "/big.csv", dir + "/small.csv"]
    }

    static func plan(_ graph: JobGraph, partitions: Int, splitSize: Int64, broadcastThreshold: Int64) throws -> PhysicalPlan {
        try PhysicalPlan(graph: graph, options: PlanOptions(partitions: partitions, broadcastThreshold: broadcastThreshold),
                         splits: PhysicalPlan.planSplits(graph, splitSize: splitSize, workers: 2))
    }

    /// Runs every stage of `plan` in this process, in stage order, as workers would (range
    /// bounds from the sample stage included), and returns each action's rendered result.
    static func runInProcess(_ plan: PhysicalPlan, workDir: String) throws -> [[String]] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: workDir + "/tmp", withIntermediateDirectories: true)
        for s in plan.graph.shuffles { try fm.createDirectory(atPath: "\(workDir)/shuffle-\(s.id)", withIntermediateDirectories: true) }
        var results: [[[UInt8]]] = []
        for stage in plan.stages {
            var blob: [UInt8] = []
            if case .shuffleMap(let dep) = stage.kind, plan.needsSample(dep) {
                blob = try dep.bounds(fromSamples: results[stage.parents.last!.id], partitions: plan.partitions(of: dep))
            }
            let taskPlan = plan.withBounds(blob, forStage: stage.id)
            results.append(try (0..<stage.taskCount).map { p in
                let task = TaskContext(stage: stage.id, partition: p, attempt: 0, workDir: workDir, memoryBudget: 1 << 20,
                                       maxExpandedBytes: 1 << 30, plan: taskPlan)
                switch stage.kind {
                case .shuffleMap(let dep):
                    let path = ShuffleDependency.outputPath(workDir: workDir, shuffle: dep.id, map: p)
                    _ = try dep.runMapTask(task, partition: p, path: path)
                    return []
                case .sample(let dep): return try dep.sample(task, partition: p)
                case .result(let action): return try action.runTask(task, partition: p, partPath: nil)
                }
            })
        }
        return try plan.graph.actions.map { action in
            let stage = plan.stages.first { if case .result(let a) = $0.kind { return a === action } else { return false } }!
            return try action.render(results[stage.id])
        }
    }

    @Test("without --partitions, a sort's reducers are sized to half the budget; joins and named counts keep theirs")
    func sortSizedToBudget() throws {
        let dir = Harness.tempDir("plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inputs = try Self.writeInputs(dir)
        let bytes = try inputs.reduce(Int64(0)) { $0 + Int64(try Data(contentsOf: URL(fileURLWithPath: $1)).count) }
        let named = Job("plan-test-named", summary: "a sort that names its partitions") { ctx in
            ctx.csv([ctx.inputs[0]], header: false) { r -> (Int, Int)? in (try r.int(0), try r.int(1)) }.sortByKey(partitions: 3).collect()
        }
        func counts(_ job: Job, share: Int64) throws -> [String: [Int]] {
            let graph = try job.graph(JobArguments(inputs: inputs))
            let plan = try PhysicalPlan(graph: graph, options: PlanOptions(partitions: 4, broadcastThreshold: 0, rangeShareBytes: share),
                                        splits: PhysicalPlan.planSplits(graph, splitSize: 1 << 20, workers: 2))
            var out: [String: [Int]] = [:]
            for dep in graph.shuffles { out[dep.isRangePartitioned ? "range" : "hash", default: []].append(plan.partitions(of: dep)) }
            return out
        }
        // The sort reads the joined rows through a shuffle (its input size is unknown): --partitions.
        #expect(try counts(Self.job, share: 1024) == ["hash": [4, 4, 4], "range": [4]])
        let sortOnly = Job("plan-test-sort", summary: "a sort straight from a file") { ctx in
            ctx.csv([ctx.inputs[0]], header: false) { r -> (Int, Int)? in (try r.int(0), try r.int(1)) }.sortByKey().collect()
        }
        let big = bytes - Int64(try Data(contentsOf: URL(fileURLWithPath: inputs[1])).count)
        #expect(try counts(sortOnly, share: 1024) == ["range": [Int((big + 1023) / 1024)]])
        #expect(try counts(sortOnly, share: 1 << 30) == ["range": [4]], "never fewer than --partitions")
        #expect(try counts(sortOnly, share: 0) == ["range": [4]], "off when --partitions is given")
        #expect(try counts(named, share: 1024) == ["range": [3]], "a count the operator names wins")
        // What `run` plans with: half of --memory-per-task, unless --partitions is given.
        var options = RunOptions()
        options.memoryPerTask = 64 << 20
        #expect(options.planOptions.rangeShareBytes == 32 << 20)
        options.partitions = 6
        #expect(options.planOptions.rangeShareBytes == 0 && options.planOptions.partitions == 6)
    }

    @Test("one graph planned twice gives two independent plans")
    func independentPlans() throws {
        let dir = Harness.tempDir("plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graph = try Self.job.graph(JobArguments(inputs: try Self.writeInputs(dir)))
        let a = try Self.plan(graph, partitions: 3, splitSize: 4 << 10, broadcastThreshold: 0)
        let explained = Explain.text(Self.job, a, note: "")
        let b = try Self.plan(graph, partitions: 5, splitSize: 1 << 20, broadcastThreshold: 10 << 20)
        #expect(Explain.text(Self.job, a, note: "") == explained, "building a second plan changed the first")

        let sum = graph.shuffles[0], big = graph.fileSources[0] as! FileSourceLike
        let join = try #require(graph.nodes.first { $0 is BroadcastCandidate })
        #expect(a.partitions(of: sum) == 3 && b.partitions(of: sum) == 5)
        #expect(a.splits(of: big).count > 1 && b.splits(of: big).count == 1)
        #expect(a.broadcastSide(of: join) == nil && b.broadcastSide(of: join) == 1)
        #expect(a.partitionCount(of: join) == 3 && b.partitionCount(of: join) == 5)
        // The shuffle join has a map stage for each side; the broadcast join none.
        #expect(a.stages.map(\.kindName) == ["map", "map", "map", "sample", "map", "result", "result"])
        #expect(b.stages.map(\.kindName) == ["map", "sample", "map", "result", "result"])
        #expect(explained.contains("join (reduce side)"))
        #expect(Explain.text(Self.job, b, note: "").contains("join as broadcast hash join (right side loaded by every task)"))

        // Range bounds belong to the plan a task runs under, never to the plan it came from.
        let sort = graph.shuffles[3], sortMap = a.stages[4]
        let withBounds = a.withBounds([1, 2, 3], forStage: sortMap.id)
        #expect(withBounds.bounds(of: sort) == [1, 2, 3] && a.bounds(of: sort).isEmpty)
        #expect(a.withBounds([1, 2, 3], forStage: 0).bounds(of: sort).isEmpty, "only a range shuffle's map stage takes bounds")
    }

    @Test("every plan of one graph runs to the reference executor's answer, in any order")
    func runEachPlan() throws {
        let dir = Harness.tempDir("plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graph = try Self.job.graph(JobArguments(inputs: try Self.writeInputs(dir)))
        let ref = ReferenceExecutor()
        let expected = try graph.actions.map { try $0.reference(ref) }
        #expect(expected[1] == ["4100"])
        let plans = [
            try Self.plan(graph, partitions: 3, splitSize: 4 << 10, broadcastThreshold: 0),
            try Self.plan(graph, partitions: 5, splitSize: 1 << 20, broadcastThreshold: 10 << 20),
            try Self.plan(graph, partitions: 1, splitSize: 16 << 10, broadcastThreshold: 0),
        ]
        // The first plan runs after the others were made, and again after they ran.
        for (i, plan) in (plans + [plans[0]]).enumerated() {
            #expect(try Self.runInProcess(plan, workDir: dir + "/work-\(i)") == expected, "plan \(i)")
        }
    }

    @Test("explain, then run: the same output as the reference, broadcast or shuffled")
    func explainThenRun() throws {
        let dir = Harness.tempDir("plan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try Self.writeInputs(dir, header: ("key,value", "key,name"))
        let parameters = ["left": paths[0], "right": paths[1], "on": "key"]
        for threshold: Int64 in [0, 10 << 20] {
            let text = try Explain.render(Harness.job("join"), JobArguments(output: "o", parameters: parameters), format: .text,
                                          partitions: 3, splitSize: 8 << 10, workers: 2, broadcastThreshold: threshold)
            #expect(text.contains("broadcast hash join") == (threshold > 0))
            var options = Harness.options(workers: 2, partitions: 3, splitSize: 8 << 10)
            options.broadcastThreshold = threshold
            let result = try Harness.checkAgainstReference("join", parameters: parameters, options: options)
            #expect(result.stages.filter { $0.kind == "map" }.count == (threshold > 0 ? 0 : 2))
        }
    }
}
