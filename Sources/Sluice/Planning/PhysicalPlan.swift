/// A stage: the tasks that run one fused chain of narrow operators over the partitions of
/// `root`, ending in a shuffle write (a map stage), a key sample (before a range shuffle) or
/// an action (a result stage). Cut at every shuffle, as Spark's DAGScheduler does. Made by a
/// `PhysicalPlan`, whose decisions (broadcast joins, partition counts) shape it.
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
    /// The nodes fused into this stage, sources or shuffle reads first.
    let chain: [AnyNode]
    /// The shuffles this stage reads.
    let shuffleInputs: [ShuffleDependency]
    /// The file sources this stage reads.
    let fileSources: [FileSourceLike]
    /// The number of tasks (the root's partitions).
    let taskCount: Int

    init(id: Int, kind: Kind, root: AnyNode, parents: [Stage], plan: PhysicalPlan) {
        self.id = id
        self.kind = kind
        self.root = root
        self.parents = parents
        var chain: [AnyNode] = []
        func walk(_ n: AnyNode) {
            if plan.reads(n).isEmpty { n.parents.forEach(walk) }
            chain.append(n)
        }
        walk(root)
        self.chain = chain
        shuffleInputs = chain.flatMap(plan.reads)
        fileSources = chain.compactMap { $0 as? FileSourceLike }
        taskCount = plan.partitionCount(of: root)
    }

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
    /// A range shuffle (`sortByKey`) whose operator names no partition count gets at least one
    /// reduce partition per this many bytes of its input — half a task's budget when
    /// `--partitions` is not given — so that every reducer sorts its share in memory instead of
    /// spilling runs and merging them (TeraSort sizes its reducers the same way); 0: off.
    public var rangeShareBytes: Int64
    public init(partitions: Int, broadcastThreshold: Int64 = 10 << 20, rangeShareBytes: Int64 = 0) {
        self.partitions = max(1, partitions)
        self.broadcastThreshold = max(0, broadcastThreshold)
        self.rangeShareBytes = max(0, rangeShareBytes)
    }
}

/// A join that can run as a broadcast hash join when one side is small.
protocol BroadcastCandidate: AnyNode {
    /// The sides (0 left, 1 right) that may be broadcast.
    var broadcastableSides: [Int] { get }
}

/// A job's physical plan: its sealed logical graph, which planning never modifies, cut into
/// stages, with every planning decision held here — input splits, partition counts, broadcast
/// joins and, for a range shuffle's map tasks, the bounds from its sample stage. The same
/// graph can be planned any number of times (`explain`, then `run`) with different options.
/// Tasks reach their plan through `TaskContext.plan`; its answers are array lookups by node
/// or shuffle id.
@usableFromInline struct PhysicalPlan {
    let graph: JobGraph
    let options: PlanOptions
    private(set) var stages: [Stage] = []
    /// By node id: a file source's input splits (empty for other nodes).
    private var sourceSplits: [[InputSplit]]
    /// By node id: the side of a join every task loads whole, or nil to shuffle.
    private var broadcastSides: [Int?]
    /// By node id: the number of partitions (filled in traversal order, parents first).
    private var nodePartitions: [Int] = []
    /// By shuffle id: the number of reduce partitions (R).
    private var shufflePartitions: [Int] = []
    /// By shuffle id: the encoded range bounds a map task partitions by (see `withBounds`).
    private var rangeBounds: [[UInt8]]
    /// By stage id: the tasks of a stage after adaptive skew planning (see `withSkewSpecs`).
    private var skewSpecs: [Int: [TaskSpec]] = [:]

