#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// RFC 4180 CSV (and TSV) reading on raw bytes, accepting CSV as people have it.
//
// Dialect, and the choices made where RFC 4180 leaves room:
// - Fields are separated by one delimiter byte (`,` by default, `\t` for TSV) and records
//   end with `\n`, `\r\n` or a lone `\r`. The last record may lack a line ending.
// - A field that starts with `"` is quoted: it may hold delimiters and line endings, and
//   `""` stands for one `"`. Every other byte inside the quotes is data, kept exactly (a
//   `\r\n` stays `\r\n`). A quoted field must be followed by a delimiter or the end of the
//   record; anything else ("text after a closing quote") is a bad record.
// - A `"` inside an unquoted field (`37°36'37.8"N`, `12" pipe`) is an ordinary byte, as in
//   Python's csv module, DuckDB and Spark (`CSVQuotes.lenient`, the default). With
//   `CSVQuotes.strict` it is a bad record ("stray quote"), as RFC 4180 says; the rest of its
//   line is dropped and reading goes on at the next line.
// - With `multiLine` (the reader's default) a quoted field may span lines; an unclosed quote
//   then runs to the end of the input, and that one record is bad. Without it (byte ranges
//   of a split file, and plain files unless the job asks for `multiLine`), a quoted field
//   that reaches the end of its line is a bad record and reading goes on at the next line.
// - Empty lines are skipped. A UTF-8 byte order mark at the start of the stream is skipped.
// - When a field count is expected (given, or the header's width), a record with another
//   number of fields is a bad record.
// - Line numbers are 1-based and count `\n` bytes, including those inside quoted fields;
//   a record's line is the line it starts on.

/// How a `"` inside an unquoted field is read (a field that starts with `"` is quoted either way).
public enum CSVQuotes: Sendable, Equatable {
    /// As an ordinary byte: `5'10"` is read as it stands (Python's csv module, DuckDB, Spark).
    case lenient
    /// As a bad record, per RFC 4180: catches misquoted files early.
    case strict
}

/// The column names of a CSV file's header line, mapped to column indices (0-based).
public struct CSVHeader: Sendable, Equatable {
    /// The names in column order.
    public let names: [String]
    /// The file the header was read from, for error messages.
    public let source: String
    /// The line the header was read from, when known.
    public let line: Int?
    private let indices: [String: Int]

    /// Makes a header from column names. A repeated name maps to its first column.
    public init(names: [String], source: String = "", line: Int? = nil) {
        self.names = names
        self.source = source
        self.line = line
        var indices = [String: Int](minimumCapacity: names.count)
        for (i, name) in names.enumerated() where indices[name] == nil { indices[name] = i }
        self.indices = indices
    }

    /// The number of columns.
    public var count: Int { names.count }

    /// The index of the column `name`, or nil when there is no such column.
    public func index(of name: String) -> Int? { indices[name] }

    /// The index of the column `name`; throws an `InputError` naming the column and the file
    /// when the header has no such column. Resolve names once, outside record loops.
    public func column(_ name: String) throws -> Int {
        if let i = indices[name] { return i }
        throw InputError(source: source, line: line,
                         reason: "no column \"\(name)\" in the header (columns: \(names.joined(separator: ", ")))")
    }

    /// The indices of the columns `names`, in that order; throws as `column(_:)`.
    public func columns(_ names: [String]) throws -> [Int] { try names.map { try column($0) } }

    /// Headers are equal when their names, source and line are.
    public static func == (a: CSVHeader, b: CSVHeader) -> Bool {
        a.names == b.names && a.source == b.source && a.line == b.line
    }
}

/// Typed access to the fields of one CSV record, shared by the borrowed `CSVRecord` and the
/// owning `CSVRow`. Indices are 0-based. Fields are raw bytes (normally UTF-8); numbers are
/// parsed from the bytes directly. Typed accessors throw an `InputError` naming the file, the
/// line and the column when the field is missing or does not parse.
public protocol CSVFields {
    /// The number of fields.
    var count: Int { get }
    /// The 1-based line the record starts on.
    var line: Int { get }
    /// The name of the source the record was read from.
    var sourceName: String { get }
    /// The header of the file, when it has one (used for access by column name).
    var header: CSVHeader? { get }
    /// Calls `body` with the bytes of field `index` (unquoted, `""` already turned into `"`).
    /// The index must be in `0..<count`.
    func withField<R>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R
}

extension CSVFields {
    /// The field as a string (invalid UTF-8 is replaced by U+FFFD). Traps when out of range.
    @inlinable public subscript(_ index: Int) -> String {
        withField(index) { String(decoding: $0, as: UTF8.self) }
    }

    /// The field's bytes. Traps when out of range.
    @inlinable public func bytes(_ index: Int) -> [UInt8] { withField(index) { Array($0) } }

    /// All fields as strings.
    @inlinable public var fields: [String] { (0..<count).map { self[$0] } }

