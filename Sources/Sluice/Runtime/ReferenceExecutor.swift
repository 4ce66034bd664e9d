/// The test oracle: computes a job's graph naively in one process — whole arrays,
/// dictionaries and `sort` — with none of the engine's partitioning, spilling, pipes or
/// fusion. Every operator and example job is checked against it.
public final class ReferenceExecutor {
    private var memo: [ObjectIdentifier: Any] = [:]
    private var kept: [UnsafeMutableRawBufferPointer] = []
    private var retained: [AnyObject] = []

    public init() {}

    deinit { kept.forEach { $0.deallocate() } }

    /// Copies bytes into memory that lives as long as the executor, so borrowed views
    /// (`ByteView`) stay valid in the reference's whole-array results.
    @usableFromInline package func keep(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        kept.append(buffer)
        return UnsafeRawBufferPointer(rebasing: buffer[0..<bytes.count])
    }

    /// Keeps `object` (a reader whose buffer records' views point into) as long as the executor.
    package func retain(_ object: AnyObject) { retained.append(object) }

    /// Every record of `node`, computed once.
    @usableFromInline package func records<T>(of node: Node<T>) throws -> [T] {
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
