#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

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
    /// The largest automatic split size (`automaticSplitSize`).
    public var largestAutomaticSplit: Int64

    public init(splitSize: Int64? = nil, workers: Int = 2, largestAutomaticSplit: Int64 = SplitPlanner.largestSplit) {
        self.splitSize = splitSize.map { max(1, $0) }
        self.workers = max(1, workers)
        self.largestAutomaticSplit = largestAutomaticSplit
    }

    /// The automatic split size's cap: big splits matter where map tasks combine (below).
    public static let largestSplit: Int64 = 256 << 20
    /// The cap for a job whose shuffles all carry their records whole (sorts, joins,
    /// groupings): a map task's output is then about its input, so a bigger split saves no
    /// shuffle bytes but fills more memory — past the budget the task spills and writes its
    /// output twice. Sort of 1 GB, 2 workers, alternated runs: 256 MiB splits 5.0–6.9 s
    /// (system time 3.1–5.2 s), 64 MiB 4.2–4.6 s (1.6–2.0 s).
    public static let largestSplitWithoutCombining: Int64 = 64 << 20

    /// The split size when none is given, after Spark's `maxSplitBytes` (4 MiB floor, input /
    /// parallelism, a cap), with three changes: two splits per worker, so a slow or retried
    /// task does not hold up a whole worker's share; the split count rounded up to a multiple
    /// of the worker count, so no worker gets one task more than the others; and a 256 MiB cap
    /// rather than 128 MiB. Big splits matter: each map task writes one partial result per
    /// distinct key, so fewer, larger tasks shuffle less, while a task's memory is bounded by
    /// its budget whatever its split's size (wordcount on 1 GB, 2 workers: 32 MiB splits
    /// 12.2 s, 128 MiB 9.8 s when first measured; 128 MiB 5.7–6.6 s, 256 MiB 5.4–6.3 s now).
    public static func automaticSplitSize(totalBytes: Int64, workers: Int, largest: Int64 = largestSplit) -> Int64 {
        let minimum: Int64 = 4 << 20, maximum = max(minimum, largest)
        let workers = Int64(max(1, workers))
        guard totalBytes > minimum else { return minimum }
        let size = min(maximum, max(minimum, (totalBytes + 2 * workers - 1) / (2 * workers)))
        let pieces = (totalBytes + size - 1) / size
        let balanced = (pieces + workers - 1) / workers * workers
        return max(minimum, (totalBytes + balanced - 1) / balanced)
    }

    /// Every file named by `paths`, in a deterministic order. Folders are listed recursively
    /// (hidden files and names starting with `_`, such as `_SUCCESS`, are skipped, as Hadoop
    /// does), following symbolic links but skipping, with a warning, a link back to a folder it
    /// is in; globs are expanded, but a path that exists is taken as it is, glob characters
    /// and all. A path that matches nothing is an error naming it, and so is anything that is
    /// not a regular file or folder (a FIFO, a device, standard input): every worker opens its
    /// inputs itself, at its own offsets. A folder without files gives a warning.
    public static func expand(_ paths: [String]) throws -> [(path: String, size: Int64)] {
        var result: [(String, Int64)] = []
        for path in paths {
            if isPattern(path) && access(path, F_OK) != 0 {
                let matches = try glob(path)
                if matches.isEmpty { throw InputError(source: path, reason: "no file matches this pattern") }
                for m in matches { try collectInput(m, into: &result) }
            } else {
                try collectInput(path, into: &result)
            }
        }
        return result
    }

    /// Receives expansion's warnings (an empty folder, a skipped symbolic-link loop); by
    /// default they are written to stderr as `warning: …` lines.
    public static var warningHandler: @Sendable (String) -> Void {
        get { warningSink.withLock { $0 } }
        set { warningSink.withLock { $0 = newValue } }
    }

    private static let warningSink = Mutex<@Sendable (String) -> Void>({ message in
        let line = Array("warning: \(message)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    })

    static func isPattern(_ path: String) -> Bool { path.contains(where: { "*?[".contains($0) }) }

    /// Names that mean a different file in every process: workers would read their own.
    private static let perProcessPaths = ["-", "/dev/stdin", "/dev/fd/", "/proc/self/", "/proc/thread-self/"]

    /// One path the user named (or a glob matched): its files, with a warning when it is a
    /// folder without any.
    private static func collectInput(_ path: String, into result: inout [(String, Int64)]) throws {
        if perProcessPaths.contains(where: { $0.hasSuffix("/") ? path.hasPrefix($0) : path == $0 }) {
            throw InputError(source: path, reason: "standard input and other file descriptors cannot be inputs (each worker process "
                             + "would open its own): save the data to a file and give its path")
        }
        let before = result.count
        var folders: [FileIdentity] = []
        try collect(path, inFolder: false, folders: &folders, into: &result)
        var st = stat()
        if result.count == before, stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            warningHandler("input folder \(path) has no files (names starting with . or _ are skipped)")
        }
    }

    private struct FileIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    /// Adds the file at `path`, or the files under the folder at `path`; `folders` are the
    /// folders being listed, to recognise a symbolic link back to one of them.
    private static func collect(_ path: String, inFolder: Bool, folders: inout [FileIdentity],
                                into result: inout [(String, Int64)]) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if inFolder && errno == ELOOP {
                warningHandler("skipping \(path): a loop of symbolic links")
                return
            }
            throw InputError(source: path, reason: "input not found: \(String(cString: strerror(errno)))")
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            let identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            if folders.contains(identity) {
                warningHandler("skipping \(path): a symbolic link to a folder it is in (a loop)")
                return
            }
            folders.append(identity)
            defer { folders.removeLast() }
            for name in try listFolder(path) {
                try collect(path.hasSuffix("/") ? path + name : path + "/" + name, inFolder: true, folders: &folders, into: &result)
            }
        case S_IFREG:
            guard access(path, R_OK) == 0 else {
                throw InputError(source: path, reason: "cannot read: \(String(cString: strerror(errno)))")
            }
            result.append((path, Int64(st.st_size)))
        case let kind:
            let what = [S_IFIFO: "a FIFO (named pipe)", S_IFCHR: "a character device", S_IFBLK: "a block device",
                        S_IFSOCK: "a socket"][kind] ?? "not a regular file"
            throw InputError(source: path, reason: "\(what), not a regular file or folder: every worker opens its inputs "
                             + "itself, at its own offsets; save the data to a file first")
        }
    }

    /// The names in a folder, sorted, without hidden and `_` names.
    private static func listFolder(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw InputError(source: path, reason: "cannot list folder: \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix(".") || name.hasPrefix("_") { continue }
            names.append(name)
        }
        return names.sorted()
    }

    private static func glob(_ pattern: String) throws -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        let rc = Glibc.glob(pattern, 0, nil, &g)
        if rc == GLOB_NOMATCH { return [] }
        guard rc == 0 else { throw InputError(source: pattern, reason: "cannot expand pattern") }
        return (0..<Int(g.gl_pathc)).compactMap { g.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// Refuses an output folder that is an input, lies inside an input folder (a later run
    /// would read the output as input) or contains an input (`--overwrite` would delete it).
    static func checkOutput(_ output: String, against inputs: [String]) throws {
        let out = resolvedPath(output)
        for input in inputs {
            let literal = !isPattern(input) || access(input, F_OK) == 0
            if !literal && fnmatch(input, output, FNM_PATHNAME) == 0 {
                throw JobError.badParameter("output folder \(output) matches input pattern \(input): a later run would read the output as input")
            }
            for path in literal ? [input] : try glob(input) {
                let inp = resolvedPath(path)
                if out == inp {
                    throw JobError.badParameter("output folder \(output) is the input \(path)")
                } else if out.hasPrefix(inp == "/" ? inp : inp + "/") {
                    throw JobError.badParameter("output folder \(output) is inside input folder \(path): a later run would read the output as input")
                } else if inp.hasPrefix(out == "/" ? out : out + "/") {
                    throw JobError.badParameter("input \(path) is inside output folder \(output), which --overwrite would replace")
                }
            }
        }
    }

    /// `path` made absolute with symbolic links resolved, as far as it exists; the rest
    /// (not created yet) is appended as written.
    static func resolvedPath(_ path: String) -> String {
        var head = path.isEmpty ? "." : path
        var tail: [Substring] = []
        while true {
            if let real = realpath(head, nil) {
                var result = String(cString: real)
                free(real)
                for part in tail.reversed() where !part.isEmpty && part != "." {
                    result += (result.hasSuffix("/") ? "" : "/") + part
                }
                return result
            }
            guard let slash = head.lastIndex(of: "/") else {
                if head == "." { return path }
                tail.append(Substring(head))
                head = "."
                continue
            }
            tail.append(head[head.index(after: slash)...])
            head = slash == head.startIndex ? "/" : String(head[..<slash])
        }
    }

    /// About the most splits `plan` cuts one source into: a smaller split size is raised to
    /// `total / maxSplits`, so that a tiny one (1 byte) cannot make millions of tasks.
    public static let maxSplits: Int64 = 100_000

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
        let total = files.reduce(0) { $0 + $1.size }
        let automatic = SplitPlanner.automaticSplitSize(totalBytes: total, workers: workers, largest: largestAutomaticSplit)
        let splitSize = max(self.splitSize ?? automatic,
                            1, (total + SplitPlanner.maxSplits - 1) / SplitPlanner.maxSplits)
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