    /// The field as a string; throws when the record has no field `index`.
    @inlinable public func string(_ index: Int) throws -> String {
        try checkField(index)
        return self[index]
    }

    /// The field as a string, or nil when it is empty or `NA`.
    @inlinable public func optionalString(_ index: Int) throws -> String? {
        try checkField(index)
        return withField(index) { CSVScalars.isNull($0) ? nil : String(decoding: $0, as: UTF8.self) }
    }

    /// The field as an integer (optional sign, decimal digits, surrounding blanks allowed);
    /// throws when it is not one, naming file, line, column and value.
    @inlinable public func int(_ index: Int) throws -> Int {
        try checkField(index)
        return try withField(index) { p in
            if let v = CSVScalars.parseInt(p) { return v }
            throw fieldError(index, p, CSVScalars.intFailure(p))
        }
    }

    /// The field as an integer, or nil when it is empty or `NA`; throws as `int(_:)`.
    @inlinable public func optionalInt(_ index: Int) throws -> Int? {
        try checkField(index)
        return try withField(index) { p in
            if let v = CSVScalars.parseInt(p) { return v }
            if CSVScalars.isNull(p) { return nil }
            throw fieldError(index, p, CSVScalars.intFailure(p))
        }
    }

    /// The field as a floating-point number (anything `strtod` accepts, blanks allowed);
    /// throws when it is not one, naming file, line, column and value.
    @inlinable public func double(_ index: Int) throws -> Double {
        try checkField(index)
        return try withField(index) { p in
            if let v = CSVScalars.parseDouble(p) { return v }
            throw fieldError(index, p, "is not a number")
        }
    }

    /// The field as a floating-point number, or nil when it is empty or `NA`.
    @inlinable public func optionalDouble(_ index: Int) throws -> Double? {
        try checkField(index)
        return try withField(index) { p in
            if let v = CSVScalars.parseDouble(p) { return v }
            if CSVScalars.isNull(p) { return nil }
            throw fieldError(index, p, "is not a number")
        }
    }

    /// The field of column `name` as a string (looks the name up in the header each call).
    @inlinable public func string(_ name: String) throws -> String { try string(columnIndex(name)) }
    /// The field of column `name` as a string, or nil when it is empty or `NA`.
    @inlinable public func optionalString(_ name: String) throws -> String? {
        try optionalString(columnIndex(name))
    }
    /// The field of column `name` as an integer.
    @inlinable public func int(_ name: String) throws -> Int { try int(columnIndex(name)) }
    /// The field of column `name` as an integer, or nil when it is empty or `NA`.
    @inlinable public func optionalInt(_ name: String) throws -> Int? { try optionalInt(columnIndex(name)) }
    /// The field of column `name` as a floating-point number.
    @inlinable public func double(_ name: String) throws -> Double { try double(columnIndex(name)) }
    /// The field of column `name` as a floating-point number, or nil when it is empty or `NA`.
    @inlinable public func optionalDouble(_ name: String) throws -> Double? {
        try optionalDouble(columnIndex(name))
    }

    /// The index of column `name` in the header; throws when there is no header or no such column.
    @inlinable public func columnIndex(_ name: String) throws -> Int {
        guard let header else {
            throw InputError(source: sourceName, line: line,
                             reason: "no header to look up column \"\(name)\" in")
        }
        return try header.column(name)
    }

    /// Throws unless the record has a field `index`.
    @inlinable func checkField(_ index: Int) throws {
        if index < 0 || index >= count {
            throw InputError(source: sourceName, line: line,
                             reason: "no \(CSVScalars.columnLabel(index, header)): the record has \(count) fields", skippable: true)
        }
    }

    /// The error for a field that does not parse: `file:line: column "name": "value" <what>`.
    @usableFromInline func fieldError(_ index: Int, _ p: UnsafeBufferPointer<UInt8>, _ what: String) -> InputError {
        InputError(source: sourceName, line: line,
                   reason: "\(CSVScalars.columnLabel(index, header)): \(CSVScalars.quoted(p)) \(what)", skippable: true)
    }
}

/// One record of a `CSVReader`, borrowed: its fields point into the reader's buffer and are
/// valid only until the callback that received it returns. Use `toRow()` to keep it.
public struct CSVRecord: CSVFields {
    @usableFromInline let base: UnsafePointer<UInt8>
    /// Field `i` is `base[bounds[2*i] ..< bounds[2*i+1]]`.
    @usableFromInline let bounds: UnsafePointer<Int>
    /// The number of fields.
    public let count: Int
    /// The 1-based line the record starts on.
    public let line: Int
    @usableFromInline unowned(unsafe) let reader: CSVReader

    @usableFromInline init(base: UnsafePointer<UInt8>, bounds: UnsafePointer<Int>, count: Int, line: Int,
                           reader: CSVReader) {
        self.base = base
        self.bounds = bounds
        self.count = count
        self.line = line
        self.reader = reader
    }

