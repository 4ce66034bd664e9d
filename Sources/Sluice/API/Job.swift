/// A job: a name, a one-line summary, documented parameters, and a closure that builds the
/// dataset graph. The closure runs in the coordinator and again in every worker with the
/// same arguments, so it must be deterministic (no clocks, no unseeded randomness).
///
/// ```swift
/// Job("wordcount", summary: "Counts words in text files") { ctx in
///     ctx.textFiles(ctx.inputs)
///         .flatMap(emitting: { line, emit in try line.forEachToken(emit) })
///         .map { ($0, 1) }
///         .reduceByKey(+)
///         .write(to: ctx.output)
/// }
/// ```
public struct Job: Sendable {
    public let name: String
    public let summary: String
    public let parameters: [JobParameter]
    /// Inputs used when the user gives none (bundled data), relative to the working folder.
    public let defaultInputs: [String]
    /// Hidden jobs (test fixtures) are listed only by `sluice jobs --all`.
    public let hidden: Bool
    let build: @Sendable (JobContext) throws -> Void

    public init(_ name: String, summary: String, parameters: [JobParameter] = [], defaultInputs: [String] = [],
                hidden: Bool = false, build: @escaping @Sendable (JobContext) throws -> Void) {
        self.hidden = hidden
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.defaultInputs = defaultInputs
        self.build = build
    }

    /// Builds the job's graph for the given arguments.
    public func graph(_ arguments: JobArguments) throws -> JobGraph {
        let graph = JobGraph()
        let ctx = JobContext(job: self, arguments: arguments, graph: graph)
        try build(ctx)
        if let rejection = graph.rejection { throw rejection }
        guard !graph.actions.isEmpty else {
            throw JobError.invalid("job \(name) defines no action (write, count, collect …)")
        }
        graph.seal()
        return graph
    }
}

/// A parameter a job accepts (`--param name=value` on the command line).
public struct JobParameter: Sendable {
    public let name: String
    public let help: String
    public let defaultValue: String?
    public init(_ name: String, help: String, default defaultValue: String? = nil) {
        self.name = name
        self.help = help
        self.defaultValue = defaultValue
    }
}

/// What a job is run with: inputs, output folder and parameters. It travels to every worker.
public struct JobArguments: Sendable, Equatable {
    public var inputs: [String]
    public var output: String?
    public var parameters: [String: String]
    public init(inputs: [String] = [], output: String? = nil, parameters: [String: String] = [:]) {
        self.inputs = inputs
        self.output = output
        self.parameters = parameters
    }

    func encode(to w: inout ByteWriter) {
        inputs.encode(to: &w)
        output.encode(to: &w)
        let keys = parameters.keys.sorted()
        keys.encode(to: &w)
        for k in keys { parameters[k]!.encode(to: &w) }
    }

    static func decode(from r: inout ByteReader) throws -> JobArguments {
        let inputs = try [String].decode(from: &r)
        let output = try String?.decode(from: &r)
        var parameters: [String: String] = [:]
        for k in try [String].decode(from: &r) { parameters[k] = try String.decode(from: &r) }
        return JobArguments(inputs: inputs, output: output, parameters: parameters)
    }
}

/// Errors in how a job is defined or invoked, reported to the user as one line.
public enum JobError: Error, CustomStringConvertible {
    /// The job itself is wrong (no action, a non-commutative monoid …).
    case invalid(String)
    /// A parameter or operator argument is wrong: the command line's fault (the CLI exits 64).
    case badParameter(String)

    public var description: String {
        switch self {
        case .invalid(let s), .badParameter(let s): return s
        }
    }
}

/// Handed to a job's build closure: its arguments, and the sources that start a graph.
public final class JobContext {
    public let job: Job
    public let arguments: JobArguments
    @usableFromInline package let graph: JobGraph

    init(job: Job, arguments: JobArguments, graph: JobGraph) {
        self.job = job
        self.arguments = arguments
        self.graph = graph
    }

    /// The input paths (files, folders or globs); the job's defaults when none were given.
    public var inputs: [String] { arguments.inputs.isEmpty ? job.defaultInputs : arguments.inputs }

    /// The output folder. Jobs that write need one; the error says how to give it.
    public var output: String {
        get throws {
            guard let out = arguments.output else { throw JobError.badParameter("job \(job.name) needs --output DIR") }
            return out
        }
    }

    /// Tells the engine that the running task is making progress, from inside a closure doing
    /// long work on one record (records read and written count already). A task that shows no
    /// progress for `--task-timeout` is taken as hung, killed and retried.
    public func progress() { TaskProgress.advance() }

    /// A parameter's value, or its declared default.
    public func parameter(_ name: String) throws -> String {
        if let v = arguments.parameters[name] { return v }
        if let p = job.parameters.first(where: { $0.name == name }), let d = p.defaultValue { return d }
        throw JobError.badParameter("job \(job.name) needs parameter \(name): --\(name) VALUE (or --param \(name)=VALUE)")
    }

    /// A parameter parsed as an integer of at least `minimum`; anything else is a
    /// `JobError.badParameter` naming it, thrown while the graph is built (before any worker starts).
    public func intParameter(_ name: String, atLeast minimum: Int = .min) throws -> Int {
        let s = try parameter(name)
        guard let v = Int(s) else { throw JobError.badParameter("job \(job.name): parameter \(name) must be an integer, got '\(s)'") }
        guard v >= minimum else { throw JobError.badParameter("job \(job.name): parameter \(name) must be at least \(minimum), got \(v)") }
        return v
    }

