#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Sluice

// The event log: an append-only, segmented log on disk, Kafka-style.
//
//   DIR/log.json                      format, schema (column names), event-time field
//   DIR/00000000000000000000.log      a segment, named by the offset of its first record
//   DIR/00000000000000000000.index    its sparse offset index
//   DIR/.lock                         held (flock) by the one appender
//
// Offsets are record numbers, from 0. A record is
//
//   u32 length of the body | u32 CRC-32 of the body | body = i64 offset, i64 event time, payload
//
// (little-endian; event time in milliseconds since the Unix epoch, UTC). The payload holds the
// event's fields in schema order: a varint count, then each field as a varint length and bytes.
// The CRC covers the offset too. A torn tail — the last segment's last record cut off by a
// crash mid-append (its length reaches past the end of the file and no whole record follows),
// or zeros never written — is never handed out, and the appender truncates it when it opens
// the log. Anything else that is not a whole record is corruption: a bad length or checksum, a
// cut-off record with data after it or in a segment that is not the last, a gap between
// segments. Readers, the appender and `sluice log verify` fail on it, naming the file and byte.
//
// An index entry (32 bytes: offset, byte position, and the smallest and largest event time of
// all records *before* that offset) is written for a segment's first record and then about
// every 4 KiB, after the records it points to are fsync'd. Entries are hints: readers check the
// record they point at and fall back to scanning. The running time range in the entries gives
// the log's time range and the largest event time before any offset without a full scan.

/// One event read from the log, borrowed: `payload` points into the reader's buffer and is
/// valid only during the call that hands the event out. Field accessors read the event's
/// fields by their position in the log's schema (resolve column names once with `LogSchema`).
public struct LogEvent {
    /// The event's offset (record number) in the log.
    public let offset: Int64
    /// The event time, milliseconds since the Unix epoch (UTC).
    public let time: Int64
    /// The encoded fields.
    public let payload: UnsafeRawBufferPointer

    @inlinable public init(offset: Int64, time: Int64, payload: UnsafeRawBufferPointer) {
        self.offset = offset
        self.time = time
        self.payload = payload
    }

