#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib
import CSluiceSys

/// The on-disk layout of shuffle and spill data.
///
/// Records are binary (`BinaryCodable`) and grouped into blocks of about `targetSize`
/// bytes. Each block starts with a 12-byte header — payload length, record count, CRC-32 of
/// the payload — so a truncated or corrupt file is detected, never silently read.
///
/// A *partitioned file* (one per map task, Spark's layout: one data file instead of M×R small
/// files) holds the blocks of partition 0, then 1, … R-1, then an index of R+1 offsets, then a
/// 16-byte footer: R (u32), CRC-32 of the index (u32), magic (u64).
@usableFromInline package enum BlockFormat {
    @usableFromInline package static let headerSize = 12
    @usableFromInline package static let targetSize = 64 << 10
    package static let magic: UInt64 = 0x534C_5549_4345_5331 // "SLUICES1"
    package static let footerSize = 16

    /// CRC-32 of `raw`: zlib's for blocks, a table-slicing one (same polynomial, same result)
    /// for short buffers such as event-log records, where zlib's setup per call costs most.
    package static func crc(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = raw.baseAddress, raw.count > 0 else { return 0 }
        if raw.count < 1024 { return sluice_crc32_short(base, raw.count) }
        return UInt32(crc32(0, base.assumingMemoryBound(to: Bytef.self), uInt(raw.count)))
    }
}

/// Raised when shuffle or spill data is missing, truncated or fails its checksum. For a map
/// output this is Spark's FetchFailed: the producing map task must run again.
struct ShuffleDataError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    /// The shuffle and map task whose output is bad, when the file is a map output.
    var shuffle: Int?
    var mapTask: Int?
    var description: String { "shuffle data \(path): \(reason)" }
}

/// Encodes records into blocks in memory. Several of these (one per partition) feed a
/// partitioned file; one alone feeds a spill stream.
@usableFromInline struct BlockBuffer {
    /// Complete blocks plus the open one.
    @usableFromInline var bytes = ByteWriter()
    @usableFromInline var openStart = -1
    @usableFromInline var openRecords: UInt32 = 0
    /// Records in this buffer.
    @usableFromInline var records = 0

    @usableFromInline init() {}

    var isEmpty: Bool { bytes.count == 0 }

    /// Appends one record, encoded by `encode`.
    @inlinable @inline(__always) mutating func append(_ encode: (inout ByteWriter) -> Void) {
        if openStart < 0 {
            openStart = bytes.count
            bytes.write(contentsOf: repeatElement(0, count: BlockFormat.headerSize))
        }
        encode(&bytes)
        openRecords += 1
        records += 1
        if bytes.count - openStart >= BlockFormat.targetSize { seal() }
    }

    /// Closes the open block by writing its header.
    @usableFromInline mutating func seal() {
        guard openStart >= 0 else { return }
        let payloadStart = openStart + BlockFormat.headerSize
        let length = UInt32(bytes.count - payloadStart)
        let crc = bytes.bytes.withUnsafeBytes { BlockFormat.crc(UnsafeRawBufferPointer(rebasing: $0[payloadStart...])) }
        bytes.patchFixed(length, at: openStart)
        bytes.patchFixed(openRecords, at: openStart + 4)
        bytes.patchFixed(crc, at: openStart + 8)
        openStart = -1
        openRecords = 0
    }

    /// Empties the buffer, keeping its capacity for the next records.
    mutating func clear() {
        bytes.removeAll()
        openStart = -1
        openRecords = 0
        records = 0
    }

    /// Seals, hands out the bytes and empties the buffer.
    mutating func take() -> [UInt8] {
        seal()
        let out = bytes.bytes
        bytes = ByteWriter()
        records = 0
        return out
    }
}