    /// The name of the source the record was read from.
    public var sourceName: String { reader.source.name }
    /// The reader's header, when the file has one.
    public var header: CSVHeader? { reader.header }

    /// The bytes of field `index`, valid only during the callback. Traps when out of range.
    @inlinable public func field(_ index: Int) -> UnsafeBufferPointer<UInt8> {
        precondition(index >= 0 && index < count, "CSV field index \(index) out of range 0..<\(count)")
        let start = bounds[2 &* index]
        return UnsafeBufferPointer(start: base + start, count: bounds[2 &* index &+ 1] &- start)
    }

    /// Calls `body` with the bytes of field `index`.
    @inlinable public func withField<R>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(field(index))
    }

    /// Field `index` as a borrowed `ByteView`, valid while the record is being processed
    /// (through the narrow operators that follow, as with `textLineViews`): a key for
    /// `reduceByKey` without an allocation per record. `Bytes(view)` keeps it.
    @inlinable public func view(_ index: Int) throws -> ByteView {
        try checkField(index)
        return ByteView(UnsafeRawBufferPointer(field(index)))
    }

    /// The record's fields except `skip`, joined by tabs, borrowed like `view(_:)`: the record's
    /// own bytes when they already are that (unquoted TSV fields side by side), else a copy in
    /// the reader's per-record arena. A join's value without an allocation per record.
    @inlinable public func tabJoined(skipping skip: Int? = nil) -> ByteView {
        let first = skip == 0 ? 1 : 0, last = skip == count - 1 ? count - 2 : count - 1
        guard first <= last else { return ByteView(UnsafeRawBufferPointer(start: base, count: 0)) }
        if reader.delimiter == 0x09 && !(first...last).contains(skip ?? -1) {
            // Unquoted neighbours are one delimiter apart; a quoted field's bounds leave out its quotes.
            var contiguous = true
            for i in first..<last where bounds[2 &* i &+ 1] &+ 1 != bounds[2 &* i &+ 2] { contiguous = false; break }
            if contiguous {
                return ByteView(UnsafeRawBufferPointer(start: base + bounds[2 &* first], count: bounds[2 &* last &+ 1] &- bounds[2 &* first]))
            }
        }
        var total = 0
        for i in first...last where i != skip { total &+= bounds[2 &* i &+ 1] &- bounds[2 &* i] &+ 1 }
        let out = reader.arena.reserve(total - 1)
        var at = 0
        for i in first...last where i != skip {
            if at > 0 { out[at] = 0x09; at &+= 1 }
            let f = field(i)
            if f.count > 0 { (out + at).update(from: f.baseAddress!, count: f.count) }
            at &+= f.count
        }
        return ByteView(UnsafeRawBufferPointer(start: out, count: at))
    }

    /// Whether field `index` holds exactly the UTF-8 bytes of `string` (no allocation).
    @inlinable public func field(_ index: Int, equals string: StaticString) -> Bool {
        let f = field(index)
        return string.withUTF8Buffer { s in
            f.count == s.count && (f.count == 0 || memcmp(f.baseAddress!, s.baseAddress!, f.count) == 0)
        }
    }

    /// Copies the record into an owning `CSVRow`.
    public func toRow() -> CSVRow {
        var total = 0
        for i in 0..<count { total += bounds[2 * i + 1] - bounds[2 * i] }
        var storage = [UInt8]()
        storage.reserveCapacity(total)
        var ends = [Int]()
        ends.reserveCapacity(count)
        for i in 0..<count {
            storage.append(contentsOf: field(i))
            ends.append(storage.count)
        }
        return CSVRow(storage: storage, ends: ends, sourceName: sourceName, line: line, header: header)
    }
}

/// One CSV record that owns its fields (all field bytes in one array, plus their end offsets).
public struct CSVRow: CSVFields, Sendable, Equatable {
    @usableFromInline let storage: [UInt8]
    /// Field `i` is `storage[(i == 0 ? 0 : ends[i-1]) ..< ends[i]]`.
    @usableFromInline let ends: [Int]
    /// The name of the source the record was read from.
    public let sourceName: String
    /// The 1-based line the record starts on (0 when made by hand).
    public let line: Int
    /// The header of the file, when it has one.
    public let header: CSVHeader?

    @usableFromInline init(storage: [UInt8], ends: [Int], sourceName: String, line: Int, header: CSVHeader?) {
        self.storage = storage
        self.ends = ends
        self.sourceName = sourceName
        self.line = line
        self.header = header
    }

    /// Makes a row from field values (for tests and jobs that build rows themselves).
    public init(fields: [String], sourceName: String = "", line: Int = 0, header: CSVHeader? = nil) {
        var storage = [UInt8]()
        var ends = [Int]()
        for f in fields {
            storage.append(contentsOf: f.utf8)
            ends.append(storage.count)
        }
        self.init(storage: storage, ends: ends, sourceName: sourceName, line: line, header: header)
    }