    @inlinable static func varint(_ base: UnsafeRawPointer, _ count: Int, _ i: inout Int) -> Int {
        var result = 0
        var shift = 0
        while i < count && shift <= 56 {
            let b = base.load(fromByteOffset: i, as: UInt8.self)
            i += 1
            result |= Int(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        i = count
        return 0
    }

    /// The number of fields the event has.
    @inlinable public var fieldCount: Int {
        guard let base = payload.baseAddress else { return 0 }
        var i = 0
        return LogEvent.varint(base, payload.count, &i)
    }

    /// The bytes of field `index` (empty when the event has no such field).
    @inlinable public func field(_ index: Int) -> ByteView {
        let empty = ByteView(UnsafeRawBufferPointer(start: nil, count: 0))
        guard let base = payload.baseAddress else { return empty }
        let n = payload.count
        var i = 0
        let count = LogEvent.varint(base, n, &i)
        guard index >= 0 && index < count else { return empty }
        var f = 0
        while true {
            let length = LogEvent.varint(base, n, &i)
            if f == index {
                guard length <= n - i else { return empty }
                return ByteView(UnsafeRawBufferPointer(start: base + i, count: length))
            }
            i = length <= n - i ? i + length : n
            f += 1
        }
    }

    /// Field `index` as owned bytes.
    @inlinable public func bytes(_ index: Int) -> Bytes { Bytes(field(index).raw) }

    /// Field `index` as a string (invalid UTF-8 becomes U+FFFD).
    @inlinable public func string(_ index: Int) -> String { String(decoding: field(index).raw, as: UTF8.self) }

    /// Whether field `index` is empty, blank or `NA` (or missing).
    @inlinable public func isNull(_ index: Int) -> Bool {
        CSVScalars.isNull(field(index).raw.assumingMemoryBound(to: UInt8.self))
    }

    /// Field `index` as an integer; throws when it is not one, naming the offset and field.
    @inlinable public func int(_ index: Int) throws -> Int {
        let p = field(index).raw.assumingMemoryBound(to: UInt8.self)
        if let v = CSVScalars.parseInt(p) { return v }
        throw fieldError(index, p, CSVScalars.intFailure(p))
    }

    /// Field `index` as an integer, or nil when it is empty or `NA`.
    @inlinable public func optionalInt(_ index: Int) throws -> Int? {
        let p = field(index).raw.assumingMemoryBound(to: UInt8.self)
        if let v = CSVScalars.parseInt(p) { return v }
        if CSVScalars.isNull(p) { return nil }
        throw fieldError(index, p, CSVScalars.intFailure(p))
    }

    /// Field `index` as a floating-point number; throws when it is not one.
    @inlinable public func double(_ index: Int) throws -> Double {
        let p = field(index).raw.assumingMemoryBound(to: UInt8.self)
        if let v = CSVScalars.parseDouble(p) { return v }
        throw fieldError(index, p, "is not a number")
    }

    @usableFromInline func fieldError(_ index: Int, _ p: UnsafeBufferPointer<UInt8>, _ what: String) -> InputError {
        InputError(source: "event log", reason: "event at offset \(offset), field \(index + 1): \(CSVScalars.quoted(p)) \(what)")
    }
}

/// The columns of a log's events, in payload order, and the field that gave the event time.
public struct LogSchema: Sendable, Equatable {
    /// Column names in field order.
    public let columns: [String]
    /// The column the event time was read from, when the log was appended from records.
    public let timeField: String?

    public init(columns: [String], timeField: String? = nil) {
        self.columns = columns
        self.timeField = timeField
    }

    /// The position of column `name`; throws naming the log's columns when there is none.
    /// Resolve names once, outside per-event code.
    public func column(_ name: String) throws -> Int {
        if let i = columns.firstIndex(of: name) { return i }
        throw JobError.invalid("the event log has no column \"\(name)\" (columns: \(columns.joined(separator: ", ")))")
    }
}

/// An event ready to append: its event time and its fields encoded in schema order.
public struct EncodedEvent: Sendable {
    /// Event time, milliseconds since the Unix epoch.
    public var time: Int64
    /// The payload (see `EncodedEvent.encode`).
    public var payload: [UInt8]

    public init(time: Int64, payload: [UInt8]) {
        self.time = time
        self.payload = payload
    }

    /// Encodes fields into a payload.
    public init<S: Sequence>(time: Int64, fields: [S]) where S.Element == UInt8 {
        var w = ByteWriter(capacity: 64)
        EncodedEvent.encode(fields, into: &w)
        self.init(time: time, payload: w.bytes)
    }

    /// Writes a payload: the field count, then each field length-prefixed.
    public static func encode<S: Sequence>(_ fields: [S], into w: inout ByteWriter) where S.Element == UInt8 {
        w.writeVarint(UInt64(fields.count))
        for f in fields {
            let bytes = Array(f)
            w.writeLengthPrefixed(bytes)
        }
    }
}

/// The smallest and largest event time of a set of events.
public struct TimeRange: Sendable, Equatable {
    public var min: Int64 = .max
    public var max: Int64 = .min
    public init() {}
    /// Whether no event was seen.
    public var isEmpty: Bool { min > max }
    mutating func add(_ t: Int64) {
        if t < min { min = t }
        if t > max { max = t }
    }
}

/// The log's `log.json`.
struct LogMetadata: Codable, Equatable {
    var format = "sluice-event-log"
    var version = 1
    var segmentBytes: Int64
    var columns: [String] = []
    var timeField: String?
    var timeFormat: String?
}

/// The record and index layout.
enum LogFormat {
    static let headerSize = 8
    static let bodyPrefix = 16
    static let maxBody = 64 << 20
    static let indexEntrySize = 32
    static let indexInterval: Int64 = 4096

    static func name(_ base: Int64) -> String {
        let digits = String(base)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// The base offset of a segment file name, or nil for other files.
    static func base(ofSegment name: String) -> Int64? {
        guard name.count == 24, name.hasSuffix(".log") else { return nil }
        return Int64(name.prefix(20))
    }

    /// A whole record holding another offset than the one expected where it is.
    static func offsetMismatch(_ segment: String, at position: Int64, found: Int64, expected: Int64) -> EventLogError {
        .corrupt(segment, byte: position, "the record holds offset \(found) where offset \(expected) was expected")
    }

    /// Encodes one record.
    static func encodeRecord(offset: Int64, time: Int64, payload: UnsafeRawBufferPointer, into w: inout ByteWriter) {
        let start = w.count
        w.writeFixed(UInt32(bodyPrefix + payload.count))
        w.writeFixed(UInt32(0))
        w.writeFixed(offset)
        w.writeFixed(time)
        w.write(raw: payload)
        let crc = w.bytes.withUnsafeBytes { BlockFormat.crc(UnsafeRawBufferPointer(rebasing: $0[(start + headerSize)...])) }
        w.patchFixed(crc, at: start + 4)
    }
}

/// An index entry: a record's offset and byte position, and the time range of every record
/// before it in the log.
struct IndexEntry: Equatable {
    var offset: Int64
    var position: Int64
    var before: TimeRange

    func encode(to w: inout ByteWriter) {
        w.writeFixed(offset)
        w.writeFixed(position)
        w.writeFixed(before.min)
        w.writeFixed(before.max)
    }

    /// The whole entries in an index file (a torn last entry is ignored).
    static func decodeAll(_ bytes: [UInt8]) -> [IndexEntry] {
        bytes.withUnsafeBytes { raw in
            stride(from: 0, to: raw.count - LogFormat.indexEntrySize + 1, by: LogFormat.indexEntrySize).map { at in
                func field(_ i: Int) -> Int64 { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at + 8 * i, as: Int64.self)) }
                var before = TimeRange()
                before.min = field(2)
                before.max = field(3)
                return IndexEntry(offset: field(0), position: field(1), before: before)
            }
        }
    }
}

/// Why the log cannot be read or written: corruption (naming the segment and byte) or a
/// misuse (no log there, a second appender).
public struct EventLogError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// For corruption: the file and the byte where it is, and what is wrong there.
    public var segment: String?
    public var byte: Int64?
    public var reason: String