/// A file opened for writing with large buffered writes.
@usableFromInline package final class OutputFile {
    package let path: String
    private var fd: Int32
    // Touched for every line a result task writes: no dynamic exclusivity checks (they were
    // 4 % of a join's CPU time).
    @exclusivity(unchecked) private var buffer = ByteWriter(capacity: 1 << 20)
    @exclusivity(unchecked) package private(set) var offset: Int64 = 0
    /// How far the disk was asked to catch up (write-behind).
    private var writebackStarted: Int64 = 0
    private let durable: Bool

    /// Creates `path`; `mode` is `0600` for work files (shuffle data, spills: nobody else's to
    /// read), `0644` (less the umask) for output the user will share.
    ///
    /// A `durable` file (committed output) is on disk when `finish` returns (`fsync`). So that
    /// this costs no waiting, the disk is asked to start writing every 8 MiB as the file grows
    /// (write-behind); the closing `fsync` then waits for the tail only. Work files (shuffle
    /// data, spills) are not durable: they are checksummed, and one that a machine's crash
    /// damaged fails its check and is recomputed, as a lost one is.
    package init(path: String, mode: mode_t = 0o600, durable: Bool = false) throws {
        self.path = path
        self.durable = durable
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("cannot create \(path)") }
    }

    deinit { if fd >= 0 { close(fd) } }

    package func write(_ raw: UnsafeRawBufferPointer) throws {
        if buffer.count + raw.count > (1 << 20) { try flush() }
        if raw.count >= (1 << 20) {
            try writeFully(raw)
            offset += Int64(raw.count)
            startWriteback()
        } else {
            buffer.write(raw: raw)
            offset += Int64(raw.count)
        }
    }

    package func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    package func flush() throws {
        guard buffer.count > 0 else { return }
        try buffer.bytes.withUnsafeBytes { try writeFully($0) }
        buffer.removeAll()
        startWriteback()
    }

    /// For a durable file, asks the disk to start writing what the kernel has been handed,
    /// every 8 MiB of it.
    private func startWriteback() {
        let handed = offset - Int64(buffer.count)
        guard durable, handed - writebackStarted >= 8 << 20 else { return }
        sluice_start_writeback(fd, writebackStarted, handed - writebackStarted)
        writebackStarted = handed
    }

    private func writeFully(_ raw: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("cannot write \(path)")
            }
            TaskProgress.advance()
            done += n
        }
    }

    /// Flushes and closes; a `durable` file is then on disk (`fsync`) before it is committed by
    /// rename. Closing first matters on NFS, which sends a file's data to the server (and
    /// reports a full disk) at `close`: another node then reads it whole once it is renamed.
    package func finish() throws {
        try flush()
        if durable && fsync(fd) != 0 { throw SystemError("cannot sync \(path)") }
        let closed = close(fd)
        fd = -1
        if closed != 0 { throw SystemError("cannot write \(path)") }
    }
}

/// An error from a system call, with `strerror` appended.
package struct SystemError: Error, CustomStringConvertible {
    package var description: String
    /// The `errno` value.
    package var code: Int32
    package init(_ what: String, errno code: Int32 = errno) {
        self.code = code
        description = "\(what): \(String(cString: strerror(code)))"
    }

    /// The disk (or the user's quota) is full: retrying on this machine cannot help.
    package var isDiskFull: Bool { code == ENOSPC || code == EDQUOT }
}

/// Reads the blocks of a byte range of a file, verifying each block's checksum, and hands out
/// one block payload at a time.
@usableFromInline final class BlockFileReader {
    let path: String
    private let fd: Int32
    let size: Int64
    private var payload: UnsafeMutableRawBufferPointer = .allocate(byteCount: BlockFormat.targetSize * 2, alignment: 16)
    var shuffle: Int?
    var mapTask: Int?

    @usableFromInline init(path: String, shuffle: Int? = nil, mapTask: Int? = nil) throws {
        self.path = path
        self.shuffle = shuffle
        self.mapTask = mapTask
        var fd = open(path, O_RDONLY | O_CLOEXEC)
        // A committed map output that is not there yet may be a network filesystem's cached
        // lookup (NFS keeps negative entries for a while): look again briefly before calling
        // it lost.
        var tries = 0
        while fd < 0 && errno == ENOENT && shuffle != nil && tries < 10 {
            usleep(100_000)
            tries += 1
            fd = open(path, O_RDONLY | O_CLOEXEC)
        }
        guard fd >= 0 else {
            throw ShuffleDataError(path: path, reason: "missing (\(String(cString: strerror(errno))))", shuffle: shuffle, mapTask: mapTask)
        }
        self.fd = fd
        var st = stat()
        fstat(fd, &st)
        size = Int64(st.st_size)
    }

    deinit {
        close(fd)
        payload.deallocate()
    }

    func fail(_ reason: String) -> ShuffleDataError {
        ShuffleDataError(path: path, reason: reason, shuffle: shuffle, mapTask: mapTask)
    }

