#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// CSV (or TSV) files parsed record by record straight into the user's type: the parse
/// closure sees a borrowed `CSVRecord` (no allocation per record) and returns a value, or
/// nil to drop the record. Gzip files and archive entries are read whole, so their quoted
/// fields may hold newlines. Plain files follow `multiLine`: when false (the default, as in
/// Spark) a record never spans lines, so big files are split into line-aligned byte ranges
/// and every split gets the file's header; when true quoted fields may hold newlines and
/// each file is read whole by one task.
@usableFromInline final class CSVSourceNode<T>: FileSourceNode<T> {
    /// Parses one record and pushes the value on: built in the `@inlinable` `JobContext.csv`,
    /// so it runs specialised for `T` (a method of this generic class would handle every
    /// `T?` through runtime metadata: measured 10 % of eventsum's map time).
    @usableFromInline typealias Forward = (CSVRecord, TaskContext, (T) throws -> Void) throws -> Void
    let delimiter: UInt8
    let hasHeader: Bool
    let multiLine: Bool
    let quotes: CSVQuotes
    let parse: (CSVRecord) throws -> T?
    let forward: Forward

    @usableFromInline init(paths: [String], delimiter: UInt8, hasHeader: Bool, multiLine: Bool, quotes: CSVQuotes,
                           parse: @escaping (CSVRecord) throws -> T?, forward: @escaping Forward) {
        self.delimiter = delimiter
        self.hasHeader = hasHeader
        self.multiLine = multiLine
        self.quotes = quotes
        self.parse = parse
        self.forward = forward
        super.init(op: "csv", paths: paths)
    }

    /// The per-record step of `forward`: parse, skip a bad record when the policy allows, push.
    @inlinable static func forwarding(_ parse: @escaping (CSVRecord) throws -> T?) -> Forward {
        { record, task, sink in
            let value: T?
            do {
                value = try parse(record)
            } catch let error as InputError where task.skipBadRecords {
                task.recordBad(error)
                return
            }
            if let value { try sink(value) }
        }
    }

    override var splittable: Bool { !multiLine }

    /// A reader of one CSV document; `multiLine` says whether its quoted fields may span lines.
    private func reader(_ source: ByteSource, multiLine: Bool, maxRecordBytes: Int = .max) throws -> CSVReader {
        try CSVReader(source, delimiter: delimiter, hasHeader: hasHeader, quotes: quotes, multiLine: multiLine,
                      maxRecordBytes: maxRecordBytes)
    }

    /// Whether quoted fields in a document of `format` may span lines: always in a gzip
    /// stream or an archive entry (read whole), in a plain file as `multiLine` says.
    private func readsMultiLine(_ format: InputFormat) -> Bool { format != .plain || multiLine }

    /// Reads one CSV document (a whole file, a byte range, a gzip stream or an archive entry).
    private func read(_ source: ByteSource, multiLine: Bool, _ task: TaskContext, _ sink: (T) throws -> Void) throws {
        let reader = try reader(source, multiLine: multiLine, maxRecordBytes: task.maxRecordBytes)
        let forward = self.forward
        var records = 0
        defer { task.metrics.recordsRead += records }
        try reader.readAll({ record in
            records &+= 1
            try forward(record, task, sink)
        }, onBadRecord: { error in
            guard task.skipBadRecords else { throw error }
            records &+= 1
            task.recordBad(error)
        })
    }

