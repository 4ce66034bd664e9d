/// The test oracle: computes a job's graph naively in one process — whole arrays,
/// dictionaries and `sort` — with none of the engine's partitioning, spilling, pipes or
/// fusion. Every operator and example job is checked against it.
public final class ReferenceExecutor {
    private var memo: [ObjectIdentifier: Any] = [:]

    public init() {}

    /// Every record of `node`, computed once.
    func records<T>(of node: Node<T>) throws -> [T] {
        if let cached = memo[ObjectIdentifier(node)] { return cached as! [T] }
        let result = try node.reference(self)
        memo[ObjectIdentifier(node)] = result
        return result
    }

    /// Runs `job` naively and returns, per action, its result as lines and whether their
    /// order is meaningful (a sort) or they form a multiset.
    public static func run(_ job: Job, _ arguments: JobArguments) throws -> [(lines: [String], ordered: Bool)] {
        let graph = try job.graph(arguments)
        let ref = ReferenceExecutor()
        return try graph.actions.map { (try $0.reference(ref), $0.ordered) }
    }
}