    /// The number of fields.
    @inlinable public var count: Int { ends.count }

    /// Calls `body` with the bytes of field `index`. Traps when out of range.
    @inlinable public func withField<R>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        precondition(index >= 0 && index < ends.count, "CSV field index \(index) out of range 0..<\(ends.count)")
        let start = index == 0 ? 0 : ends[index - 1]
        return try storage.withUnsafeBufferPointer { p in
            try body(UnsafeBufferPointer(rebasing: p[start..<ends[index]]))
        }
    }
}

/// Parsing helpers for field values; internal, but visible to the inlinable accessors.
@usableFromInline package enum CSVScalars {
    @usableFromInline package static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    /// The field without leading and trailing spaces and tabs, as `start..<end`.
    @usableFromInline package static func trimmed(_ p: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        var i = 0
        var n = p.count
        while i < n && isBlank(p[i]) { i += 1 }
        while n > i && isBlank(p[n - 1]) { n -= 1 }
        return i..<n
    }

    /// True for a field that is empty, blank, or `NA`.
    @usableFromInline package static func isNull(_ p: UnsafeBufferPointer<UInt8>) -> Bool {
        let r = trimmed(p)
        return r.isEmpty || (r.count == 2 && p[r.lowerBound] == UInt8(ascii: "N") && p[r.lowerBound + 1] == UInt8(ascii: "A"))
    }

    /// Parses `[blanks][+|-]digits[blanks]` into an `Int`; nil when malformed or out of range.
    @usableFromInline package static func parseInt(_ p: UnsafeBufferPointer<UInt8>) -> Int? {
        let r = trimmed(p)
        var i = r.lowerBound
        let n = r.upperBound
        guard i < n else { return nil }
        var negative = false
        if p[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        } else if p[i] == UInt8(ascii: "+") {
            i += 1
        }
        guard i < n else { return nil }
        var v: UInt64 = 0
        while i < n {
            let d = p[i] &- 48
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            v = a
            i += 1
        }
        if negative {
            if v <= UInt64(Int.max) { return -Int(v) }
            return v == UInt64(Int.max) + 1 ? Int.min : nil
        }
        return v <= UInt64(Int.max) ? Int(v) : nil
    }

    /// Why `parseInt` failed, for the error message.
    @usableFromInline package static func intFailure(_ p: UnsafeBufferPointer<UInt8>) -> String {
        let r = trimmed(p)
        var i = r.lowerBound
        if i < r.upperBound && (p[i] == UInt8(ascii: "-") || p[i] == UInt8(ascii: "+")) { i += 1 }
        if i < r.upperBound && p[i..<r.upperBound].allSatisfy({ $0 &- 48 < 10 }) {
            return "is out of range for an integer"
        }
        return "is not an integer"
    }

    /// Exact powers of ten for the fast decimal path.
    private static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// Parses a floating-point number. Plain decimals (`-12.345`, at most 15 significant digits)
    /// take an exact fast path (an integer divided by a power of ten, both exact doubles, so
    /// the result is correctly rounded); everything else goes to `strtod`.
    @usableFromInline package static func parseDouble(_ p: UnsafeBufferPointer<UInt8>) -> Double? {
        let r = trimmed(p)
        guard !r.isEmpty else { return nil }
        // Fast path.
        var i = r.lowerBound
        var negative = false
        if p[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        } else if p[i] == UInt8(ascii: "+") {
            i += 1
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var fraction = 0
        var seenPoint = false
        var simple = i < r.upperBound
        while i < r.upperBound {
            let b = p[i]
            let d = b &- 48
            if d < 10 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                digits += 1
                if seenPoint { fraction += 1 }
            } else if b == UInt8(ascii: ".") && !seenPoint {
                seenPoint = true
            } else {
                simple = false
                break
            }
            i += 1
        }
        if simple && digits > 0 && digits <= 15 {
            let v = Double(mantissa) / powersOfTen[fraction]
            return negative ? -v : v
        }
        // Slow path: strtod on a NUL-terminated copy (on the stack when short).
        let field = UnsafeBufferPointer(rebasing: p[r])
        if field.count < 64 {
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { strtodExact(field, $0) }
        }
        let heap = UnsafeMutableBufferPointer<CChar>.allocate(capacity: field.count + 1)
        defer { heap.deallocate() }
        return strtodExact(field, heap)
    }

    /// `strtod` of `field` copied into `scratch` (at least one byte longer); nil unless it
    /// consumes every byte.
    private static func strtodExact(_ field: UnsafeBufferPointer<UInt8>, _ scratch: UnsafeMutableBufferPointer<CChar>) -> Double? {
        let base = scratch.baseAddress!
        let len = field.count
        UnsafeMutableRawPointer(base).copyMemory(from: field.baseAddress!, byteCount: len)
        base[len] = 0
        var end: UnsafeMutablePointer<CChar>? = nil
        let v = strtod(base, &end)
        return end == base + len ? v : nil
    }

    /// `column "name"` from the header, or `field N` (1-based) without one.
    @usableFromInline package static func columnLabel(_ index: Int, _ header: CSVHeader?) -> String {
        if let header, index >= 0, index < header.count { return "column \"\(header.names[index])\"" }
        return "field \(index + 1)"
    }

    /// The value in double quotes for an error message, shortened when long.
    @usableFromInline package static func quoted(_ p: UnsafeBufferPointer<UInt8>) -> String {
        var s = String(decoding: p.prefix(60), as: UTF8.self)
        if p.count > 60 { s += "…" }
        return "\"\(s)\""
    }
}

