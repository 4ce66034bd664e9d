#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a file's bytes are stored.
public enum InputFormat: UInt8, Sendable {
    case plain = 0, gzip = 1, archive = 2

    /// The format a path's extension announces.
    static func of(path: String) -> InputFormat {
        if ArchiveReader.isArchive(path: path) { return .archive }
        if path.hasSuffix(".gz") { return .gzip }
        return .plain
    }
}

/// A piece of one input file: a byte range of a plain file, a whole gzip file, or a range
/// of entries (by ordinal) of an archive.
public struct InputChunk: Sendable, Equatable {
    public var path: String
    public var format: InputFormat
    /// Byte range `[start, end)` for plain files; entry ordinals `[start, end)` for archives.
    public var start: Int64
    public var end: Int64
    /// Size on disk of the piece, for balancing and `explain`.
    public var bytes: Int64
    /// Size of the whole file.
    public var fileSize: Int64

    /// Whether the chunk is a whole plain file rather than a byte range of one.
    var isWholeFile: Bool { start == 0 && end >= fileSize }

    func encode(to w: inout ByteWriter) {
        w.writeString(path)
        w.write(format.rawValue)
        w.writeFixed(start)
        w.writeFixed(end)
        w.writeFixed(bytes)
        w.writeFixed(fileSize)
    }

    static func decode(from r: inout ByteReader) throws -> InputChunk {
        let path = try r.readString()
        guard let format = InputFormat(rawValue: try r.readByte()) else { throw CorruptDataError("bad input format") }
        return InputChunk(path: path, format: format, start: try r.readFixed(), end: try r.readFixed(),
                          bytes: try r.readFixed(), fileSize: try r.readFixed())
    }
}

/// The input of one source task: one or more chunks (small files are packed together).
public struct InputSplit: Sendable, Equatable {
    public var chunks: [InputChunk]
    public var bytes: Int64 { chunks.reduce(0) { $0 + $1.bytes } }

    func encode(to w: inout ByteWriter) {
        w.writeVarint(UInt64(chunks.count))
        for c in chunks { c.encode(to: &w) }
    }

    static func decode(from r: inout ByteReader) throws -> InputSplit {
        let n = try r.readVarint()
        var chunks: [InputChunk] = []
        for _ in 0..<n { chunks.append(try InputChunk.decode(from: &r)) }
        return InputSplit(chunks: chunks)
    }

    /// A one-line description for `explain`.
    var summary: String {
        if chunks.count == 1 {
            let c = chunks[0]
            switch c.format {
            case .plain where c.isWholeFile: return "\(c.path) (\(formatBytes(c.bytes)))"
            case .plain: return "\(c.path) [\(c.start), \(c.end))"
            case .gzip: return "\(c.path) (gzip, \(formatBytes(c.bytes)))"
            case .archive:
                return c.end == Int64.max ? "\(c.path) (archive)" : "\(c.path) (archive entries \(c.start)..<\(c.end))"
            }
        }
        return "\(chunks.count) files (\(formatBytes(bytes)))"
    }
}

/// Expands input paths (files, folders, globs) and cuts them into splits: big plain files
/// into line-aligned byte ranges of about `splitSize`, many small files packed together,
/// gzip files whole (gzip cannot be split).
public struct SplitPlanner: Sendable {
    /// The split size; nil: chosen per source from its size and the worker count
    /// (`automaticSplitSize`).
    public var splitSize: Int64?
    /// Workers the splits are for (used by the automatic size).
    public var workers: Int

    public init(splitSize: Int64? = nil, workers: Int = 2) {
        self.splitSize = splitSize.map { max(1, $0) }
        self.workers = max(1, workers)
    }

    /// The split size when none is given, after Spark's `maxSplitBytes` (4 MiB floor, input /
    /// parallelism, a cap), with three changes: two splits per worker, so a slow or retried
    /// task does not hold up a whole worker's share; the split count rounded up to a multiple
    /// of the worker count, so no worker gets one task more than the others; and a 256 MiB cap
    /// rather than 128 MiB. Big splits matter: each map task writes one partial result per
    /// distinct key, so fewer, larger tasks shuffle less, while a task's memory is bounded by
    /// its budget whatever its split's size (wordcount on 1 GB, 2 workers: 32 MiB splits
    /// 12.2 s, 128 MiB 9.8 s when first measured; 128 MiB 5.7–6.6 s, 256 MiB 5.4–6.3 s now).
    public static func automaticSplitSize(totalBytes: Int64, workers: Int) -> Int64 {
        let minimum: Int64 = 4 << 20, maximum: Int64 = 256 << 20
        let workers = Int64(max(1, workers))
        guard totalBytes > minimum else { return minimum }
        let size = min(maximum, max(minimum, (totalBytes + 2 * workers - 1) / (2 * workers)))
        let pieces = (totalBytes + size - 1) / size
        let balanced = (pieces + workers - 1) / workers * workers
        return max(minimum, (totalBytes + balanced - 1) / balanced)
    }

