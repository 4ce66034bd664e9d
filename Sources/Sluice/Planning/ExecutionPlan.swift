/// A stage: the tasks that run one fused chain of narrow operators over the partitions of
/// `root`, ending in a shuffle write (a map stage), a key sample (before a range shuffle) or
/// an action (a result stage). Cut at every shuffle, as Spark's DAGScheduler does.
final class Stage {
    enum Kind {
        case shuffleMap(ShuffleDependency)
        case sample(ShuffleDependency)
        case result(Action)
    }

    let id: Int
    let kind: Kind
    /// The node whose partitions the tasks compute.
    let root: AnyNode
    /// Stages that must finish first (the map stages of the shuffles this stage reads, and
    /// for a range shuffle its sample stage).
    let parents: [Stage]

    init(id: Int, kind: Kind, root: AnyNode, parents: [Stage]) {
        self.id = id
        self.kind = kind
        self.root = root
        self.parents = parents
    }

    var taskCount: Int { root.partitionCount }

    /// The nodes fused into this stage, sources or shuffle reads first.
    var chain: [AnyNode] {
        var out: [AnyNode] = []
        func walk(_ n: AnyNode) {
            if n.shuffleDependencies.isEmpty { n.parents.forEach(walk) }
            out.append(n)
        }
        walk(root)
        return out
    }

    /// The shuffles this stage reads.
    var shuffleInputs: [ShuffleDependency] { chain.flatMap(\.shuffleDependencies) }

    /// The file sources this stage reads.
    var fileSources: [FileSourceLike] { chain.compactMap { $0 as? FileSourceLike } }

    var kindName: String {
        switch kind {
        case .shuffleMap: return "map"
        case .sample: return "sample"
        case .result: return "result"
        }
    }
}

/// Knobs that shape the plan; the coordinator sends them to every worker so all agree.
public struct PlanOptions: Sendable, Equatable {
    /// Reduce partitions of a shuffle whose operator does not name its own.
    public var partitions: Int
    public init(partitions: Int) { self.partitions = max(1, partitions) }
}

/// A job's graph cut into stages, with input splits and partition counts fixed.
final class ExecutionPlan {
    let graph: JobGraph
    let options: PlanOptions
    private(set) var stages: [Stage] = []

    /// Plans `graph`; `splits` gives the input splits of each file source, in graph order
    /// (computed by the coordinator, received by workers).
    init(graph: JobGraph, options: PlanOptions, splits: [[InputSplit]]) throws {
        self.graph = graph
        self.options = options
        guard splits.count == graph.fileSources.count else {
            throw JobError.invalid("plan mismatch: \(splits.count) split lists for \(graph.fileSources.count) sources")
        }
        for (source, s) in zip(graph.fileSources, splits) { (source as! FileSourceLike).splits = s }
        for shuffle in graph.shuffles { shuffle.partitions = max(1, shuffle.requestedPartitions ?? options.partitions) }

        var mapStages: [Int: Stage] = [:]
        func parentStages(of node: AnyNode) -> [Stage] {
            var result: [Stage] = []
            var seen = Set<ObjectIdentifier>()
            func walk(_ n: AnyNode) {
                guard seen.insert(ObjectIdentifier(n)).inserted else { return }
                if n.shuffleDependencies.isEmpty {
                    n.parents.forEach(walk)
                } else {
                    for dep in n.shuffleDependencies { result.append(mapStage(for: dep)) }
                }
            }
            walk(node)
            return result
        }
        func mapStage(for dep: ShuffleDependency) -> Stage {
            if let s = mapStages[dep.id] { return s }
            var parents = parentStages(of: dep.parent)
            if dep.needsSample {
                let sample = Stage(id: stages.count, kind: .sample(dep), root: dep.parent, parents: parents)
                stages.append(sample)
                parents = parents + [sample]
            }
            let stage = Stage(id: stages.count, kind: .shuffleMap(dep), root: dep.parent, parents: parents)
            stages.append(stage)
            mapStages[dep.id] = stage
            return stage
        }
        for action in graph.actions {
            let parents = parentStages(of: action.node)
            stages.append(Stage(id: stages.count, kind: .result(action), root: action.node, parents: parents))
        }
    }

    /// Computes every file source's splits (coordinator side).
    static func planSplits(_ graph: JobGraph, splitSize: Int64) throws -> [[InputSplit]] {
        let planner = SplitPlanner(splitSize: splitSize)
        return try graph.fileSources.map {
            let source = $0 as! FileSourceLike
            return try planner.plan(source.paths, splittable: source.splittable)
        }
    }
}