/// Reads CSV (RFC 4180) or TSV records from a `ByteSource`, in chunks of 1 MiB, without
/// building strings: each record's fields are byte ranges into a reused buffer.
///
/// Two ways to read: `readAll(_:onBadRecord:)` pushes borrowed `CSVRecord`s to a callback (no
/// allocation per record), and `next()` returns owning `CSVRow`s. A bad record (wrong field
/// count, unclosed quote, text after a closing quote, a stray quote under `.strict`) is
/// reported as an `InputError` naming the source and the line; reading can go on with the
/// next record after it. See the comment at the top of this file for the dialect.
public final class CSVReader {
    /// Where the bytes come from.
    public let source: any ByteSource
    /// The field separator byte.
    public let delimiter: UInt8
    /// Whether `"` quotes fields (RFC 4180); when false it is an ordinary byte (plain TSV).
    public let quoting: Bool
    /// How a `"` inside an unquoted field is read: an ordinary byte (`.lenient`) or a bad record.
    public let quotes: CSVQuotes
    /// Whether quoted fields may hold newlines (RFC 4180). Off where a record is one line
    /// (plain files a job reads without `multiLine`, maybe in line-aligned byte ranges): an
    /// unclosed quote then spoils one line, not the rest of the file.
    public let multiLine: Bool
    /// The header, when the reader was told the input has one (nil for empty input).
    public private(set) var header: CSVHeader?
    /// The number of fields every record must have: the one given, else the header's width,
    /// else nil (no check).
    public private(set) var expectedFieldCount: Int?

    /// Room for bytes a record hands out borrowed (`CSVRecord.tabJoined`), emptied at each record.
    @usableFromInline let arena = RecordArena()

    // The reader is used by one thread and its accesses never overlap: no dynamic
    // exclusivity checks on the per-byte state (they cost ~5 % of a CSV scan).
    @exclusivity(unchecked) private var buffer: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var capacity: Int
    /// The buffer never grows past this: one record may not take more memory.
    private let maxRecordBytes: Int
    /// The next byte to parse; `line` is the line it is on.
    @exclusivity(unchecked) private var start = 0
    /// The end of the bytes read into `buffer`.
    @exclusivity(unchecked) private var end = 0
    @exclusivity(unchecked) private var line = 1
    @exclusivity(unchecked) private var eof = false
    @exclusivity(unchecked) private var finished = false
    @exclusivity(unchecked) private var bomChecked = false
    /// After a malformed record: drop bytes up to the next `\n` before the next record.
    @exclusivity(unchecked) private var skipToLineEnd = false
    /// The stream offset of `buffer[0]`.
    @exclusivity(unchecked) private var bufferOffset: Int64 = 0

    /// Field bounds of the current record: pairs (start, end) of buffer offsets; a start stored
    /// as `~start` marks a quoted field with `""` still to unescape.
    @exclusivity(unchecked) private var bounds: UnsafeMutablePointer<Int>
    @exclusivity(unchecked) private var boundsCapacity: Int
    @exclusivity(unchecked) private var fieldCount = 0
    @exclusivity(unchecked) private var recordLine = 0
    @exclusivity(unchecked) private var recordStart = 0

    /// Byte classes for the unquoted scan: 0 for ordinary bytes.
    private let classes: UnsafeMutablePointer<UInt8>
    private static let classDelimiter: UInt8 = 1
    private static let classLineEnd: UInt8 = 2
    private static let classQuote: UInt8 = 3

    private static let quote = UInt8(ascii: "\"")
    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")

