#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits a byte stream into lines with `memchr` over a large reused buffer: no copy and no
/// allocation per line. A line is handed out without its `\n` (and without a `\r` before
/// it); the final line needs no newline. The buffer grows for lines longer than itself, up
/// to `maxLine` bytes: a longer line is never held whole (see `forEachLine`).
package final class LineReader {
    private var buffer: UnsafeMutableRawBufferPointer
    /// The buffer's starting size: a longer line makes it grow.
    package static let defaultCapacity = 1 << 20
    /// The longest line handed out.
    package let maxLine: Int

    /// The largest buffer: the longest line, its `\r\n`, and no more.
    private let maxBuffer: Int

    package init(capacity: Int = LineReader.defaultCapacity, maxLine: Int = .max) {
        self.maxLine = max(1, maxLine)
        maxBuffer = self.maxLine > Int.max / 4 ? Int.max / 4 : self.maxLine + 2
        buffer = .allocate(byteCount: min(capacity, maxBuffer), alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Reads `source` to its end (or until a line starts at or after `end`, counted from the
    /// stream position `origin` of its first byte) and calls `body` with each line and the
    /// stream offset where the line starts. With `skipFirst`, bytes up to and including the
    /// first newline are skipped: the line they end belongs to the previous split. A line
    /// longer than `maxLine` goes to `tooLong` with its offset instead (which throws, or
    /// returns to have the line skipped); it is read past, never held whole.
    package func forEachLine(_ source: ByteSource, origin: Int64 = 0, end: Int64 = .max, skipFirst: Bool = false,
                     tooLong: (Int64) throws -> Void = { _ in },
                     _ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws {
        var base = origin          // stream offset of buffer[0]
        var filled = 0
        var consumed = 0
        var skipping = skipFirst
        var scanFrom = 0
        while true {
            if filled == buffer.count {
                if consumed > 0 {
                    let rest = filled - consumed
                    if rest > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + consumed, rest) }
                    base += Int64(consumed)
                    scanFrom -= consumed
                    filled = rest
                    consumed = 0
                } else if buffer.count >= maxBuffer {
                    // A line (and its \r\n) over the limit: report it, then drop what is
                    // buffered and skip to the next newline.
                    let lineStart = base + Int64(consumed)
                    if !skipping {
                        if lineStart >= end { return }
                        try tooLong(lineStart)
                    }
                    base += Int64(filled)
                    scanFrom = 0
                    filled = 0
                    skipping = true
                } else {
                    let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: min(buffer.count * 2, maxBuffer), alignment: 16)
                    bigger.copyMemory(from: UnsafeRawBufferPointer(buffer))
                    buffer.deallocate()
                    buffer = bigger
                }
            }
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n == 0 { break }
            filled += n
            let p = buffer.baseAddress!
            while scanFrom < filled {
                guard let hit = memchr(p + scanFrom, 0x0A, filled - scanFrom) else {
                    scanFrom = filled
                    break
                }
                let nl = p.distance(to: hit)
                if skipping {
                    skipping = false
                } else {
                    let lineStart = base + Int64(consumed)
                    if lineStart >= end { return }
                    var len = nl - consumed
                    if len > 0 && p.load(fromByteOffset: consumed + len - 1, as: UInt8.self) == 0x0D { len -= 1 }
                    try body(UnsafeRawBufferPointer(start: p + consumed, count: len), lineStart)
                }
                consumed = nl + 1
                scanFrom = consumed
            }
        }
        if consumed < filled && !skipping {
            let lineStart = base + Int64(consumed)
            if lineStart >= end { return }
            var len = filled - consumed
            if buffer[consumed + len - 1] == 0x0D { len -= 1 }
            try body(UnsafeRawBufferPointer(start: buffer.baseAddress! + consumed, count: len), lineStart)
        }
    }
}

/// Where a line is: its 1-based line number when known (splits that start a document), and
/// its byte offset in the (decompressed) document.
struct LinePosition {
    var line: Int?
    var offset: Int64
}

/// Reads the lines of one input split, whatever its chunks' formats, calling `body` with
/// the document name (file, or `archive!entry`), each line and its position.
struct SplitLineReader {
    var maxExpandedBytes: Int64 = 64 << 30
    /// The longest line; a longer one is a bad record.
    var maxRecordBytes = 64 << 20
    /// What happens to a line over the limit: thrown, or counted as skipped.
    var onBadRecord: (InputError) throws -> Void = { throw $0 }

    init(maxExpandedBytes: Int64 = 64 << 30) {
        self.maxExpandedBytes = maxExpandedBytes
    }

    /// A reader with the task's limits and bad-record policy.
    init(task: TaskContext) {
        maxExpandedBytes = task.maxExpandedBytes
        maxRecordBytes = task.maxRecordBytes
        onBadRecord = { error in
            guard task.skipBadRecords else { throw error }
            task.recordBad(error)
        }
    }

    func forEachLine(_ split: InputSplit, metrics: TaskMetrics,
                     _ body: (_ document: String, _ line: UnsafeRawBufferPointer) throws -> Void) throws {
        try forEachLine(split, metrics: metrics) { document, line, _ in try body(document, line) }
    }

    func forEachLine(_ split: InputSplit, metrics: TaskMetrics,
                     _ body: (_ document: String, _ line: UnsafeRawBufferPointer, _ position: LinePosition) throws -> Void) throws {
        let reader = LineReader(maxLine: maxRecordBytes)
        let limit = maxRecordBytes
        func read(_ source: ByteSource, document: String, origin: Int64 = 0, end: Int64 = .max, skipFirst: Bool = false) throws {
            var number = 0
            let numbered = origin == 0 && !skipFirst
            try reader.forEachLine(source, origin: origin, end: end, skipFirst: skipFirst, tooLong: { offset in
                number += 1
                try onBadRecord(InputError(source: document, line: numbered ? number : nil, offset: offset,
                                           reason: "line (at byte \(offset)) longer than the record limit of \(formatBytes(Int64(limit))) (--max-record-size)",
                                           skippable: true))
            }) { line, offset in
                number += 1
                metrics.recordsRead += 1
                metrics.bytesRead += Int64(line.count + 1)
                try body(document, line, LinePosition(line: numbered ? number : nil, offset: offset))
            }
        }
        for chunk in split.chunks {
            switch chunk.format {
            case .plain:
                let origin = chunk.start > 0 ? chunk.start - 1 : 0
                try read(try FileByteSource(path: chunk.path, start: origin), document: chunk.path, origin: origin,
                         end: chunk.end, skipFirst: chunk.start > 0)
            case .gzip:
                try read(try GzipSource(path: chunk.path, maxExpandedBytes: maxExpandedBytes), document: chunk.path)
            case .archive:
                let archive = try ArchiveReader(path: chunk.path, maxEntryBytes: maxExpandedBytes)
                var entry = try archive.skip(to: Int(clamping: chunk.start))
                while let current = entry, Int64(current.index) < chunk.end {
                    let source = archive.entrySource()
                    try read(source, document: source.name)
                    entry = try archive.nextEntry()
                }
            }
        }
    }
}