    /// The lines of text files (files, folders, globs; gzip and archives too), as bytes.
    public func textFiles(_ paths: [String]) -> Dataset<Bytes> {
        Dataset(graph.source(TextLinesNode(paths: paths)), graph)
    }

    /// The lines of text files as borrowed views into the reader's buffer: no allocation per
    /// line. A view is valid only while the record is being processed; `Bytes(view)` keeps it.
    public func textLineViews(_ paths: [String]) -> Dataset<ByteView> {
        Dataset(graph.source(TextLineViewsNode(paths: paths)), graph)
    }

    /// The lines of text files with the name of the document each comes from.
    public func documentLines(_ paths: [String]) -> Dataset<DocumentLine> {
        Dataset(graph.source(DocumentLinesNode(paths: paths)), graph)
    }

    /// CSV (or TSV with `delimiter: "\t"`) files, each record parsed by `parse` into a
    /// value (return nil to drop it). The record is borrowed: read its fields inside `parse`.
    /// With `header`, the first line names the columns (`record.int("value")`).
    ///
    /// Quoted fields may hold newlines in gzip files and archive entries (read whole), and in
    /// plain files with `multiLine`, which reads each plain file whole in one task; otherwise
    /// big plain files are split at line starts and a record is one line. A `"` inside an
    /// unquoted field is an ordinary byte; with `quotes: .strict` it makes a bad record.
    @inlinable public func csv<T>(_ paths: [String], delimiter: Character = ",", header: Bool = true, multiLine: Bool = false,
                                  quotes: CSVQuotes = .lenient, parse: @escaping (CSVRecord) throws -> T?) -> Dataset<T> {
        Dataset(CSVSourceNode(paths: paths, delimiter: delimiter.asciiValue ?? UInt8(ascii: ","), hasHeader: header,
                              multiLine: multiLine, quotes: quotes, parse: parse, forward: CSVSourceNode.forwarding(parse)), graph)
    }

    /// JSON Lines files, each non-empty line decoded as `T`. A line that does not decode is a
    /// bad record (`--bad-records`), reported with its file and line.
    public func jsonLines<T: Decodable>(_ paths: [String], as type: T.Type = T.self) -> Dataset<T> {
        Dataset(JSONLinesNode<T>(paths: paths), graph)
    }

    /// CSV files as owned rows (the options as for `csv`).
    public func csvRows(_ paths: [String], delimiter: Character = ",", header: Bool = true, multiLine: Bool = false,
                        quotes: CSVQuotes = .lenient) -> Dataset<CSVRow> {
        csv(paths, delimiter: delimiter, header: header, multiLine: multiLine, quotes: quotes) { $0.toRow() }
    }

    /// In-memory records in `partitions` slices. The closure builds the array in every
    /// process, so it must build the same one each time.
    public func parallelize<T>(_ items: [T], partitions: Int = 4) -> Dataset<T> {
        graph.check(partitions: partitions, of: "parallelize")
        return Dataset(ParallelizeNode(items, slices: partitions), graph)
    }
}

/// A job's logical graph: its sources and actions, sealed with deterministic ids.
public final class JobGraph {
    private(set) var actions: [Action] = []
    private(set) var fileSources: [FileSourceLike] = []
    /// Every node in traversal order (parents before children).
    private(set) var nodes: [AnyNode] = []
    /// Every shuffle in traversal order.
    private(set) var shuffles: [ShuffleDependency] = []
    /// The first invalid operator argument (`top(-1)`, `partitions: 0`): operators do not
    /// throw, so `Job.graph` throws it once the job's closure has returned.
    private(set) var rejection: JobError?

    /// Records an invalid operator argument; the first one is thrown by `Job.graph`.
    @usableFromInline func reject(_ reason: String) {
        if rejection == nil { rejection = .badParameter(reason) }
    }

    /// Rejects a negative `take(n)`.
    @usableFromInline func check(limit: Int?) {
        if let limit, limit < 0 { reject("take(\(limit)): n must be at least 0") }
    }

    /// Rejects a partition count below 1 given to operator `op`.
    @usableFromInline func check(partitions: Int?, of op: String) {
        if let partitions, partitions < 1 { reject("\(op): partitions must be at least 1, got \(partitions)") }
    }

    @usableFromInline func add(_ action: Action) {
        action.index = actions.count
        actions.append(action)
    }

    func source<N: AnyNode>(_ node: N) -> N { node }

    /// Assigns node and shuffle ids by a depth-first traversal from the actions in order:
    /// the same graph gets the same ids in every process.
    func seal() {
        var seen = Set<ObjectIdentifier>()
        func visit(_ node: AnyNode) {
            guard seen.insert(ObjectIdentifier(node)).inserted else { return }
            for p in node.parents { visit(p) }
            node.id = nodes.count
            nodes.append(node)
            for s in node.shuffleDependencies {
                s.id = shuffles.count
                shuffles.append(s)
            }
        }
        for a in actions { visit(a.node) }
        fileSources = nodes.compactMap { $0 as? FileSourceLike }
    }
}

/// Marks the sources whose partitions are planned input splits (`PhysicalPlan.splits(of:)`).
protocol FileSourceLike: AnyNode {
    var paths: [String] { get }
    var splittable: Bool { get }
}

extension FileSourceNode: FileSourceLike {}
