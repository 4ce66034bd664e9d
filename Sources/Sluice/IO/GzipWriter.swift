import CZlib

/// Compresses into a gzip file through zlib's deflate (level 6 by default), in 256 KiB
/// steps, for `--compress gzip` output (`part-NNNNN.gz`).
final class GzipWriter {
    private let out: OutputFile
    private let stream: UnsafeMutablePointer<z_stream>
    private let buffer: UnsafeMutablePointer<UInt8>
    private static let chunk = 256 << 10
    /// Uncompressed bytes written so far.
    private(set) var inputBytes: Int64 = 0

    init(path: String, level: Int32 = 6) throws {
        out = try OutputFile(path: path, mode: 0o644, durable: true)
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        buffer = .allocate(capacity: GzipWriter.chunk)
        // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
        guard deflateInit2_(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deallocate()
            buffer.deallocate()
            throw SystemError("cannot start gzip compression for \(path)", errno: 0)
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
        buffer.deallocate()
    }

    func write(_ raw: UnsafeRawBufferPointer) throws {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        inputBytes += Int64(raw.count)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(raw.count)
        try pump(flush: Z_NO_FLUSH)
    }

    private func pump(flush: Int32) throws {
        repeat {
            stream.pointee.next_out = buffer
            stream.pointee.avail_out = uInt(GzipWriter.chunk)
            let rc = deflate(stream, flush)
            guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                throw SystemError("gzip compression failed (zlib \(rc)) for \(out.path)", errno: 0)
            }
            let produced = GzipWriter.chunk - Int(stream.pointee.avail_out)
            if produced > 0 { try out.write(UnsafeRawBufferPointer(start: buffer, count: produced)) }
            if flush == Z_FINISH && rc == Z_STREAM_END { return }
        } while stream.pointee.avail_out == 0 || (flush == Z_FINISH)
    }

    /// Writes the gzip trailer and flushes the file; returns the compressed size.
    func finish() throws -> Int64 {
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        try pump(flush: Z_FINISH)
        try out.finish()
        return out.offset
    }
}
