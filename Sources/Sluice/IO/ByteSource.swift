#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A stream of raw bytes read in large chunks: a file, a byte range of a file, a
/// decompressed gzip stream or one entry of an archive.
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes into `buffer`; returns 0 at the end of the stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Where the bytes come from, for error messages (`file.tar.gz!entry`).
    var name: String { get }
}

/// An error in the input data or while reading it, naming the file (and archive entry)
/// and, where known, the line or byte offset at fault.
public struct InputError: Error, CustomStringConvertible, Sendable {
    /// The file, or `archive!entry`.
    public var source: String
    /// 1-based line number, when known.
    public var line: Int?
    /// Byte offset in the (decompressed) stream, when known.
    public var offset: Int64?
    /// What is wrong.
    public var reason: String
    /// Whether the error is one malformed record — a CSV row, a field that does not parse, a
    /// JSON line — that `--bad-records skip` would skip. False for what skipping cannot help:
    /// a file that cannot be read, a truncated or oversized compressed stream, a missing column.
    public var skippable: Bool

    public init(source: String, line: Int? = nil, offset: Int64? = nil, reason: String, skippable: Bool = false) {
        self.source = source
        self.line = line
        self.offset = offset
        self.reason = reason
        self.skippable = skippable
    }

    public var description: String {
        var place = source
        if let line { place += ":\(line)" } else if let offset { place += " at byte \(offset)" }
        return "\(place): \(reason)"
    }

    /// What a job stopped by this error reports: the description and, when skipping would
    /// help, how to skip such records.
    public var failureDescription: String {
        skippable ? description + "; use --bad-records skip to skip malformed records" : description
    }
}

/// Reads a file, or the byte range `[start, end)` of it, with plain `read(2)` calls.
public final class FileByteSource: ByteSource {
    public let name: String
    private let fd: Int32
    private var remaining: Int64

    /// Opens `path`; reads from `start` up to `end` (or the end of the file when `nil`).
    public init(path: String, start: Int64 = 0, end: Int64? = nil) throws {
        name = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw InputError(source: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        if start > 0, lseek(fd, off_t(start), SEEK_SET) < 0 {
            let message = String(cString: strerror(errno))
            close(fd)
            throw InputError(source: path, reason: "cannot seek to \(start): \(message)")
        }
        remaining = end.map { $0 - start } ?? Int64.max
    }

    deinit { close(fd) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if remaining <= 0 { return 0 }
        let want = Int(min(Int64(buffer.count), remaining))
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, want)
            if n >= 0 {
                remaining -= Int64(n)
                TaskProgress.advance()
                return n
            }
            if errno == EINTR { continue }
            throw InputError(source: name, reason: "read failed: \(String(cString: strerror(errno)))")
        }
    }
}