    public init(_ description: String) {
        self.description = description
        reason = description
    }

    /// Corruption at `byte` of file `segment`.
    static func corrupt(_ segment: String, byte: Int64, _ reason: String) -> EventLogError {
        var e = EventLogError("corrupt event log: \(segment) at byte \(byte): \(reason)")
        e.segment = segment
        e.byte = byte
        e.reason = reason
        return e
    }
}

/// Sequential, checked reads of one segment file with `pread` into a reusable buffer.
final class SegmentReader {
    enum Step {
        /// A whole, checked record.
        case record(offset: Int64, time: Int64, payload: UnsafeRawBufferPointer, size: Int64)
        /// No bytes at the position: the end of the segment (so far).
        case end
        /// Some bytes, but not a whole record (a torn tail, or one being written).
        case incomplete
        /// A record whose length or checksum is wrong (what is wrong, as "has …" / "fails …").
        case corrupt(String)
    }

    let path: String
    private let fd: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    private var bufferStart: Int64 = 0
    private var bufferCount = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("cannot open segment \(path)") }
        buffer = .allocate(byteCount: 1 << 20, alignment: 8)
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    /// Forgets buffered bytes (the file may have changed at and after the last position read).
    func invalidate() { bufferCount = 0 }

    /// Makes `[position, position + count)` available in the buffer; false at the end of the file.
    private func ensure(_ position: Int64, _ count: Int) throws -> Bool {
        if position >= bufferStart && position + Int64(count) <= bufferStart + Int64(bufferCount) { return true }
        if count > buffer.count {
            buffer.deallocate()
            buffer = .allocate(byteCount: max(count, 2 * buffer.count), alignment: 8)
        }
        bufferStart = position
        bufferCount = try Durable.readFully(fd, into: buffer, at: position, path: path)
        return count <= bufferCount
    }

    /// The record at `position` (which must be a record boundary).
    func record(at position: Int64) throws -> Step {
        guard try ensure(position, LogFormat.headerSize) else {
            return bufferCount == 0 ? .end : .incomplete
        }
        let at = Int(position - bufferStart)
        let length = Int(UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        let crc = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self))
        guard length >= LogFormat.bodyPrefix && length <= LogFormat.maxBody else {
            return .corrupt("has an impossible length \(length) (a record body is \(LogFormat.bodyPrefix) to \(LogFormat.maxBody) bytes)")
        }
        guard try ensure(position, LogFormat.headerSize + length) else { return .incomplete }
        let start = Int(position - bufferStart) + LogFormat.headerSize
        let body = UnsafeRawBufferPointer(rebasing: buffer[start..<start + length])
        guard BlockFormat.crc(body) == crc else { return .corrupt("fails its checksum (a whole record of \(LogFormat.headerSize + length) bytes)") }
        let offset = Int64(littleEndian: body.loadUnaligned(fromByteOffset: 0, as: Int64.self))
        let time = Int64(littleEndian: body.loadUnaligned(fromByteOffset: 8, as: Int64.self))
        return .record(offset: offset, time: time, payload: UnsafeRawBufferPointer(rebasing: body[LogFormat.bodyPrefix...]),
                       size: Int64(LogFormat.headerSize + length))
    }

    /// The file's size now.
    func fileSize() throws -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("cannot stat \(path)") }
        return Int64(st.st_size)
    }

    /// Whether `position`, where no whole record was read, is where the segment's records end:
    /// its end of file or, in the `last` segment, a torn tail (a record cut off by a crash with
    /// nothing after it, or zeros never written). False when a whole record is there now (an
    /// append landed meanwhile). Anything else is corruption, thrown naming the byte; `offset`
    /// is the offset expected at `position`.
    func isEnd(at position: Int64, offset: Int64, last: Bool, reread: Bool = true) throws -> Bool {
        invalidate()
        let size = try fileSize()
        guard size >= position else {
            throw EventLogError.corrupt(path, byte: size, "the segment is \(size) bytes, shorter than the \(position) bytes already read (it was truncated under the reader)")
        }
        switch try record(at: position) {
        case .record:
            return false
        case .end:
            return true
        case .incomplete:
            let next = try wholeRecord(after: position, offset: offset + 1)
            if last && next == nil { return true }
            // Read once more: an append may have finished the record meanwhile.
            if reread { return try isEnd(at: position, offset: offset, last: last, reread: false) }
            throw EventLogError.corrupt(path, byte: position, "the record for offset \(offset) is cut off, "
                                        + (next.map { "yet a whole record (offset \(offset + 1)) follows at byte \($0)" } ?? "in a segment that is not the last"))
        case .corrupt(let why):
            if last, try zeros(from: position, to: size) { return true }
            // Read once more: an appender recovering a torn tail may have rewritten it meanwhile.
            if reread { return try isEnd(at: position, offset: offset, last: last, reread: false) }
            throw EventLogError.corrupt(path, byte: position, "the record for offset \(offset) \(why)")
        }
    }

    /// The position of a whole record holding `offset` after `position`, if there is one.
    private func wholeRecord(after position: Int64, offset: Int64) throws -> Int64? {
        let size = try fileSize()
        var q = position + 1
        while q + Int64(LogFormat.headerSize + LogFormat.bodyPrefix) <= size, try ensure(q, LogFormat.headerSize + 8) {
            let o = Int64(littleEndian: buffer.loadUnaligned(fromByteOffset: Int(q - bufferStart) + LogFormat.headerSize, as: Int64.self))
            if o == offset, case .record(let found, _, _, _) = try record(at: q), found == offset { return q }
            q += 1
        }
        return nil
    }

    /// Whether the bytes `[from, to)` are all zero.
    private func zeros(from: Int64, to: Int64) throws -> Bool {
        var at = from
        while at < to {
            let n = Int(min(to - at, Int64(buffer.count)))
            guard try ensure(at, n) else { return false }
            let start = Int(at - bufferStart)
            guard UnsafeRawBufferPointer(rebasing: buffer[start..<start + n]).allSatisfy({ $0 == 0 }) else { return false }
            at += Int64(n)
        }
        return true
    }

    /// Steps `at` over the whole record it points to (checking its offset); false when no
    /// whole record is there (the end, a torn tail or corruption: `isEnd` tells which).
    func advance(_ at: inout IndexEntry) throws -> Bool {
        guard case .record(let o, let t, _, let size) = try record(at: at.position) else { return false }
        guard o == at.offset else { throw LogFormat.offsetMismatch(path, at: at.position, found: o, expected: at.offset) }
        at.before.add(t)
        at.position += size
        at.offset += 1
        return true
    }
}

