/// What a job does with a dataset at the end: a result stage. Each task of the stage runs
/// the dataset's partition and produces either a part file or a small encoded result that
/// travels back to the coordinator.
@usableFromInline class Action {
    /// Position among the job's actions (registration order).
    var index = -1
    let node: AnyNode
    let op: String

    init(node: AnyNode, op: String) {
        self.node = node
        self.op = op
    }

    /// The output folder, for actions that write files.
    var outputPath: String? { nil }

    /// Runs one task; returns the encoded result (or empty when it wrote a file at `partPath`).
    func runTask(_ task: TaskContext, partition: Int, partPath: String?) throws -> [UInt8] { fatalError("abstract") }

    /// Folds the tasks' results (in partition order) into the action's final result, as lines
    /// for people.
    func render(_ results: [[UInt8]]) throws -> [String] { [] }

    /// The reference executor's answer, rendered like `render`.
    func reference(_ ref: ReferenceExecutor) throws -> [String] { fatalError("abstract") }

    /// Whether the order of rendered lines is meaningful (false: compare as multisets).
    var ordered: Bool { false }
}

/// `write(to:)`: text lines in `part-NNNNN` files.
@usableFromInline final class WriteAction<T>: Action {
    let source: Node<T>
    let path: String
    let format: (T, inout ByteWriter) -> Void
    let orderedOutput: Bool

    @usableFromInline init(_ source: Node<T>, path: String, ordered: Bool, format: @escaping (T, inout ByteWriter) -> Void) {
        self.source = source
        self.path = path
        self.format = format
        orderedOutput = ordered
        super.init(node: source, op: "write")
    }

    override var outputPath: String? { path }
    override var ordered: Bool { orderedOutput }

    override func runTask(_ task: TaskContext, partition: Int, partPath: String?) throws -> [UInt8] {
        // Plain or gzip-compressed part file; the formatting loop is the same.
        let gzip = task.compressOutput ? try GzipWriter(path: partPath!) : nil
        let plain = gzip == nil ? try OutputFile(path: partPath!, mode: 0o644, durable: true) : nil
        var line = ByteWriter(capacity: 256)
        let fmt = format
        try source.compute(task, partition: partition) { t in
            line.removeAll()
            fmt(t, &line)
            line.write(0x0A)
            try line.bytes.withUnsafeBytes { raw in
                if let gzip { try gzip.write(raw) } else { try plain!.write(raw) }
            }
            task.metrics.recordsWritten += 1
        }
        if let gzip {
            task.metrics.outputBytes += try gzip.finish()
        } else {
            try plain!.finish()
            task.metrics.outputBytes += plain!.offset
        }
        return []
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [String] {
        try ref.records(of: source).map { t in
            var w = ByteWriter()
            format(t, &w)
            return String(decoding: w.bytes, as: UTF8.self)
        }
    }
}

/// `count()`: the number of records.
@usableFromInline final class CountAction<T>: Action {
    let source: Node<T>

    @usableFromInline init(_ source: Node<T>) {
        self.source = source
        super.init(node: source, op: "count")
    }

    override func runTask(_ task: TaskContext, partition: Int, partPath: String?) throws -> [UInt8] {
        var n = 0
        try source.compute(task, partition: partition) { _ in n += 1 }
        var w = ByteWriter()
        w.writeFixed(Int64(n))
        return w.bytes
    }

    @usableFromInline func total(_ results: [[UInt8]]) throws -> Int {
        try results.reduce(0) { sum, blob in
            try blob.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                return sum + Int(try r.readFixed(Int64.self))
            }
        }
    }

    override func render(_ results: [[UInt8]]) throws -> [String] { ["\(try total(results))"] }

    override func reference(_ ref: ReferenceExecutor) throws -> [String] { ["\(try ref.records(of: source).count)"] }
}

/// `collect()` and `take(n)`: records shipped back to the coordinator, in partition order.
@usableFromInline final class CollectAction<T>: Action {
    let source: Node<T>
    let limit: Int?
    let encode: (T, inout ByteWriter) -> Void
    let decode: (inout ByteReader) throws -> T
    let format: (T, inout ByteWriter) -> Void

    @usableFromInline init(_ source: Node<T>, limit: Int?, encode: @escaping (T, inout ByteWriter) -> Void,
         decode: @escaping (inout ByteReader) throws -> T, format: @escaping (T, inout ByteWriter) -> Void) {
        self.source = source
        self.limit = limit
        self.encode = encode
        self.decode = decode
        self.format = format
        super.init(node: source, op: limit == nil ? "collect" : "take(\(limit!))")
    }

    override var ordered: Bool { limit != nil }

    override func runTask(_ task: TaskContext, partition: Int, partPath: String?) throws -> [UInt8] {
        var w = ByteWriter()
        var n = 0
        let enc = encode
        let limit = self.limit ?? .max
        do {
            try source.compute(task, partition: partition) { t in
                guard n < limit else { throw StopPipeline() }
                enc(t, &w)
                n += 1
            }
        } catch is StopPipeline {}
        return w.bytes
    }

    @usableFromInline func values(_ results: [[UInt8]]) throws -> [T] {
        var out: [T] = []
        for blob in results {
            try blob.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                while !r.isAtEnd { out.append(try decode(&r)) }
            }
            if let limit, out.count >= limit { return Array(out.prefix(limit)) }
        }
        return out
    }

    private func lines(_ values: [T]) -> [String] {
        values.map { t in
            var w = ByteWriter()
            format(t, &w)
            return String(decoding: w.bytes, as: UTF8.self)
        }
    }

    override func render(_ results: [[UInt8]]) throws -> [String] { lines(try values(results)) }

    override func reference(_ ref: ReferenceExecutor) throws -> [String] {
        let all = try ref.records(of: source)
        return lines(limit.map { Array(all.prefix($0)) } ?? all)
    }
}
