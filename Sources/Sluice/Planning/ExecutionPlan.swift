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
    /// A join side whose input is smaller than this (bytes on disk) is broadcast to every
    /// task instead of shuffled (Spark's default: 10 MB); 0 disables broadcast joins.
    public var broadcastThreshold: Int64
    public init(partitions: Int, broadcastThreshold: Int64 = 10 << 20) {
        self.partitions = max(1, partitions)
        self.broadcastThreshold = max(0, broadcastThreshold)
    }
}

/// A join that can run as a broadcast hash join when one side is small.
protocol BroadcastCandidate: AnyObject {
    /// The sides (0 left, 1 right) that may be broadcast.
    var broadcastableSides: [Int] { get }
    /// The two input nodes.
    var sides: [AnyNode] { get }
    /// Set by the planner: the side loaded whole by every task, or nil to shuffle.
    var broadcastSide: Int? { get set }
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
        // Broadcast joins are chosen from the inputs' sizes, before stages are cut: the same
        // splits give the same decision in every process.
        for node in graph.nodes {
            guard let join = node as? BroadcastCandidate else { continue }
            join.broadcastSide = nil
            guard options.broadcastThreshold > 0 else { continue }
            let sizes = join.broadcastableSides.compactMap { side in
                ExecutionPlan.narrowInputBytes(join.sides[side]).map { (side, $0) }
            }
            if let small = sizes.filter({ $0.1 < options.broadcastThreshold }).min(by: { $0.1 < $1.1 }) {
                join.broadcastSide = small.0
            }
        }

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

    /// Bytes on disk a node reads when it reaches its sources without a shuffle; nil otherwise
    /// (a shuffled side's size is not known before it runs).
    static func narrowInputBytes(_ node: AnyNode) -> Int64? {
        if !node.shuffleDependencies.isEmpty { return nil }
        if let source = node as? FileSourceLike { return source.splits.reduce(0) { $0 + $1.bytes } }
        if node.parents.isEmpty { return nil } // in-memory data: size unknown
        var total: Int64 = 0
        for p in node.parents {
            guard let b = narrowInputBytes(p) else { return nil }
            total += b
        }
        return total
    }

    /// Computes every file source's splits (coordinator side).
    static func planSplits(_ graph: JobGraph, splitSize: Int64?, workers: Int) throws -> [[InputSplit]] {
        let planner = SplitPlanner(splitSize: splitSize, workers: workers)
        return try graph.fileSources.map {
            let source = $0 as! FileSourceLike
            return try planner.plan(source.paths, splittable: source.splittable)
        }
    }
}
