#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib

/// Streams the decompressed bytes of a gzip file (RFC 1952) read from another
/// `ByteSource`, through zlib's `inflate`.
///
/// - Only a 1 MiB input buffer is held; output is inflated straight into the caller's
///   buffer, so memory use is constant whatever the file size.
/// - Multi-member files (`cat a.gz b.gz > ab.gz`, bgzip, pigz -i) are decompressed as one
///   stream: after a member ends, the next one must start with the gzip magic `1f 8b`.
/// - Errors are `InputError`s naming the source. Their `offset` is always the number of
///   *uncompressed* bytes produced before the fault; the reason also gives the
///   *compressed* offset. Cases: a stream that ends early ("truncated gzip stream"),
///   corrupt data or a CRC/length mismatch ("corrupt gzip data: <zlib message>"), bytes
///   after a member that are not another gzip member ("corrupt gzip data: trailing
///   garbage ..."), and output beyond `maxExpandedBytes` ("decompression bomb guard: ...").
///   An empty file is reported as truncated. Bytes decoded before a fault are returned first
///   (except past the bomb guard); the following `read` throws, and so does every later one.
///
/// Not thread-safe: use one instance from one task at a time.
public final class GzipSource: ByteSource {
    /// The default cap on decompressed output: 64 GiB.
    public static let defaultMaxExpandedBytes: Int64 = 64 << 30
    /// Size of the compressed-input buffer.
    static let inputBufferSize = 1 << 20

    public let name: String
    /// Decompressing beyond this many bytes throws (decompression bomb guard); `Int64.max`
    /// means no limit.
    public let maxExpandedBytes: Int64

    private let underlying: ByteSource
    /// Heap-allocated: zlib keeps a back pointer to the stream and checks it on every call.
    private let stream: UnsafeMutablePointer<z_stream>
    private let input: UnsafeMutableRawBufferPointer
    private var inputEOF = false
    /// Inside a member (`true`) or just after one ended (`false`).
    private var inMember = true
    private var finished = false
    private var failure: InputError?
    /// Uncompressed bytes produced so far.
    private var produced: Int64 = 0
    /// Compressed bytes consumed by inflate so far.
    private var consumed: Int64 = 0

    /// Decompresses `underlying`; `name` is used in error messages (usually the file path).
    public init(underlying: ByteSource, name: String,
                maxExpandedBytes: Int64 = GzipSource.defaultMaxExpandedBytes) throws {
        // Set zlib up before initialising `self` completely, so that deinit never sees a
        // half-made stream.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 + 32: 32 KiB window, accept gzip (or zlib) headers automatically.
        let status = inflateInit2_(stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        if status != Z_OK {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw InputError(source: name, reason: "cannot initialise zlib (inflateInit2 returned \(status))")
        }
        self.stream = stream
        self.underlying = underlying
        self.name = name
        self.maxExpandedBytes = max(0, maxExpandedBytes)
        input = .allocate(byteCount: GzipSource.inputBufferSize, alignment: 16)
    }

    /// Opens and decompresses the gzip file at `path`.
    public convenience init(path: String, maxExpandedBytes: Int64 = GzipSource.defaultMaxExpandedBytes) throws {
        try self.init(underlying: FileByteSource(path: path), name: path, maxExpandedBytes: maxExpandedBytes)
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        input.deallocate()
    }

    /// `true` when the file name ends in `.gz` or `.gzip` (case-insensitive) and is not a
    /// compressed tar archive (`.tar.gz`, see `ArchiveReader.isArchive(path:)`).
    public static func isGzip(path: String) -> Bool {
        let lower = path.lowercased()
        return (lower.hasSuffix(".gz") || lower.hasSuffix(".gzip")) && !lower.hasSuffix(".tar.gz")
    }

    /// `true` when the file at `path` starts with the gzip magic bytes `1f 8b`.
    public static func looksLikeGzip(path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        var magic: (UInt8, UInt8) = (0, 0)
        let n = withUnsafeMutableBytes(of: &magic) { pread(fd, $0.baseAddress, 2, 0) }
        return n == 2 && magic.0 == 0x1f && magic.1 == 0x8b
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let failure { throw failure }
        if finished || buffer.isEmpty { return 0 }
        var filled = 0
        do {
            try inflate(into: buffer, filled: &filled)
        } catch let error as InputError {
            // Hand out the bytes decoded before the fault first; the next call throws.
            failure = error
            if filled > 0 { return filled }
            throw error
        }
        return filled
    }

    /// Inflates into `buffer` until it is full or the stream ends; `filled` counts the bytes
    /// written, also when an error is thrown.
    private func inflate(into buffer: UnsafeMutableRawBufferPointer, filled: inout Int) throws {
        let out = buffer.baseAddress!
        while filled < buffer.count {
            if !inMember {
                // A member just ended: end of file, or another member must follow.
                try fillInput(atLeast: 2)
                let available = Int(stream.pointee.avail_in)
                if available == 0 {
                    finished = true
                    return
                }
                let next = stream.pointee.next_in!
                if available < 2 || next[0] != 0x1f || next[1] != 0x8b {
                    throw error("corrupt gzip data: trailing garbage after gzip member")
                }
                inflateReset(stream)
                inMember = true
            }
            if stream.pointee.avail_in == 0 && !inputEOF {
                try fillInput(atLeast: 1)
            }
            // Allow at most one byte past the limit, so that the guard trips exactly.
            let room = min(buffer.count - filled, Int(UInt32.max),
                           Int(clamping: min(maxExpandedBytes - produced, Int64.max - 1) + 1))
            stream.pointee.next_out = (out + filled).assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = UInt32(room)
            let inBefore = stream.pointee.avail_in
            let status = CZlib.inflate(stream, Z_NO_FLUSH)
            let n = room - Int(stream.pointee.avail_out)
            filled += n
            produced += Int64(n)
            consumed += Int64(inBefore - stream.pointee.avail_in)
            if produced > maxExpandedBytes {
                filled = 0  // nothing of a bomb is handed out
                throw error("decompression bomb guard: expands beyond \(maxExpandedBytes) bytes")
            }
            switch status {
            case Z_OK:
                continue
            case Z_STREAM_END:
                inMember = false
            case Z_BUF_ERROR:
                // No progress possible: inflate needs more input.
                if stream.pointee.avail_in == 0 {
                    if inputEOF {
                        throw error("truncated gzip stream")
                    }
                    continue
                }
                throw error("corrupt gzip data: inflate made no progress")
            case Z_MEM_ERROR:
                throw error("out of memory while decompressing")
            default:  // Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw error("corrupt gzip data: \(message)")
            }
        }
    }

    /// Makes at least `minimum` bytes of compressed input available unless the underlying
    /// source ends first. Keeps unconsumed bytes, moving them to the buffer start.
    private func fillInput(atLeast minimum: Int) throws {
        var available = Int(stream.pointee.avail_in)
        if available >= minimum || inputEOF { return }
        let base = input.baseAddress!
        if available > 0, let next = stream.pointee.next_in, UnsafeMutableRawPointer(next) != base {
            memmove(base, next, available)
        }
        while available < minimum && !inputEOF {
            let n = try underlying.read(into: UnsafeMutableRawBufferPointer(
                start: base + available, count: input.count - available))
            if n == 0 { inputEOF = true } else { available += n }
        }
        stream.pointee.next_in = base.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_in = UInt32(available)
    }

    private func error(_ reason: String) -> InputError {
        InputError(source: name, offset: produced,
                   reason: "\(reason) [uncompressed offset \(produced), compressed offset \(consumed)]")
    }
}