/// What `sluice log info` shows.
public struct LogInfo: Sendable {
    public var path: String
    /// Segment base offsets with their sizes in bytes.
    public var segments: [(base: Int64, bytes: Int64)]
    /// The first offset held (0: nothing is ever deleted).
    public var firstOffset: Int64
    /// The offset the next append gets (the number of events when the log starts at 0).
    public var nextOffset: Int64
    public var bytes: Int64
    /// The event-time range of every event.
    public var timeRange: TimeRange
    public var schema: LogSchema
    /// Whether every record and index entry was read and checked; otherwise only the segments'
    /// sequence, their first and last records and the last segment's tail were.
    public var verified: Bool
    /// Bytes after the last whole record of the last segment (an interrupted append).
    public var tornTail: TornTail?
}

/// The bytes after the last whole record of the last segment: an append cut off by a crash,
/// never read, truncated by the next appender.
public struct TornTail: Sendable, Equatable {
    public var segment: String
    public var byte: Int64
    public var bytes: Int64
}

/// A log opened for reading. Any number of readers may read while one appender appends;
/// readers see whole, checked records only.
public final class EventLog {
    public let path: String
    let metadata: LogMetadata

    /// Opens the log in folder `path`.
    public init(path: String) throws {
        self.path = path
        guard let bytes = try Durable.read(path + "/log.json") else {
            throw EventLogError("no event log in \(path) (create one with `sluice log append --log \(path) FILE`)")
        }
        do {
            metadata = try JSONDecoder().decode(LogMetadata.self, from: Data(bytes))
        } catch {
            throw EventLogError("\(path)/log.json is not an event log description: \(error)")
        }
        guard metadata.format == "sluice-event-log", metadata.version == 1 else {
            throw EventLogError("\(path)/log.json: unsupported format \(metadata.format) version \(metadata.version)")
        }
    }

