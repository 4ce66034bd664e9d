/// The test oracle: computes a job's graph naively in one process — whole arrays,
/// dictionaries and `sort` — with none of the engine's partitioning, spilling, pipes or
/// fusion. Every operator and example job is checked against it.
public final class ReferenceExecutor {
    private var memo: [ObjectIdentifier: Any] = [:]

    public init() {}

    /// Every record of `node`, computed once.
    @usableFromInline func records<T>(of node: Node<T>) throws -> [T] {
        if let cached = memo[ObjectIdentifier(node)] { return cached as! [T] }
        let result = try node.reference(self)
        memo[ObjectIdentifier(node)] = result
        return result
    }

    /// One action's expected result.
    public struct Expected: Sendable {
        /// The output lines (written files) or rendered result (count, collect …).
        public var lines: [String]
        /// Whether the order of `lines` is meaningful (a sort); otherwise compare as multisets.
        public var ordered: Bool
        /// The folder the action writes to, if it writes.
        public var outputPath: String?
    }

    /// Runs `job` naively and returns every action's expected result, in action order.
    public static func run(_ job: Job, _ arguments: JobArguments) throws -> [Expected] {
        let graph = try job.graph(arguments)
        let ref = ReferenceExecutor()
        return try graph.actions.map { Expected(lines: try $0.reference(ref), ordered: $0.ordered, outputPath: $0.outputPath) }
    }
}