    /// Plans `graph`; `splits` gives the input splits of each file source, in graph order
    /// (computed by the coordinator, received by workers).
    init(graph: JobGraph, options: PlanOptions, splits: [[InputSplit]]) throws {
        guard splits.count == graph.fileSources.count else {
            throw JobError.invalid("plan mismatch: \(splits.count) split lists for \(graph.fileSources.count) sources")
        }
        self.graph = graph
        self.options = options
        sourceSplits = Array(repeating: [], count: graph.nodes.count)
        for (source, s) in zip(graph.fileSources, splits) { sourceSplits[source.id] = s }
        broadcastSides = Array(repeating: nil, count: graph.nodes.count)
        rangeBounds = Array(repeating: [], count: graph.shuffles.count)
        shufflePartitions = graph.shuffles.map(reducePartitions)
        // Broadcast joins are chosen from the inputs' sizes, before stages are cut: the same
        // splits give the same decision in every process. Parents come first, so a join sees
        // its sides as planned.
        for node in graph.nodes {
            if let join = node as? BroadcastCandidate { broadcastSides[node.id] = chooseBroadcastSide(join) }
            let count = node.partitionCount(in: self)
            nodePartitions.append(count)
        }
        stages = cutStages()
    }

    /// The reduce partitions of `shuffle`: the operator's count, else `--partitions`, raised
    /// for a range shuffle over a large input so that each share fits `rangeShareBytes`.
    private func reducePartitions(_ shuffle: ShuffleDependency) -> Int {
        if let asked = shuffle.requestedPartitions { return max(1, asked) }
        guard options.rangeShareBytes > 0, shuffle.isRangePartitioned, !shuffle.combinesOnMapSide,
              let bytes = narrowInputBytes(shuffle.parent) else { return options.partitions }
        let shares = (bytes + options.rangeShareBytes - 1) / options.rangeShareBytes
        return max(options.partitions, Int(min(4096, shares)))
    }

    /// The side of `join` to broadcast: the smaller one read below the threshold, if any.
    private func chooseBroadcastSide(_ join: BroadcastCandidate) -> Int? {
        guard options.broadcastThreshold > 0 else { return nil }
        let sizes = join.broadcastableSides.compactMap { side in narrowInputBytes(join.parents[side]).map { (side, $0) } }
        return sizes.filter { $0.1 < options.broadcastThreshold }.min { $0.1 < $1.1 }?.0
    }

    /// Bytes on disk a node reads when it reaches its sources without a shuffle; nil otherwise
    /// (a shuffled side's size is not known before it runs).
    private func narrowInputBytes(_ node: AnyNode) -> Int64? {
        if !reads(node).isEmpty { return nil }
        if let source = node as? FileSourceLike { return splits(of: source).reduce(0) { $0 + $1.bytes } }
        if node.parents.isEmpty { return nil } // in-memory data: size unknown
        var total: Int64 = 0
        for p in node.parents {
            guard let b = narrowInputBytes(p) else { return nil }
            total += b
        }
        return total
    }

    /// Cuts the graph into stages at every shuffle read, parents before children.
    private func cutStages() -> [Stage] {
        var stages: [Stage] = []
        var mapStages: [Int: Stage] = [:]
        func parentStages(of node: AnyNode) -> [Stage] {
            var result: [Stage] = []
            var seen = Set<ObjectIdentifier>()
            func walk(_ n: AnyNode) {
                guard seen.insert(ObjectIdentifier(n)).inserted else { return }
                let deps = reads(n)
                if deps.isEmpty { n.parents.forEach(walk) } else { result += deps.map(mapStage) }
            }
            walk(node)
            return result
        }
        func mapStage(for dep: ShuffleDependency) -> Stage {
            if let s = mapStages[dep.id] { return s }
            var parents = parentStages(of: dep.parent)
            if needsSample(dep) {
                let sample = Stage(id: stages.count, kind: .sample(dep), root: dep.parent, parents: parents, plan: self)
                stages.append(sample)
                parents.append(sample)
            }
            let stage = Stage(id: stages.count, kind: .shuffleMap(dep), root: dep.parent, parents: parents, plan: self)
            stages.append(stage)
            mapStages[dep.id] = stage
            return stage
        }
        for action in graph.actions {
            let parents = parentStages(of: action.node)
            stages.append(Stage(id: stages.count, kind: .result(action), root: action.node, parents: parents, plan: self))
        }
        return stages
    }