    /// The log's columns and event-time field.
    public var schema: LogSchema { LogSchema(columns: metadata.columns, timeField: metadata.timeField) }

    func segmentPath(_ base: Int64) -> String { "\(path)/\(LogFormat.name(base)).log" }
    func indexPath(_ base: Int64) -> String { "\(path)/\(LogFormat.name(base)).index" }

    /// The segments' base offsets, ascending.
    func segmentBases() -> [Int64] {
        Durable.list(path).compactMap(LogFormat.base(ofSegment:)).sorted()
    }

    func loadIndex(_ base: Int64) throws -> [IndexEntry] {
        IndexEntry.decodeAll(try Durable.read(indexPath(base)) ?? [])
    }

    /// The position of an index entry whose record checks out, scanning entries from the last
    /// one at or below `offset`; nil when none does.
    func validEntry(_ entries: [IndexEntry], atOrBelow offset: Int64, reader: SegmentReader) throws -> Int? {
        var i = entries.lastIndex { $0.offset <= offset }
        while let j = i {
            if case .record(let o, _, _, _) = try reader.record(at: entries[j].position), o == entries[j].offset { return j }
            i = j > 0 ? j - 1 : nil
        }
        return nil
    }

    /// The time range of every record before the first record of segment `base`.
    func timeRange(beforeSegment base: Int64, bases: [Int64]) throws -> TimeRange {
        guard let k = bases.firstIndex(of: base), k > 0 else { return TimeRange() }
        let previous = bases[k - 1]
        let end = try scanSegment(previous, upTo: .max, bases: bases)
        guard end.offset == base else { throw sequenceError(previous, end: end, next: base) }
        return end.before
    }

    /// Segment `previous` ends at `end` where the next segment, `next`, does not start.
    func sequenceError(_ previous: Int64, end: IndexEntry, next: Int64) -> EventLogError {
        let what = end.offset < next ? "offsets [\(end.offset), \(next)) are missing" : "the segments overlap"
        return .corrupt(segmentPath(previous), byte: end.position,
                        "the segment ends at offset \(end.offset), but the next segment, \(LogFormat.name(next)).log, starts at offset \(next): \(what)")
    }

    /// Scans segment `base` from its best index entry up to offset `limit` or its last whole
    /// record: the position and offset reached and the time range of every record before.
    func scanSegment(_ base: Int64, upTo limit: Int64, bases: [Int64]) throws -> IndexEntry {
        let reader = try SegmentReader(path: segmentPath(base))
        let entries = try loadIndex(base)
        if let j = try validEntry(entries, atOrBelow: limit, reader: reader) {
            return try scan(reader, from: entries[j], upTo: limit, last: base == bases.last)
        }
        let start = IndexEntry(offset: base, position: 0, before: try timeRange(beforeSegment: base, bases: bases))
        return try scan(reader, from: start, upTo: limit, last: base == bases.last)
    }

    /// Reads a segment's records from `start` up to offset `limit` or the end of its records.
    func scan(_ reader: SegmentReader, from start: IndexEntry, upTo limit: Int64, last: Bool) throws -> IndexEntry {
        var at = start
        reader.invalidate()
        while at.offset < limit {
            if try !reader.advance(&at), try reader.isEnd(at: at.position, offset: at.offset, last: last) { return at }
        }
        return at
    }

