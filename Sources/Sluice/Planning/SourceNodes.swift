import Foundation

/// A source whose partitions are input splits planned by the coordinator from the files on
/// disk and sent to every worker, so all processes agree on them (`PhysicalPlan.splits(of:)`).
@usableFromInline class FileSourceNode<T>: Node<T> {
    let paths: [String]

    init(op: String, paths: [String]) {
        self.paths = paths
        super.init(op: op, parents: [])
    }

    override func partitionCount(in plan: PhysicalPlan) -> Int { plan.splits(of: self).count }

    /// The input split a task reads as partition `partition`.
    func split(_ task: TaskContext, _ partition: Int) -> InputSplit { task.plan.splits(of: self)[partition] }

    /// Whether big plain files may be cut into byte ranges (line-oriented formats).
    var splittable: Bool { true }

    /// Every line of every file, read naively for the reference executor.
    func referenceLines() throws -> [(document: String, line: Bytes)] {
        var out: [(String, Bytes)] = []
        for (path, _) in try SplitPlanner.expand(paths) {
            let documents: [(String, [UInt8])]
            switch InputFormat.of(path: path) {
            case .plain: documents = [(path, try readAll(FileByteSource(path: path)))]
            case .gzip: documents = [(path, try readAll(GzipSource(path: path)))]
            case .archive:
                let archive = try ArchiveReader(path: path)
                var docs: [(String, [UInt8])] = []
                while let entry = try archive.nextEntry() {
                    guard entry.isRegularFile else { continue }
                    let source = archive.entrySource()
                    docs.append((source.name, try readAll(source)))
                }
                documents = docs
            }
            for (name, bytes) in documents {
                var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> Bytes in
                    line.last == 0x0D ? Bytes(line.dropLast()) : Bytes(line)
                }
                if bytes.last == 0x0A || bytes.isEmpty { lines.removeLast() }
                out += lines.map { (name, $0) }
            }
        }
        return out
    }
}

/// Reads a whole byte source into memory (reference executor and small side inputs only).
func readAll(_ source: ByteSource) throws -> [UInt8] {
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0) }
        if n == 0 { return out }
        out.append(contentsOf: chunk[0..<n])
    }
}

/// The lines of text files: `ctx.textFiles(...)`.
final class TextLinesNode: FileSourceNode<Bytes> {
    init(paths: [String]) { super.init(op: "textFiles", paths: paths) }

    override func compute(_ task: TaskContext, partition: Int, into sink: (Bytes) throws -> Void) throws {
        try SplitLineReader(task: task).forEachLine(split(task, partition), metrics: task.metrics) { _, line in
            try sink(Bytes(line))
        }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [Bytes] {
        try referenceLines().map(\.line)
    }
}

/// The lines of text files as borrowed views: `ctx.textLineViews(...)`.
final class TextLineViewsNode: FileSourceNode<ByteView> {
    init(paths: [String]) { super.init(op: "textLineViews", paths: paths) }

    override func compute(_ task: TaskContext, partition: Int, into sink: (ByteView) throws -> Void) throws {
        try SplitLineReader(task: task).forEachLine(split(task, partition), metrics: task.metrics) { _, line in
            try sink(ByteView(line))
        }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [ByteView] {
        try referenceLines().map { ByteView(ref.keep($0.line.storage)) }
    }
}

/// A line together with the document it comes from (a file, or `archive!entry`).
public struct DocumentLine: Sendable {
    /// The file path as listed, or `archive.tar.gz!path/in/archive`.
    public var document: String
    /// The line's bytes, without its newline.
    public var line: Bytes
}

/// The lines of text files with their document names: `ctx.documentLines(...)`.
final class DocumentLinesNode: FileSourceNode<DocumentLine> {
    init(paths: [String]) { super.init(op: "documentLines", paths: paths) }

    override func compute(_ task: TaskContext, partition: Int, into sink: (DocumentLine) throws -> Void) throws {
        try SplitLineReader(task: task).forEachLine(split(task, partition), metrics: task.metrics) { doc, line in
            try sink(DocumentLine(document: doc, line: Bytes(line)))
        }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [DocumentLine] {
        try referenceLines().map { DocumentLine(document: $0.document, line: $0.line) }
    }
}

/// In-memory records cut into `slices` partitions. The job's closure builds the same array
/// in every process, so only the slice number crosses the pipe.
final class ParallelizeNode<T>: Node<T> {
    let items: [T]
    let slices: Int

    init(_ items: [T], slices: Int) {
        self.items = items
        self.slices = max(1, slices)
        super.init(op: "parallelize", parents: [])
    }

    override func partitionCount(in plan: PhysicalPlan) -> Int { slices }

    override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        let lo = items.count * partition / slices
        let hi = items.count * (partition + 1) / slices
        for i in lo..<hi {
            task.metrics.recordsRead += 1
            try sink(items[i])
        }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [T] { items }
}

/// JSON Lines: each non-empty line decoded as `T` (Foundation's `JSONDecoder`). A line that
/// is not valid JSON for `T` is a bad record naming the file and line (or byte offset).
final class JSONLinesNode<T: Decodable>: FileSourceNode<T> {
    init(paths: [String]) { super.init(op: "jsonLines", paths: paths) }

    private static func decode(_ line: UnsafeRawBufferPointer, document: String, position: LinePosition,
                               decoder: JSONDecoder) throws -> T? {
        if line.allSatisfy({ Bytes.isWhitespace($0) }) { return nil }
        do {
            return try decoder.decode(T.self, from: Data(line))
        } catch let error as Swift.DecodingError {
            throw InputError(source: document, line: position.line, offset: position.line == nil ? position.offset : nil,
                             reason: "invalid JSON line: \(JSONLinesNode.explain(error))", skippable: true)
        } catch {
            throw InputError(source: document, line: position.line, offset: position.line == nil ? position.offset : nil,
                             reason: "invalid JSON line: \(error)", skippable: true)
        }
    }

    private static func explain(_ error: Swift.DecodingError) -> String {
        switch error {
        case .dataCorrupted(let c): return c.underlyingError.map { "\($0)" } ?? c.debugDescription
        case .keyNotFound(let key, _): return "missing field \"\(key.stringValue)\""
        case .typeMismatch(let type, let c):
            return "field \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\" is not a \(type)"
        case .valueNotFound(let type, let c):
            return "field \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\" is null, expected \(type)"
        @unknown default: return "\(error)"
        }
    }

    override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        let decoder = JSONDecoder()
        try SplitLineReader(task: task).forEachLine(split(task, partition), metrics: task.metrics) { doc, line, position in
            let value: T?
            do {
                value = try JSONLinesNode.decode(line, document: doc, position: position, decoder: decoder)
            } catch let error as InputError where task.skipBadRecords {
                task.recordBad(error)
                return
            }
            if let value { try sink(value) }
        }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [T] {
        let decoder = JSONDecoder()
        return try referenceLines().compactMap { doc, line in
            try? line.storage.withUnsafeBytes { try JSONLinesNode.decode($0, document: doc, position: LinePosition(offset: 0), decoder: decoder) }
        }.compactMap { $0 }
    }
}
