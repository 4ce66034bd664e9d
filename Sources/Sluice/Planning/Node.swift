/// One node of a job's logical graph: a source, a narrow operator or the reduce side of a
/// shuffle. Nodes are built by the job's closure in every process; ids are assigned by a
/// deterministic traversal (`JobGraph.seal`), so the coordinator and every worker agree on
/// them without ever exchanging closures.
public class AnyNode {
    /// Position in the deterministic traversal; -1 until the graph is sealed.
    public internal(set) var id: Int = -1
    /// The nodes this one reads.
    let parents: [AnyNode]
    /// The operator's name as `explain` shows it (`map`, `flatMap`, `reduceByKey` …).
    let op: String
    /// A user-chosen name (`.named("tokenize")`), shown by `explain`.
    var userLabel: String?

    init(op: String, parents: [AnyNode]) {
        self.op = op
        self.parents = parents
    }

    /// The shuffles whose reduce side this node is; empty for narrow nodes and sources.
    var shuffleDependencies: [ShuffleDependency] { [] }

    /// Number of partitions (tasks) this node's data is split into, once planned.
    var partitionCount: Int { parents.first?.partitionCount ?? 0 }

    /// Set on nodes whose partitions, read in order, are totally ordered (sortByKey, top).
    var ordersOutput = false

    /// Whether the records, partition after partition, are in a defined order: true below a
    /// sort as long as only record-wise operators follow (they keep the order).
    var isTotallyOrdered: Bool {
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
public class Node<T>: AnyNode {
    /// Pushes every record of `partition` into `sink`.
    func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        fatalError("abstract")
    }

    /// The reference executor: computes every record naively in-process (the test oracle).
    func reference(_ ref: ReferenceExecutor) throws -> [T] {
        fatalError("abstract")
    }
}

/// Ends a pipeline early (used by `take`): thrown by a sink, caught by the task runner.
struct StopPipeline: Error {}