    /// The offset the next append will get: one past the last whole record.
    public func endOffset() throws -> Int64 {
        let bases = segmentBases()
        guard let last = bases.last else { return 0 }
        return try scanSegment(last, upTo: .max, bases: bases).offset
    }

    /// Checks that each segment starts where the one before it ends (a short scan from each
    /// segment's last index entry), so that a parallel reader starting mid-log cannot miss a gap.
    public func checkSequence() throws {
        let bases = segmentBases()
        for base in bases.dropFirst() { _ = try timeRange(beforeSegment: base, bases: bases) }
    }

    /// The time range of the events with offsets below `offset` (from the index and a short scan).
    public func timeRange(before offset: Int64) throws -> TimeRange {
        let bases = segmentBases()
        guard let base = bases.last(where: { $0 <= offset }) else { return TimeRange() }
        let at = try scanSegment(base, upTo: offset, bases: bases)
        guard at.offset == offset else {
            throw EventLogError("offset \(offset) is beyond the end of the log (\(at.offset))")
        }
        return at.before
    }

    /// A cursor positioned at `offset`.
    public func cursor(from offset: Int64) throws -> LogCursor { try LogCursor(log: self, from: offset) }

    /// Calls `body` with every event in `[from, to)` that is in the log now, in offset order;
    /// returns the offset after the last one handed out.
    @discardableResult
    public func read(from: Int64, to: Int64 = .max, _ body: (LogEvent) throws -> Void) throws -> Int64 {
        let cursor = try cursor(from: from)
        while try cursor.read(limit: 1 << 16, end: to, body) > 0 {}
        return cursor.nextOffset
    }
}

/// Reads events in offset order from a starting offset and, called again, carries on with
/// whatever has been appended since (`--follow`). Only whole, checked records are handed out;
/// a record being written, or a torn tail, is retried on the next call.
public final class LogCursor {
    let log: EventLog
    private var base: Int64?
    private var reader: SegmentReader?
    private var position: Int64 = 0
    /// The offset of the record at `position`.
    private var recordOffset: Int64 = 0
    private let skipBelow: Int64

    init(log: EventLog, from offset: Int64) throws {
        self.log = log
        skipBelow = offset
        let bases = log.segmentBases()
        if let first = bases.first, offset < first {
            throw EventLogError("offset \(offset) is before the first offset \(first) of \(log.path)")
        }
        if let b = bases.last(where: { $0 <= offset }) { try open(b, seekTo: offset) }
    }

    /// The offset of the next event this cursor will hand out.
    public var nextOffset: Int64 { max(recordOffset, skipBelow) }

    private func open(_ b: Int64, seekTo offset: Int64) throws {
        let r = try SegmentReader(path: log.segmentPath(b))
        let entries = try log.loadIndex(b)
        if let j = try log.validEntry(entries, atOrBelow: offset, reader: r) {
            position = entries[j].position
            recordOffset = entries[j].offset
        } else {
            position = 0
            recordOffset = b
        }
        r.invalidate()
        base = b
        reader = r
    }

    /// At the log's end for now: `delivered`, unless the log ends before the starting offset.
    private func ended(_ delivered: Int) throws -> Int {
        guard recordOffset >= skipBelow else {
            throw EventLogError("offset \(skipBelow) is past the end of the event log \(log.path) (offset \(recordOffset))")
        }
        return delivered
    }

    /// Hands up to `limit` events with offsets below `end` to `body`; returns how many (0 when
    /// nothing more is in the log for now). Corruption is an error naming the segment and byte;
    /// only a torn tail of the last segment is taken for its end.
    @discardableResult
    public func read(limit: Int, end: Int64 = .max, _ body: (LogEvent) throws -> Void) throws -> Int {
        var delivered = 0
        while delivered < limit && recordOffset < end {
            guard let reader, let base else {
                guard let first = log.segmentBases().first else { return try ended(delivered) }
                try open(first, seekTo: skipBelow)
                continue
            }
            switch try reader.record(at: position) {
            case .record(let offset, let time, let payload, let size):
                guard offset == recordOffset else {
                    throw LogFormat.offsetMismatch(reader.path, at: position, found: offset, expected: recordOffset)
                }
                position += size
                recordOffset += 1
                if offset >= skipBelow {
                    try body(LogEvent(offset: offset, time: time, payload: payload))
                    delivered += 1
                }
            case .end, .incomplete, .corrupt:
                // A newer segment means this one was finished before it was created: list first, then look again.
                let next = log.segmentBases().first(where: { $0 > base })
                guard try reader.isEnd(at: position, offset: recordOffset, last: next == nil) else { continue }
                guard let next else { return try ended(delivered) }
                guard next == recordOffset else {
                    throw log.sequenceError(base, end: IndexEntry(offset: recordOffset, position: position, before: TimeRange()), next: next)
                }
                try open(next, seekTo: max(skipBelow, next))
            }
        }
        return delivered
    }
}