    /// Opens a reader on `source`. With `hasHeader`, reads the first record as the header
    /// (throwing if it is bad). `expectedFieldCount` overrides the header's width as the
    /// field count every record must have. With `quoting` false, `"` is an ordinary byte
    /// (for plain TSV, which has no quoting); `quotes` says how a `"` inside an unquoted field
    /// is read. `chunkSize` is the initial buffer size; the buffer grows when one record is larger,
    /// up to `maxRecordBytes`: a longer record is an error naming the byte where it starts.
    public init(_ source: any ByteSource, delimiter: UInt8 = UInt8(ascii: ","), hasHeader: Bool,
                expectedFieldCount: Int? = nil, quoting: Bool = true, quotes: CSVQuotes = .lenient,
                multiLine: Bool = true, chunkSize: Int = 1 << 20, maxRecordBytes: Int = .max) throws {
        self.maxRecordBytes = maxRecordBytes
        self.multiLine = multiLine
        self.quotes = quotes
        precondition(delimiter != CSVReader.quote && delimiter != CSVReader.lf && delimiter != CSVReader.cr,
                     "the CSV delimiter cannot be a quote or a line ending")
        self.source = source
        self.delimiter = delimiter
        self.quoting = quoting
        capacity = max(chunkSize, 16)
        buffer = .allocate(capacity: capacity)
        boundsCapacity = 16
        bounds = .allocate(capacity: 2 * boundsCapacity)
        classes = .allocate(capacity: 256)
        classes.initialize(repeating: 0, count: 256)
        classes[Int(delimiter)] = CSVReader.classDelimiter
        classes[Int(CSVReader.lf)] = CSVReader.classLineEnd
        classes[Int(CSVReader.cr)] = CSVReader.classLineEnd
        // Leniently, a quote only matters at the start of a field, which `scanRecord` checks.
        if quoting && quotes == .strict { classes[Int(CSVReader.quote)] = CSVReader.classQuote }

        self.expectedFieldCount = expectedFieldCount
        if hasHeader {
            switch try parseNext() {
            case .record:
                let names = (0..<fieldCount).map { String(decoding: currentField($0), as: UTF8.self) }
                header = CSVHeader(names: names, source: source.name, line: recordLine)
                if self.expectedFieldCount == nil { self.expectedFieldCount = names.count }
            case .bad(let error):
                throw error
            case .end:
                break
            }
        }
    }

    /// Opens a reader on the file at `path` (see `init(_:delimiter:hasHeader:expectedFieldCount:quoting:quotes:multiLine:chunkSize:)`).
    public convenience init(path: String, delimiter: UInt8 = UInt8(ascii: ","), hasHeader: Bool,
                            expectedFieldCount: Int? = nil, quoting: Bool = true, quotes: CSVQuotes = .lenient) throws {
        try self.init(FileByteSource(path: path), delimiter: delimiter, hasHeader: hasHeader,
                      expectedFieldCount: expectedFieldCount, quoting: quoting, quotes: quotes)
    }

    deinit {
        buffer.deallocate()
        bounds.deallocate()
        classes.deallocate()
    }

    /// Calls `body` with every remaining record, borrowed (valid only during the call). A bad
    /// record goes to `onBadRecord` instead; its default throws, stopping the read. When
    /// `onBadRecord` returns, reading goes on with the next record. Errors from the source or
    /// from `body` stop the read. `body` must not call the reader.
    public func readAll(_ body: (CSVRecord) throws -> Void,
                        onBadRecord: (InputError) throws -> Void = { throw $0 }) throws {
        while true {
            switch try parseNext() {
            case .record:
                arena.reset()
                try body(CSVRecord(base: buffer, bounds: bounds, count: fieldCount, line: recordLine, reader: self))
            case .bad(let error):
                try onBadRecord(error)
            case .end:
                return
            }
        }
    }

    /// Calls `body` with the next record, borrowed, and returns its result; nil at the end of
    /// the input. Throws an `InputError` for a bad record; calling again goes on after it.
    public func nextRecord<R>(_ body: (CSVRecord) throws -> R) throws -> R? {
        switch try parseNext() {
        case .record:
            arena.reset()
            return try body(CSVRecord(base: buffer, bounds: bounds, count: fieldCount, line: recordLine, reader: self))
        case .bad(let error):
            throw error
        case .end:
            return nil
        }
    }

    /// The next record as an owning row; nil at the end of the input. Throws an `InputError`
    /// for a bad record; calling again goes on after it.
    public func next() throws -> CSVRow? {
        try nextRecord { $0.toRow() }
    }

    // MARK: - Parsing

    private enum Step {
        case record
        case bad(InputError)
        case end
    }

    private enum Scan {
        /// A whole record; `end` is the offset of its line ending (or of the end of input).
        case complete(end: Int, newlines: Int, escaped: Bool)
        /// The record goes on past the bytes read so far.
        case needMore
        /// End of input inside a quoted field that opened `newlines` lines after the record's start.
        case unclosedQuote(newlines: Int)
        /// With `multiLine` off: a quoted field reached the end of its line.
        case quoteAtLineEnd(position: Int, newlines: Int)
        /// A quote in an unquoted field (strict quotes only), or text after a closing quote, at `position`.
        case malformed(position: Int, newlines: Int, field: Int, strayQuote: Bool)
    }

