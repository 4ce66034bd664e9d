import Foundation

/// Renders an execution plan for people (`sluice explain`): each stage, its fused operator
/// chain, what it reads (input splits or shuffles) and writes, and its task count.
public enum Explain {
    /// How to render a plan.
    public enum Format: String, Sendable, CaseIterable {
        case text, dot, json
    }

    /// Plans `job` for `arguments` and renders it. Inputs that do not exist yet are shown as
    /// unplanned rather than failing.
    public static func render(_ job: Job, _ arguments: JobArguments, format: Format, partitions: Int, splitSize: Int64?, workers: Int,
                              broadcastThreshold: Int64 = 10 << 20, rangeShareBytes: Int64 = 0) throws -> String {
        let graph = try job.graph(arguments)
        var splits: [[InputSplit]]
        var note = ""
        do {
            splits = try PhysicalPlan.planSplits(graph, splitSize: splitSize, workers: workers)
        } catch {
            splits = graph.fileSources.map { _ in [] }
            note = "  (inputs not planned: \(error))\n"
        }
        let plan = try PhysicalPlan(graph: graph, options: PlanOptions(partitions: partitions, broadcastThreshold: broadcastThreshold,
                                                                       rangeShareBytes: rangeShareBytes), splits: splits)
        switch format {
        case .text: return text(job, plan, note: note)
        case .dot: return dot(job, plan)
        case .json:
            let object: [String: Any] = ["job": job.name, "summary": job.summary, "stages": RunEventLog.describe(plan)]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            return String(decoding: data, as: UTF8.self) + "\n"
        }
    }

    /// Graphviz: one box per stage listing its fused operators, an edge per shuffle.
    static func dot(_ job: Job, _ plan: PhysicalPlan) -> String {
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        }
        var out = "digraph \"\(escape(job.name))\" {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
        for stage in plan.stages {
            var label = "Stage \(stage.id) (\(stage.kindName)), \(stage.taskCount) tasks\\l"
            for source in stage.fileSources { label += "read \(escape(source.paths.joined(separator: " "))) (\(plan.splits(of: source).count) splits)\\l" }
            for n in stage.chain { label += "→ \(escape(plan.chainLabel(of: n)))\\l" }
            switch stage.kind {
            case .shuffleMap(let dep): label += "→ \(escape(dep.writeDescription))\\l"
            case .sample: label += "→ sample keys\\l"
            case .result(let action): label += "→ \(escape(action.outputPath.map { "\(action.op) \($0)" } ?? action.op))\\l"
            }
            out += "  s\(stage.id) [label=\"\(label)\"];\n"
        }
        for stage in plan.stages {
            for parent in stage.parents {
                var edge = ""
                if case .shuffleMap(let dep) = parent.kind { edge = "shuffle \(dep.id): \(plan.partitions(of: dep)) partitions" }
                if case .sample = parent.kind { edge = "range bounds" }
                out += "  s\(parent.id) -> s\(stage.id) [label=\"\(edge)\"];\n"
            }
        }
        return out + "}\n"
    }

    static func text(_ job: Job, _ plan: PhysicalPlan, note: String) -> String {
        var out = "Job \(job.name): \(job.summary)\n"
        out += note
        for stage in plan.stages {
            let tasks = stage.taskCount
            out += "\nStage \(stage.id) (\(stage.kindName)) — \(tasks) task\(tasks == 1 ? "" : "s")"
            if !stage.parents.isEmpty { out += ", after stage\(stage.parents.count > 1 ? "s" : "") \(stage.parents.map { String($0.id) }.joined(separator: ", "))" }
            out += "\n"
            var reads: [String] = []
            for source in stage.fileSources {
                let splits = plan.splits(of: source)
                reads.append("input \(source.paths.joined(separator: " ")): \(splits.count) split\(splits.count == 1 ? "" : "s")")
                for (i, s) in splits.prefix(8).enumerated() { reads.append("  split \(i): \(s.summary)") }
                if splits.count > 8 { reads.append("  … \(splits.count - 8) more") }
            }
            for dep in stage.shuffleInputs {
                reads.append("shuffle \(dep.id): \(plan.mapTasks(of: dep)) map outputs × \(plan.partitions(of: dep)) partitions")
            }
            for r in reads { out += "  reads   \(r)\n" }
            var chain = stage.chain.map(plan.chainLabel)
            switch stage.kind {
            case .shuffleMap(let dep):
                chain.append("\(dep.writeDescription) into \(plan.partitions(of: dep)) partitions (shuffle \(dep.id))")
            case .sample(let dep):
                chain.append("sample keys for the range bounds of shuffle \(dep.id)")
            case .result(let action):
                chain.append(action.outputPath.map { "\(action.op) \($0)" } ?? action.op)
            }
            out += "  fused   " + chain.joined(separator: " → ") + "\n"
            if let skew = SkewPlanner.explain(stage) { out += "  skew    \(skew)\n" }
        }
        return out
    }
}