/// The one appender of a log: appends records to the last segment, rolls to a new segment
/// when it is full, and makes appends durable with `commit()` (write, fsync of the segment,
/// then of the index). Opening it takes an exclusive lock on the log and truncates a torn tail
/// left by a crashed appender (corruption where it looks for the end is an error, never cut off).
public final class EventLogWriter {
    public let path: String
    private(set) var metadata: LogMetadata
    /// The offset the next append gets.
    public private(set) var nextOffset: Int64 = 0
    private let lock: FileLock
    private var segmentFD: Int32 = -1
    private var indexFD: Int32 = -1
    private var segmentBase: Int64 = 0
    private var segmentSize: Int64 = 0
    private var lastEntryPosition: Int64?
    private var before = TimeRange()
    private var buffer = ByteWriter(capacity: 1 << 20)
    private var pendingIndex = ByteWriter(capacity: 4096)
    private var written: Int64 = 0

    /// Opens (creating when missing) the log in folder `path`. `segmentBytes` applies to a new log.
    public init(path: String, segmentBytes: Int64 = 64 << 20) throws {
        self.path = path
        try Durable.makeFolder(path)
        lock = try FileLock(path: path + "/.lock", busy: { pid in EventLogError("another process\(pid.map { " (pid \($0))" } ?? "") is appending to the event log in \(path)") })
        if let bytes = try Durable.read(path + "/log.json") {
            metadata = try JSONDecoder().decode(LogMetadata.self, from: Data(bytes))
        } else {
            metadata = LogMetadata(segmentBytes: max(4096, segmentBytes))
            try saveMetadata()
        }
        try recover()
    }

    deinit {
        if segmentFD >= 0 { close(segmentFD) }
        if indexFD >= 0 { close(indexFD) }
    }

    /// The columns of the log's events.
    public var schema: LogSchema { LogSchema(columns: metadata.columns, timeField: metadata.timeField) }