    /// Every file named by `paths`, in a deterministic order. Folders are listed recursively
    /// (hidden files and names starting with `_`, such as `_SUCCESS`, are skipped, as Hadoop
    /// does); globs are expanded. A path that matches nothing is an error naming it.
    public static func expand(_ paths: [String]) throws -> [(path: String, size: Int64)] {
        var result: [(String, Int64)] = []
        for path in paths {
            if path.contains(where: { "*?[".contains($0) }) {
                let matches = try glob(path)
                if matches.isEmpty { throw InputError(source: path, reason: "no file matches this pattern") }
                for m in matches { try collect(m, into: &result) }
            } else {
                try collect(path, into: &result)
            }
        }
        return result
    }

    private static func collect(_ path: String, into result: inout [(String, Int64)]) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw InputError(source: path, reason: "input not found: \(String(cString: strerror(errno)))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            guard let dir = opendir(path) else {
                throw InputError(source: path, reason: "cannot list folder: \(String(cString: strerror(errno)))")
            }
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if name.hasPrefix(".") || name.hasPrefix("_") { continue }
                names.append(name)
            }
            closedir(dir)
            for name in names.sorted() {
                try collect(path.hasSuffix("/") ? path + name : path + "/" + name, into: &result)
            }
        } else {
            guard access(path, R_OK) == 0 else {
                throw InputError(source: path, reason: "cannot read: \(String(cString: strerror(errno)))")
            }
            result.append((path, Int64(st.st_size)))
        }
    }

    private static func glob(_ pattern: String) throws -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        let rc = Glibc.glob(pattern, 0, nil, &g)
        if rc == GLOB_NOMATCH { return [] }
        guard rc == 0 else { throw InputError(source: pattern, reason: "cannot expand pattern") }
        return (0..<Int(g.gl_pathc)).compactMap { g.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// Cuts the files into splits.
    public func plan(_ paths: [String], splittable: Bool = true) throws -> [InputSplit] {
        var splits: [InputSplit] = []
        var pack: [InputChunk] = []
        var packBytes: Int64 = 0
        func flushPack() {
            if !pack.isEmpty { splits.append(InputSplit(chunks: pack)) }
            pack = []
            packBytes = 0
        }
        let files = try SplitPlanner.expand(paths)
        let splitSize = self.splitSize ?? SplitPlanner.automaticSplitSize(
            totalBytes: files.reduce(0) { $0 + $1.size }, workers: workers)
        for (path, size) in files {
            let format = InputFormat.of(path: path)
            switch format {
            case .plain where size > splitSize && splittable:
                flushPack()
                // Even pieces of about splitSize, so the last one is not a sliver.
                let pieces = (size + splitSize - 1) / splitSize
                let step = (size + pieces - 1) / pieces
                var start: Int64 = 0
                while start < size {
                    let end = min(size, start + step)
                    splits.append(InputSplit(chunks: [InputChunk(path: path, format: .plain, start: start, end: end, bytes: end - start, fileSize: size)]))
                    start = end
                }
            case .plain:
                if packBytes + size > splitSize { flushPack() }
                pack.append(InputChunk(path: path, format: .plain, start: 0, end: size, bytes: size, fileSize: size))
                packBytes += size
            case .gzip:
                flushPack()
                splits.append(InputSplit(chunks: [InputChunk(path: path, format: format, start: 0, end: size, bytes: size, fileSize: size)]))
            case .archive:
                // Entries are documents: group consecutive entries into splits of about
                // splitSize (uncompressed), so one archive of many entries feeds every worker.
                flushPack()
                let entries = try ArchiveReader.listEntries(path: path)
                var first = 0, bytes: Int64 = 0
                func cut(_ end: Int) {
                    guard end > first else { return }
                    let startIndex = Int64(entries[first].index)
                    let endIndex = end < entries.count ? Int64(entries[end].index) : Int64.max
                    splits.append(InputSplit(chunks: [InputChunk(path: path, format: .archive, start: startIndex, end: endIndex,
                                                                 bytes: max(bytes, 1), fileSize: size)]))
                    first = end
                    bytes = 0
                }
                for (i, e) in entries.enumerated() {
                    bytes += e.size ?? 0
                    if bytes >= splitSize { cut(i + 1) }
                }
                cut(entries.count)
            }
        }
        flushPack()
        return splits
    }
}

/// A byte count for people, in binary units with one decimal: `512 B`, `1.5 MiB` (the run
/// summary and `sluice report` print sizes this way).
public func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(n) B" : String(format1: v) + " " + units[u]
}

extension String {
    /// One decimal place, without Foundation.
    init(format1 v: Double) {
        let tenths = Int((v * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