    @inline(__always) private func currentField(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: buffer + bounds[2 * i], count: bounds[2 * i + 1] - bounds[2 * i])
    }

    /// A malformed record.
    private func error(_ reason: String) -> InputError {
        InputError(source: source.name, line: recordLine, offset: bufferOffset + Int64(recordStart), reason: reason,
                   skippable: true)
    }

    /// Parses the next record into `bounds`/`fieldCount`/`recordLine`.
    private func parseNext() throws -> Step {
        while true {
            if finished { return .end }
            if !bomChecked {
                while end - start < 3 && !eof { try refill() }
                if end - start >= 3 && buffer[start] == 0xEF && buffer[start + 1] == 0xBB && buffer[start + 2] == 0xBF {
                    start += 3
                }
                bomChecked = true
            }
            if skipToLineEnd {
                if let nl = memchr(buffer + start, Int32(CSVReader.lf), end - start) {
                    start = buffer.distance(to: nl.assumingMemoryBound(to: UInt8.self)) + 1
                    line += 1
                    skipToLineEnd = false
                } else {
                    start = end
                    if eof {
                        finished = true
                        return .end
                    }
                    try refill()
                    continue
                }
            }
            // Skip line endings: the one ending the previous record and empty lines.
            while start < end {
                let b = buffer[start]
                if b == CSVReader.lf {
                    line += 1
                } else if b != CSVReader.cr {
                    break
                }
                start += 1
            }
            if start == end {
                if eof {
                    finished = true
                    return .end
                }
                try refill()
                continue
            }
            recordStart = start
            recordLine = line
            switch scanRecord() {
            case let .complete(recordEnd, newlines, escaped):
                if escaped { unescape() }
                start = recordEnd
                line += newlines
                if let expected = expectedFieldCount, fieldCount != expected {
                    return .bad(error("expected \(expected) fields, found \(fieldCount)"))
                }
                return .record
            case .needMore:
                try refill()
            case let .unclosedQuote(newlines):
                finished = true
                return .bad(error("unclosed quote starting at line \(recordLine + newlines)"))
            case let .quoteAtLineEnd(position, newlines):
                start = position
                line += newlines
                skipToLineEnd = true
                return .bad(error("unclosed quote at the end of the line (records of plain CSV files are single lines "
                    + "unless the job reads them with multiLine: true)"))
            case let .malformed(position, newlines, field, strayQuote):
                start = position
                line += newlines
                skipToLineEnd = true
                let label = CSVScalars.columnLabel(field, header)
                return .bad(error(strayQuote
                    ? "stray quote in unquoted \(label) (quote the field and double its quotes)"
                    : "text after the closing quote of \(label)"))
            }
        }
    }

    /// Scans one record starting at `start`, recording field bounds. Does not change the
    /// buffer, so a record cut by the end of the bytes read so far is scanned again from its
    /// start after `refill()`.
    @inline(__always) private func scanRecord() -> Scan {
        let buf = buffer
        let end = self.end
        let eof = self.eof
        let delimiter = self.delimiter
        let classes = self.classes
        let quoting = self.quoting
        let multiLine = self.multiLine
        let quote = CSVReader.quote
        var bounds = self.bounds
        var boundsCapacity = self.boundsCapacity
        var p = start
        var nf = 0
        var newlines = 0
        var escaped = false

        @inline(__always) func record(_ s: Int, _ e: Int) {
            if nf == boundsCapacity {
                let grown = UnsafeMutablePointer<Int>.allocate(capacity: 4 * boundsCapacity)
                grown.moveInitialize(from: bounds, count: 2 * boundsCapacity)
                bounds.deallocate()
                bounds = grown
                boundsCapacity *= 2
                self.bounds = grown
                self.boundsCapacity = boundsCapacity
            }
            bounds[2 &* nf] = s
            bounds[2 &* nf &+ 1] = e
            nf &+= 1
        }

        while true {
            if p == end {
                // A field starting at the end of the bytes: empty last field, or more to read.
                if !eof { return .needMore }
                record(p, p)
                fieldCount = nf
                return .complete(end: p, newlines: newlines, escaped: escaped)
            }
            var c = buf[p]
            if quoting && c == quote {
                p &+= 1
                let contentStart = p
                let quoteNewlines = newlines
                var doubled = false
                while true {
                    while p < end {
                        c = buf[p]
                        if c == quote { break }
                        if c == CSVReader.lf {
                            if !multiLine { return .quoteAtLineEnd(position: p, newlines: newlines) }
                            newlines &+= 1
                        }
                        p &+= 1
                    }
                    if p == end { return eof ? .unclosedQuote(newlines: quoteNewlines) : .needMore }
                    // buf[p] is a quote: doubled, or the closing one.
                    if p &+ 1 == end {
                        if !eof { return .needMore }
                        record(doubled ? ~contentStart : contentStart, p)
                        escaped = escaped || doubled
                        fieldCount = nf
                        return .complete(end: p &+ 1, newlines: newlines, escaped: escaped)
                    }
                    let next = buf[p &+ 1]
                    if next == quote {
                        doubled = true
                        p &+= 2
                        continue
                    }
                    record(doubled ? ~contentStart : contentStart, p)
                    escaped = escaped || doubled
                    p &+= 1
                    if next == delimiter {
                        p &+= 1
                        break
                    }
                    if next == CSVReader.lf || next == CSVReader.cr {
                        fieldCount = nf
                        return .complete(end: p, newlines: newlines, escaped: escaped)
                    }
                    return .malformed(position: p, newlines: newlines, field: nf &- 1, strayQuote: false)
                }
            } else {
                let fieldStart = p
                while true {
                    let k = classes[Int(c)]
                    if k != 0 {
                        if k == CSVReader.classDelimiter {
                            record(fieldStart, p)
                            p &+= 1
                            break
                        }
                        if k == CSVReader.classLineEnd {
                            record(fieldStart, p)
                            fieldCount = nf
                            return .complete(end: p, newlines: newlines, escaped: escaped)
                        }
                        return .malformed(position: p, newlines: newlines, field: nf, strayQuote: true)
                    }
                    p &+= 1
                    if p == end {
                        if !eof { return .needMore }
                        record(fieldStart, p)
                        fieldCount = nf
                        return .complete(end: p, newlines: newlines, escaped: escaped)
                    }
                    c = buf[p]
                }
            }
        }
    }

    /// Turns `""` into `"` in place in the quoted fields marked for it.
    private func unescape() {
        for i in 0..<fieldCount where bounds[2 * i] < 0 {
            let s = ~bounds[2 * i]
            let e = bounds[2 * i + 1]
            var r = s
            var w = s
            while r < e {
                let b = buffer[r]
                buffer[w] = b
                w += 1
                r += b == CSVReader.quote ? 2 : 1
            }
            bounds[2 * i] = s
            bounds[2 * i + 1] = w
        }
    }

    /// Moves the unparsed bytes to the front of the buffer and reads more after them: at least
    /// as many bytes as are kept (so re-scanning a long record costs linear time overall), or
    /// until the buffer is full or the input ends. Grows the buffer when it is full.
    private func refill() throws {
        let keep = end - start
        if start > 0 {
            if keep > 0 { memmove(buffer, buffer + start, keep) }
            bufferOffset += Int64(start)
            start = 0
            end = keep
        }
        if end == capacity {
            guard capacity < maxRecordBytes else {
                throw InputError(source: source.name, offset: bufferOffset,
                                 reason: "record longer than the record limit of \(formatBytes(Int64(maxRecordBytes))) (--max-record-size)")
            }
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
            grown.update(from: buffer, count: end)
            buffer.deallocate()
            buffer = grown
            capacity *= 2
        }
        let want = max(1, keep)
        var got = 0
        while got < want && end < capacity {
            let n = try source.read(into: UnsafeMutableRawBufferPointer(start: buffer + end, count: capacity - end))
            if n <= 0 {
                eof = true
                return
            }
            end += n
            got += n
        }
    }
}