    /// The input splits of a file source.
    func splits(of source: FileSourceLike) -> [InputSplit] { sourceSplits[source.id] }

    /// The number of partitions of a node's data (the tasks of a stage ending at it).
    @usableFromInline func partitionCount(of node: AnyNode) -> Int { nodePartitions[node.id] }

    /// The number of reduce partitions (R) of a shuffle.
    @usableFromInline func partitions(of dep: ShuffleDependency) -> Int { shufflePartitions[dep.id] }

    /// The number of map tasks (map outputs) of a shuffle.
    func mapTasks(of dep: ShuffleDependency) -> Int { partitionCount(of: dep.parent) }

    /// The side of a join (0 left, 1 right) every task loads whole, or nil when it is shuffled.
    func broadcastSide(of join: AnyNode) -> Int? { broadcastSides[join.id] }

    /// The shuffles whose reduce side `node` is under this plan (none for a broadcast join).
    func reads(_ node: AnyNode) -> [ShuffleDependency] {
        broadcastSides[node.id] == nil ? node.shuffleDependencies : []
    }

    /// Whether a shuffle is range-partitioned over more than one partition, so a sample stage
    /// picks its bounds before its map stage runs.
    func needsSample(_ dep: ShuffleDependency) -> Bool { dep.isRangePartitioned && partitions(of: dep) > 1 }

    /// The encoded range bounds of a shuffle; empty unless this plan was made `withBounds`.
    @usableFromInline func bounds(of dep: ShuffleDependency) -> [UInt8] { rangeBounds[dep.id] }

    /// The plan a task of stage `stage` runs under: for a map task of a range shuffle, this
    /// plan with the bounds `blob` the coordinator computed from the sample stage; otherwise
    /// this plan.
    func withBounds(_ blob: [UInt8], forStage stage: Int) -> PhysicalPlan {
        guard stages.indices.contains(stage), case .shuffleMap(let dep) = stages[stage].kind, needsSample(dep) else { return self }
        var plan = self
        plan.rangeBounds[dep.id] = blob
        return plan
    }

    /// The tasks of `stage` as skew planning split them; nil: one task per partition.
    func skewSpecs(of stage: Int) -> [TaskSpec]? { skewSpecs[stage] }

    /// This plan with the tasks of `stage` re-planned for skew, once its parents' map-output
    /// statistics are known (Spark's adaptive execution re-plans the same way).
    func withSkewSpecs(_ specs: [TaskSpec]?, forStage stage: Int) -> PhysicalPlan {
        var plan = self
        plan.skewSpecs[stage] = specs
        return plan
    }

    /// A node's name as `explain` and the run summary show it, with how a join was planned.
    func label(of node: AnyNode) -> String {
        guard let side = broadcastSides[node.id] else { return node.label }
        return "\(node.label) as broadcast hash join (\(side == 0 ? "left" : "right") side loaded by every task)"
    }

    /// A node of a stage's chain as `explain` and the event log list it.
    func chainLabel(of node: AnyNode) -> String {
        reads(node).isEmpty ? label(of: node) : "\(label(of: node)) (reduce side)"
    }

    /// Computes every file source's splits (coordinator side), once no output folder is found
    /// to overlap an input (`JobError.badParameter`).
    static func planSplits(_ graph: JobGraph, splitSize: Int64?, workers: Int) throws -> [[InputSplit]] {
        let inputs = graph.fileSources.flatMap(\.paths)
        for output in graph.actions.compactMap(\.outputPath) { try SplitPlanner.checkOutput(output, against: inputs) }
        let wholeRecords = !graph.shuffles.isEmpty && graph.shuffles.allSatisfy { !$0.combinesOnMapSide }
        let planner = SplitPlanner(splitSize: splitSize, workers: workers,
                                   largestAutomaticSplit: wholeRecords ? SplitPlanner.largestSplitWithoutCombining : SplitPlanner.largestSplit)
        return try graph.fileSources.map { try planner.plan($0.paths, splittable: $0.splittable) }
    }
}