    private func saveMetadata() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Durable.writeAtomically(path + "/log.json", Array(try encoder.encode(metadata)))
    }

    /// Adds columns to the schema (existing columns keep their positions) and records the
    /// event-time field and format, durably, before any event that uses them is appended.
    public func extendSchema(columns: [String], timeField: String?, timeFormat: String?) throws {
        var m = metadata
        for c in columns where !m.columns.contains(c) { m.columns.append(c) }
        if m.timeField == nil { m.timeField = timeField }
        if m.timeFormat == nil { m.timeFormat = timeFormat }
        if m != metadata {
            metadata = m
            try saveMetadata()
        }
    }

    /// The event-time format recorded for the log, if any.
    public var timeFormat: String? { metadata.timeFormat }

    /// Finds the last whole record of the last segment, truncates anything after it, rebuilds
    /// the index entries past the last good one, and opens the segment for appending.
    private func recover() throws {
        let log = try EventLog(path: path)
        var bases = log.segmentBases()
        if bases.isEmpty {
            try createSegment(0)
            bases = [0]
        }
        let base = bases.last!
        let reader = try SegmentReader(path: log.segmentPath(base))
        var entries = try log.loadIndex(base)
        var at: IndexEntry
        if let j = try log.validEntry(entries, atOrBelow: .max, reader: reader) {
            at = entries[j]
            entries.removeSubrange((j + 1)...)
        } else {
            at = IndexEntry(offset: base, position: 0, before: try log.timeRange(beforeSegment: base, bases: bases))
            entries = []
        }
        reader.invalidate()
        // Up to the last whole record; a torn tail after it is truncated below, corruption is an error.
        while true {
            guard case .record(let o, let t, _, let size) = try reader.record(at: at.position) else {
                if try reader.isEnd(at: at.position, offset: at.offset, last: true) { break }
                continue
            }
            guard o == at.offset else { throw LogFormat.offsetMismatch(reader.path, at: at.position, found: o, expected: at.offset) }
            if entries.isEmpty || at.position - entries.last!.position >= LogFormat.indexInterval { entries.append(at) }
            at.before.add(t)
            at.position += size
            at.offset += 1
        }
        segmentBase = base
        segmentSize = at.position
        nextOffset = at.offset
        before = at.before
        lastEntryPosition = entries.last?.position
        segmentFD = open(log.segmentPath(base), O_WRONLY | O_CLOEXEC)
        guard segmentFD >= 0 else { throw SystemError("cannot open \(log.segmentPath(base))") }
        if (Durable.size(log.segmentPath(base)) ?? 0) > at.position {
            guard ftruncate(segmentFD, off_t(at.position)) == 0, fsync(segmentFD) == 0 else {
                throw SystemError("cannot truncate the torn tail of \(log.segmentPath(base))")
            }
        }
        guard lseek(segmentFD, off_t(at.position), SEEK_SET) >= 0 else { throw SystemError("cannot seek in \(log.segmentPath(base))") }
        var index = ByteWriter(capacity: entries.count * LogFormat.indexEntrySize)
        for e in entries { e.encode(to: &index) }
        try Durable.writeAtomically(log.indexPath(base), index.bytes)
        indexFD = open(log.indexPath(base), O_WRONLY | O_APPEND | O_CLOEXEC)
        guard indexFD >= 0 else { throw SystemError("cannot open \(log.indexPath(base))") }
    }

    private func createSegment(_ base: Int64) throws {
        for file in ["\(path)/\(LogFormat.name(base)).index", "\(path)/\(LogFormat.name(base)).log"] {
            let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw SystemError("cannot create \(file)") }
            fsync(fd)
            close(fd)
        }
        try Durable.syncFolder(path)
    }

    /// Starts a new segment at `nextOffset` (the current one is committed first).
    private func roll() throws {
        try commit()
        close(segmentFD)
        close(indexFD)
        try createSegment(nextOffset)
        segmentBase = nextOffset
        segmentSize = 0
        lastEntryPosition = nil
        segmentFD = open("\(path)/\(LogFormat.name(segmentBase)).log", O_WRONLY | O_APPEND | O_CLOEXEC)
        indexFD = open("\(path)/\(LogFormat.name(segmentBase)).index", O_WRONLY | O_APPEND | O_CLOEXEC)
        guard segmentFD >= 0, indexFD >= 0 else { throw SystemError("cannot open the new segment \(segmentBase)") }
    }

    /// Appends one event (buffered; durable after `commit()`).
    public func append(time: Int64, payload: UnsafeRawBufferPointer) throws {
        let size = Int64(LogFormat.headerSize + LogFormat.bodyPrefix + payload.count)
        guard payload.count + LogFormat.bodyPrefix <= LogFormat.maxBody else {
            throw EventLogError("event of \(payload.count) bytes is larger than the limit of \(LogFormat.maxBody)")
        }
        if segmentSize > 0 && segmentSize + size > metadata.segmentBytes { try roll() }
        if lastEntryPosition.map({ segmentSize - $0 >= LogFormat.indexInterval }) ?? true {
            IndexEntry(offset: nextOffset, position: segmentSize, before: before).encode(to: &pendingIndex)
            lastEntryPosition = segmentSize
        }
        LogFormat.encodeRecord(offset: nextOffset, time: time, payload: payload, into: &buffer)
        segmentSize += size
        nextOffset += 1
        before.add(time)
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Appends one encoded event.
    public func append(_ event: EncodedEvent) throws {
        try event.payload.withUnsafeBytes { try append(time: event.time, payload: $0) }
    }

    private func flush() throws {
        guard buffer.count > 0 else { return }
        try buffer.bytes.withUnsafeBytes { try Durable.writeAll(segmentFD, $0, path: "segment \(segmentBase)") }
        buffer.removeAll()
    }

    /// Makes every append so far durable: writes them, fsyncs the segment, then writes and
    /// fsyncs the index entries that point at them.
    public func commit() throws {
        try flush()
        guard fsync(segmentFD) == 0 else { throw SystemError("cannot fsync segment \(segmentBase)") }
        if pendingIndex.count > 0 {
            try pendingIndex.bytes.withUnsafeBytes { try Durable.writeAll(indexFD, $0, path: "index \(segmentBase)") }
            guard fsync(indexFD) == 0 else { throw SystemError("cannot fsync index \(segmentBase)") }
            pendingIndex.removeAll()
        }
    }
}
