/// One node of a job's logical graph: a source, a narrow operator or the reduce side of a
/// shuffle. Nodes are built by the job's closure in every process; ids are assigned by a
/// deterministic traversal (`JobGraph.seal`), so the coordinator and every worker agree on
/// them without ever exchanging closures.
public class AnyNode {
    // Internal members used by inlinable operator code are @usableFromInline.
    /// Position in the deterministic traversal; -1 until the graph is sealed.
    public internal(set) var id: Int = -1
    /// The nodes this one reads.
    @usableFromInline let parents: [AnyNode]
    /// The operator's name as `explain` shows it (`map`, `flatMap`, `reduceByKey` …).
    let op: String
    /// A user-chosen name (`.named("tokenize")`), shown by `explain`.
    @usableFromInline var userLabel: String?

    @usableFromInline init(op: String, parents: [AnyNode]) {
        self.op = op
        self.parents = parents
    }

    /// The shuffles whose reduce side this node is; empty for narrow nodes and sources.
    @usableFromInline var shuffleDependencies: [ShuffleDependency] { [] }

    /// Number of partitions (tasks) this node's data is split into under `plan`, whose answers
    /// for this node's parents are already known (`PhysicalPlan.partitionCount(of:)` caches it).
    func partitionCount(in plan: PhysicalPlan) -> Int { parents.first.map(plan.partitionCount) ?? 0 }

    /// Set on nodes whose partitions, read in order, are totally ordered (sortByKey, top).
    @usableFromInline var ordersOutput = false

    /// Whether the records, partition after partition, are in a defined order: true below a
    /// sort as long as only record-wise operators follow (they keep the order).
    @usableFromInline var isTotallyOrdered: Bool {
        if ordersOutput { return true }
        if !shuffleDependencies.isEmpty || parents.count != 1 { return false }
        return parents[0].isTotallyOrdered
    }

    /// The label `explain` prints.
    var label: String { userLabel.map { "\(op)[\($0)]" } ?? op }
}

/// A node producing records of type `T`, pushed into a sink one at a time: operators are
/// composed so that a stage's whole chain runs as nested closure calls, with no collection
/// between operators (Thrill's function stacks; Spark's pipelined iterators, push-style).
///
/// An abstract class, not a protocol: its subclasses share `AnyNode`'s stored state (id,
/// parents, labels), and `Dataset<T>`, the actions and every operator hold a `Node<T>`. As a
/// protocol, the graph would hold `any Node<T>` existentials (or `Dataset` would become
/// generic over its node type, changing every operator's signature) for no speed: `compute`
/// is called once per partition, and the per-record work in it is already specialised
/// (`ClosureNode`).
public class Node<T>: AnyNode {
    /// Pushes every record of `partition` into `sink`.
    @usableFromInline package func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        fatalError("abstract")
    }

    /// The reference executor: computes every record naively in-process (the test oracle).
    @usableFromInline func reference(_ ref: ReferenceExecutor) throws -> [T] {
        fatalError("abstract")
    }
}

/// A node whose work is a closure built by an `@inlinable` operator (`map`, `reduceByKey` …).
///
/// Why closures: a method of a generic class is compiled once, unspecialised, and called
/// through its vtable, so a `Dictionary<K, C>` inside it would go through witness tables on
/// every record (measured: 13 MB/s for wordcount). A closure written inside an `@inlinable`
/// generic function is specialised, with the function, for the concrete types at the job's
/// call site — the per-record path runs as concrete code (Thrill gets the same from templates).
@usableFromInline package final class ClosureNode<T>: Node<T> {
    @usableFromInline package typealias Body = (TaskContext, Int, (T) throws -> Void) throws -> Void
    @usableFromInline package let body: Body
    @usableFromInline package let referenceBody: (ReferenceExecutor) throws -> [T]
    @usableFromInline package let shuffles: [ShuffleDependency]
    /// A source's partition count (a node without parents or shuffles, such as an event log's
    /// offset ranges).
    @usableFromInline package let fixedPartitions: Int?

    /// `shuffles` is non-empty for the reduce side of wide operators; `partitions` is given
    /// for a source that is not a file source.
    @usableFromInline package init(op: String, parents: [AnyNode], shuffles: [ShuffleDependency] = [], partitions: Int? = nil,
                                   body: @escaping Body, reference: @escaping (ReferenceExecutor) throws -> [T]) {
        self.body = body
        referenceBody = reference
        self.shuffles = shuffles
        fixedPartitions = partitions
        super.init(op: op, parents: parents)
    }

    override var shuffleDependencies: [ShuffleDependency] { shuffles }
    override func partitionCount(in plan: PhysicalPlan) -> Int {
        fixedPartitions ?? shuffles.first.map(plan.partitions) ?? super.partitionCount(in: plan)
    }

    @usableFromInline package override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        try body(task, partition, sink)
    }

    @usableFromInline override func reference(_ ref: ReferenceExecutor) throws -> [T] { try referenceBody(ref) }
}

/// Ends a pipeline early (used by `take`): thrown by a sink, caught by the task runner.
@usableFromInline struct StopPipeline: Error {
    @usableFromInline init() {}
}