/// Memory for bytes that live as long as the record being processed: `reserve` hands out room
/// that stays put until `reset` (the next record). Kept whole (`keepsAll`, for the reference
/// executor, whose records all live at once), nothing is ever reset or moved.
@usableFromInline final class RecordArena {
    // Touched for every field copied: no dynamic exclusivity checks.
    @usableFromInline @exclusivity(unchecked) var chunks: [UnsafeMutableRawBufferPointer] = []
    @usableFromInline @exclusivity(unchecked) var used = 0
    /// Never reset: every view handed out stays valid while the arena lives.
    @usableFromInline var keepsAll = false

    @usableFromInline init() {}

    deinit { chunks.forEach { $0.deallocate() } }

    /// `count` bytes of room, valid until the next `reset`.
    @inlinable func reserve(_ count: Int) -> UnsafeMutablePointer<UInt8> {
        if let chunk = chunks.last, chunk.count - used >= count {
            defer { used &+= count }
            return (chunk.baseAddress! + used).assumingMemoryBound(to: UInt8.self)
        }
        return grow(count)
    }

    /// A new chunk for `count` bytes (earlier chunks stay: their views are still handed out).
    @usableFromInline func grow(_ count: Int) -> UnsafeMutablePointer<UInt8> {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, (chunks.last?.count ?? 0) * 2, 1 << 12), alignment: 8)
        chunks.append(chunk)
        used = count
        return chunk.baseAddress!.assumingMemoryBound(to: UInt8.self)
    }

    /// Empties the arena for the next record, keeping its largest chunk.
    @inlinable func reset() {
        guard !keepsAll, used > 0 || chunks.count > 1 else { return }
        if chunks.count > 1 {
            let largest = chunks.removeLast()
            chunks.forEach { $0.deallocate() }
            chunks = [largest]
        }
        used = 0
    }
}