    override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        for chunk in split(task, partition).chunks {
            let multiLine = readsMultiLine(chunk.format)
            switch chunk.format {
            case .plain where !chunk.isWholeFile:
                try readRange(chunk, task, sink)
            case .plain:
                try read(try FileByteSource(path: chunk.path), multiLine: multiLine, task, sink)
            case .gzip:
                let source = try GzipSource(path: chunk.path, maxExpandedBytes: task.maxExpandedBytes)
                try read(source, multiLine: multiLine, task, sink)
            case .archive:
                let archive = try ArchiveReader(path: chunk.path, maxEntryBytes: task.maxExpandedBytes)
                var entry = try archive.skip(to: Int(clamping: chunk.start))
                while let current = entry, Int64(current.index) < chunk.end {
                    try read(archive.entrySource(), multiLine: multiLine, task, sink)
                    entry = try archive.nextEntry()
                }
            }
        }
    }

    /// A line-aligned byte range of a big file, read one line per record as the whole file
    /// would be; the header comes from the file's first line.
    private func readRange(_ chunk: InputChunk, _ task: TaskContext, _ sink: (T) throws -> Void) throws {
        let start = chunk.start == 0 ? 0 : try lineStart(atOrAfter: chunk.start, in: chunk.path)
        let end = try lineStart(atOrAfter: chunk.end, in: chunk.path)
        guard start < end else { return }
        let body = try FileByteSource(path: chunk.path, start: start, end: end)
        let source: ByteSource
        if hasHeader && start > 0 {
            var header: [UInt8] = []
            do {
                try LineReader(capacity: 1 << 16, maxLine: task.maxRecordBytes).forEachLine(try FileByteSource(path: chunk.path)) { line, _ in
                    header = Array(line) + [0x0A]
                    throw StopPipeline()
                }
            } catch is StopPipeline {}
            source = ConcatenatedSource(prefix: header, rest: body, name: "\(chunk.path) (split from byte \(start); line 1 is the header)")
        } else {
            source = body
        }
        try read(source, multiLine: false, task, sink)
    }

    /// The offset of the first line that starts at or after `offset` (the file size if none).
    private func lineStart(atOrAfter offset: Int64, in path: String) throws -> Int64 {
        if offset == 0 { return 0 }
        let source = try FileByteSource(path: path, start: offset - 1)
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var at = offset - 1
        while true {
            let n = try buf.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { return at }
            if let i = buf[0..<n].firstIndex(of: 0x0A) { return at + Int64(i) + 1 }
            at += Int64(n)
        }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [T] {
        var out: [T] = []
        for (path, _) in try SplitPlanner.expand(paths) {
            var documents: [[UInt8]] = []
            let format = InputFormat.of(path: path)
            switch format {
            case .plain: documents = [try readAll(FileByteSource(path: path))]
            case .gzip: documents = [try readAll(GzipSource(path: path))]
            case .archive:
                let archive = try ArchiveReader(path: path)
                while let entry = try archive.nextEntry() {
                    if entry.isRegularFile { documents.append(try readAll(archive.entrySource())) }
                }
            }
            for var document in documents {
                // Read whole into one buffer that never moves, and kept with every view of its
                // records, so records may hold borrowed fields (`view`, `tabJoined`).
                if let last = document.last, last != 0x0A { document.append(0x0A) }
                let reader = try CSVReader(MemorySource(bytes: document, name: path), delimiter: delimiter, hasHeader: hasHeader,
                                           quotes: quotes, multiLine: readsMultiLine(format), chunkSize: document.count + 1)
                reader.arena.keepsAll = true
                ref.retain(reader)
                // The reference skips bad records (the engine's skip policy) and keeps the rest.
                try reader.readAll({ r in
                    if let t = try? parse(r) { out.append(t) }
                }, onBadRecord: { _ in })
            }
        }
        return out
    }
}

/// Bytes in memory as a source.
final class MemorySource: ByteSource {
    let name: String
    private let bytes: [UInt8]
    private var position = 0
    init(bytes: [UInt8], name: String) {
        self.bytes = bytes
        self.name = name
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - position)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[position..<position + n])) }
        position += n
        return n
    }
}

/// A few bytes (a header line) followed by another source.
package final class ConcatenatedSource: ByteSource {
    package let name: String
    private let prefix: MemorySource
    private let rest: ByteSource
    private var inPrefix = true
    package init(prefix: [UInt8], rest: ByteSource, name: String) {
        self.prefix = MemorySource(bytes: prefix, name: name)
        self.rest = rest
        self.name = name
    }
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if inPrefix {
            let n = try prefix.read(into: buffer)
            if n > 0 { return n }
            inPrefix = false
        }
        return try rest.read(into: buffer)
    }
}
