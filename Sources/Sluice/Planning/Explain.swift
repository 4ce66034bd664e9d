/// Renders an execution plan for people (`sluice explain`): each stage, its fused operator
/// chain, what it reads (input splits or shuffles) and writes, and its task count.
public enum Explain {
    /// Plans `job` for `arguments` and describes it. Inputs that do not exist yet are shown
    /// as unplanned rather than failing.
    public static func text(_ job: Job, _ arguments: JobArguments, partitions: Int, splitSize: Int64) throws -> String {
        let graph = try job.graph(arguments)
        var splits: [[InputSplit]]
        var note = ""
        do {
            splits = try ExecutionPlan.planSplits(graph, splitSize: splitSize)
        } catch {
            splits = graph.fileSources.map { _ in [] }
            note = "  (inputs not planned: \(error))\n"
        }
        let plan = try ExecutionPlan(graph: graph, options: PlanOptions(partitions: partitions), splits: splits)
        var out = "Job \(job.name): \(job.summary)\n"
        out += note
        for stage in plan.stages {
            let tasks = stage.taskCount
            out += "\nStage \(stage.id) (\(stage.kindName)) — \(tasks) task\(tasks == 1 ? "" : "s")"
            if !stage.parents.isEmpty { out += ", after stage\(stage.parents.count > 1 ? "s" : "") \(stage.parents.map { String($0.id) }.joined(separator: ", "))" }
            out += "\n"
            var reads: [String] = []
            for source in stage.fileSources {
                reads.append("input \(source.paths.joined(separator: " ")): \(source.splits.count) split\(source.splits.count == 1 ? "" : "s")")
                for (i, s) in source.splits.prefix(8).enumerated() { reads.append("  split \(i): \(s.summary)") }
                if source.splits.count > 8 { reads.append("  … \(source.splits.count - 8) more") }
            }
            for dep in stage.shuffleInputs {
                reads.append("shuffle \(dep.id): \(dep.mapTasks) map outputs × \(dep.partitions) partitions")
            }
            for r in reads { out += "  reads   \(r)\n" }
            var chain = stage.chain.map { n -> String in
                n.shuffleDependencies.isEmpty ? n.label : "\(n.label) (reduce side)"
            }
            switch stage.kind {
            case .shuffleMap(let dep):
                chain.append("\(dep.writeDescription) into \(dep.partitions) partitions (shuffle \(dep.id))")
            case .sample(let dep):
                chain.append("sample keys for the range bounds of shuffle \(dep.id)")
            case .result(let action):
                chain.append(action.outputPath.map { "\(action.op) \($0)" } ?? action.op)
            }
            out += "  fused   " + chain.joined(separator: " → ") + "\n"
        }
        return out
    }
}