    @usableFromInline func readExactly(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + Int64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("read error: \(String(cString: strerror(errno)))")
            }
            TaskProgress.advance()
            if n == 0 { throw fail("truncated at byte \(offset + Int64(done))") }
            done += n
        }
    }

    /// Maps `count` bytes of the file from `offset` (a multiple of the page size) read-only
    /// over the pages at `address`, replacing what was there; false if the kernel refused.
    func map(_ count: Int, from offset: Int64, at address: UnsafeMutableRawPointer) -> Bool {
        let p = mmap(address, count, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, off_t(offset))
        return p != MAP_FAILED
    }

    /// The index of a partitioned file: R+1 offsets.
    @usableFromInline func readIndex(expectedPartitions: Int) throws -> [Int64] {
        guard size >= Int64(BlockFormat.footerSize) else { throw fail("truncated (no footer)") }
        var footer = [UInt8](repeating: 0, count: BlockFormat.footerSize)
        try footer.withUnsafeMutableBytes { try readExactly($0, at: size - Int64(BlockFormat.footerSize)) }
        let (r, crc, magic) = footer.withUnsafeBytes {
            ($0.loadUnaligned(fromByteOffset: 0, as: UInt32.self), $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
             $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        guard UInt64(littleEndian: magic) == BlockFormat.magic else { throw fail("bad footer magic (corrupt or truncated)") }
        guard Int(UInt32(littleEndian: r)) == expectedPartitions else {
            throw fail("has \(UInt32(littleEndian: r)) partitions, expected \(expectedPartitions)")
        }
        let indexBytes = (expectedPartitions + 1) * 8
        guard size >= Int64(BlockFormat.footerSize + indexBytes) else { throw fail("truncated index") }
        var index = [UInt8](repeating: 0, count: indexBytes)
        try index.withUnsafeMutableBytes { try readExactly($0, at: size - Int64(BlockFormat.footerSize + indexBytes)) }
        guard index.withUnsafeBytes({ BlockFormat.crc($0) }) == UInt32(littleEndian: crc) else {
            throw fail("index checksum mismatch")
        }
        let offsets = index.withUnsafeBytes { raw in
            (0...expectedPartitions).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        }
        for i in 0..<expectedPartitions where offsets[i] > offsets[i + 1] { throw fail("corrupt index") }
        guard offsets[expectedPartitions] <= size - Int64(BlockFormat.footerSize + indexBytes) else { throw fail("corrupt index") }
        return offsets
    }

    /// Calls `body` with the payload and record count of every block in `[start, end)`.
    @usableFromInline func forEachBlock(from start: Int64, to end: Int64,
                      _ body: (UnsafeRawBufferPointer, Int) throws -> Void) throws {
        var offset = start
        var header = [UInt8](repeating: 0, count: BlockFormat.headerSize)
        while offset < end {
            guard end - offset >= Int64(BlockFormat.headerSize) else { throw fail("truncated block header at byte \(offset)") }
            try header.withUnsafeMutableBytes { try readExactly($0, at: offset) }
            let (length, count, crc) = header.withUnsafeBytes {
                (Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
                 Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self))),
                 UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            }
            offset += Int64(BlockFormat.headerSize)
            guard Int64(length) <= end - offset else { throw fail("block at byte \(offset) runs past its segment (truncated or corrupt)") }
            if length > payload.count {
                payload.deallocate()
                payload = .allocate(byteCount: length, alignment: 16)
            }
            let slice = UnsafeMutableRawBufferPointer(rebasing: payload[0..<length])
            try readExactly(slice, at: offset)
            guard BlockFormat.crc(UnsafeRawBufferPointer(slice)) == crc else {
                throw fail("checksum mismatch in block at byte \(offset - Int64(BlockFormat.headerSize))")
            }
            try body(UnsafeRawBufferPointer(slice), count)
            offset += Int64(length)
        }
    }

    /// Decodes every record in `[start, end)`: `decode` must consume exactly one record.
    @usableFromInline func forEachRecord(from start: Int64, to end: Int64, _ decode: (inout ByteReader) throws -> Void) throws {
        try forEachBlock(from: start, to: end) { payload, count in
            var reader = ByteReader(payload)
            do {
                for _ in 0..<count { try decode(&reader) }
            } catch let e as CorruptDataError {
                throw fail("undecodable record: \(e)")
            }
            guard reader.isAtEnd else { throw fail("block has trailing bytes (corrupt)") }
        }
    }
}
