import Sluice
/// Appends records from CSV or JSON Lines files (or standard input) to an event log: each
/// record becomes one event whose time is read from the event-time field, and whose fields
/// are stored in the log's column order (columns new to the log are added to its schema).
/// Appends are committed (written and fsync'd) every `commitEvery` events and at the end.
public struct LogAppender {
    /// The input format.
    public enum Format: String, Sendable, CaseIterable {
        /// `.json`, `.jsonl`, `.ndjson` files are JSON Lines, others CSV; on standard input,
        /// a first `{` means JSON Lines.
        case auto
        case csv
        case json
    }

    /// The event-time column (default: the log's, else `ts`, `time`, `timestamp` or `event_time`).
    public var timeField: String?
    /// How event times are written (default: the log's, else `auto`).
    public var timeFormat: EventTime.Format?
    public var format: Format = .auto
    /// Events per committed append batch.
    public var commitEvery = 10_000

    public init() {}

    static let timeFieldGuesses = ["ts", "time", "timestamp", "event_time", "eventTime"]

    /// Appends the records of the file at `path` (`-` for standard input; `.gz` is
    /// decompressed); returns how many events were appended.
    @discardableResult
    public func append(path: String, to writer: EventLogWriter) throws -> Int {
        var source: ByteSource
        if path == "-" {
            source = try FileByteSource(path: "/dev/stdin")
        } else if path.hasSuffix(".gz") {
            source = try GzipSource(path: path)
        } else {
            source = try FileByteSource(path: path)
        }
        var format = self.format
        if format == .auto {
            let name = path.hasSuffix(".gz") ? String(path.dropLast(3)) : path
            if [".json", ".jsonl", ".ndjson"].contains(where: { name.hasSuffix($0) }) {
                format = .json
            } else if path == "-" {
                // Peek at the first bytes, then put them back in front of the rest.
                var first = [UInt8](repeating: 0, count: 1 << 16)
                let n = try first.withUnsafeMutableBytes { try source.read(into: $0) }
                first.removeSubrange(n...)
                format = first.first(where: { !Bytes.isWhitespace($0) }) == UInt8(ascii: "{") ? .json : .csv
                source = ConcatenatedSource(prefix: first, rest: source, name: "standard input")
            } else {
                format = .csv
            }
        }
        return format == .json ? try appendJSONLines(source, name: path == "-" ? "standard input" : path, to: writer)
            : try appendCSV(source, to: writer)
    }

    /// The event-time field and format to use with a log.
    private func timeSettings(_ writer: EventLogWriter, columns: [String], source: String) throws -> (String, EventTime.Format) {
        let logField = writer.schema.timeField
        if let timeField, let logField, timeField != logField {
            throw LambdaError("the event log takes its event time from \"\(logField)\", not \"\(timeField)\"")
        }
        guard let field = timeField ?? logField ?? LogAppender.timeFieldGuesses.first(where: columns.contains) else {
            throw InputError(source: source, reason: "no event-time field: name it with --time-field (columns: \(columns.joined(separator: ", ")))")
        }
        let format = timeFormat ?? writer.timeFormat.flatMap(EventTime.Format.init(rawValue:)) ?? .auto
        return (field, format)
    }

    private func appendCSV(_ source: ByteSource, to writer: EventLogWriter) throws -> Int {
        let reader = try CSVReader(source, hasHeader: true)
        guard let header = reader.header else { return 0 }
        let (field, format) = try timeSettings(writer, columns: header.names, source: source.name)
        guard let timeColumn = header.index(of: field) else {
            throw InputError(source: source.name, line: header.line, reason: "no event-time column \"\(field)\" (columns: \(header.names.joined(separator: ", ")))")
        }
        try writer.extendSchema(columns: header.names, timeField: field, timeFormat: format.rawValue)
        let map = writer.schema.columns.map { header.index(of: $0) ?? -1 }
        var payload = ByteWriter(capacity: 256)
        var count = 0
        try reader.readAll { record in
            let time = try record.withField(timeColumn) { p -> Int64 in
                guard let t = EventTime.parse(p, format: format) else {
                    throw InputError(source: record.sourceName, line: record.line,
                                     reason: "event time \(CSVScalars.quoted(p)) in column \"\(field)\" is not a \(format.rawValue) time")
                }
                return t
            }
            payload.removeAll()
            payload.writeVarint(UInt64(map.count))
            for i in map {
                if i < 0 { payload.writeVarint(0) } else { record.withField(i) { payload.writeLengthPrefixed($0) } }
            }
            try payload.bytes.withUnsafeBytes { try writer.append(time: time, payload: $0) }
            count += 1
            if count % commitEvery == 0 { try writer.commit() }
        }
        try writer.commit()
        return count
    }

    private func appendJSONLines(_ source: ByteSource, name: String, to writer: EventLogWriter) throws -> Int {
        var count = 0
        var lineNumber = 0
        var payload = ByteWriter(capacity: 256)
        var settings: (field: String, format: EventTime.Format)?
        try LineReader(capacity: 1 << 20).forEachLine(source) { raw, _ in
            lineNumber += 1
            var line = raw
            if line.last == 0x0D { line = UnsafeRawBufferPointer(rebasing: line.dropLast()) }
            if line.allSatisfy(Bytes.isWhitespace) { return }
            let fields: [(String, [UInt8])]
            do {
                fields = try JSONLine.fields(line)
            } catch let failure as JSONLine.Failure {
                throw InputError(source: name, line: lineNumber, reason: "invalid JSON line: \(failure.reason)")
            }
            let names = fields.map(\.0)
            if settings == nil {
                let (field, format) = try timeSettings(writer, columns: names, source: name)
                settings = (field, format)
                try writer.extendSchema(columns: [], timeField: field, timeFormat: format.rawValue)
            }
            let columns = writer.schema.columns
            let added = names.filter { !columns.contains($0) }.sorted()
            if !added.isEmpty { try writer.extendSchema(columns: added, timeField: nil, timeFormat: nil) }
            guard let timeText = fields.first(where: { $0.0 == settings!.field })?.1 else {
                throw InputError(source: name, line: lineNumber, reason: "no event-time field \"\(settings!.field)\"")
            }
            let time = try timeText.withUnsafeBufferPointer { p -> Int64 in
                guard let t = EventTime.parse(p, format: settings!.format) else {
                    throw InputError(source: name, line: lineNumber,
                                     reason: "event time \(CSVScalars.quoted(p)) in \"\(settings!.field)\" is not a \(settings!.format.rawValue) time")
                }
                return t
            }
            var byName: [String: [UInt8]] = [:]
            for (k, v) in fields { byName[k] = v }
            let schema = writer.schema.columns
            payload.removeAll()
            payload.writeVarint(UInt64(schema.count))
            for c in schema { payload.writeLengthPrefixed(byName[c] ?? []) }
            try payload.bytes.withUnsafeBytes { try writer.append(time: time, payload: $0) }
            count += 1
            if count % commitEvery == 0 { try writer.commit() }
        }
        try writer.commit()
        return count
    }

    /// Appends a feed's events (`sluice log append --feed JOB`); the log must be new or
    /// have the feed's columns.
    @discardableResult
    public static func append(feed: EventFeed, inputs: [String], to writer: EventLogWriter) throws -> Int {
        let (schema, events) = try feed.read(inputs.isEmpty ? feed.defaultInputs : inputs)
        let existing = writer.schema.columns
        guard existing.isEmpty || existing == schema.columns else {
            throw LambdaError("the event log's columns (\(existing.joined(separator: ", "))) are not the feed's (\(schema.columns.joined(separator: ", ")))")
        }
        try writer.extendSchema(columns: schema.columns, timeField: schema.timeField, timeFormat: EventTime.Format.epochMillis.rawValue)
        for (i, e) in events.enumerated() {
            try writer.append(e)
            if (i + 1) % 10_000 == 0 { try writer.commit() }
        }
        try writer.commit()
        return events.count
    }
}

/// The top-level fields of one JSON object, each value as text: strings unescaped, other
/// values (numbers, `true`, nested objects …) exactly as written, `null` as empty.
enum JSONLine {
    struct Failure: Error { var reason: String }

    static func fields(_ p: UnsafeRawBufferPointer) throws -> [(String, [UInt8])] {
        var i = 0
        let n = p.count
        func skip() { while i < n && Bytes.isWhitespace(p[i]) { i += 1 } }
        func fail(_ why: String) -> Failure { Failure(reason: "\(why) at byte \(i + 1)") }
        func expect(_ c: UInt8) throws {
            skip()
            guard i < n, p[i] == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
            i += 1
        }
        func hex4() throws -> UInt32 {
            guard i + 4 <= n else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = p[i]
                let d: UInt8
                switch c {
                case 0x30...0x39: d = c - 0x30
                case 0x61...0x66: d = c - 0x61 + 10
                case 0x41...0x46: d = c - 0x41 + 10
                default: throw fail("bad \\u escape")
                }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return v
        }
        func string() throws -> [UInt8] {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while i < n {
                let c = p[i]
                i += 1
                if c == UInt8(ascii: "\"") { return out }
                guard c == UInt8(ascii: "\\") else {
                    out.append(c)
                    continue
                }
                guard i < n else { break }
                let e = p[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), i + 6 <= n, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let low = try hex4()
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00)
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
                default: out.append(e)
                }
            }
            throw fail("unterminated string")
        }
        func rawValue() throws -> [UInt8] {
            let start = i
            var depth = 0
            while i < n {
                let c = p[i]
                if c == UInt8(ascii: "\"") {
                    _ = try string()
                    continue
                }
                if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
                if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                    if depth == 0 { break }
                    depth -= 1
                }
                if depth == 0 && (c == UInt8(ascii: ",") || Bytes.isWhitespace(c)) { break }
                i += 1
            }
            guard i > start, depth == 0 else { throw fail("bad value") }
            let text = Array(p[start..<i])
            return text == Array("null".utf8) ? [] : text
        }

        try expect(UInt8(ascii: "{"))
        var out: [(String, [UInt8])] = []
        skip()
        if i < n && p[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skip()
                let key = String(decoding: try string(), as: UTF8.self)
                try expect(UInt8(ascii: ":"))
                skip()
                guard i < n else { throw fail("missing value") }
                out.append((key, p[i] == UInt8(ascii: "\"") ? try string() : try rawValue()))
                skip()
                guard i < n else { throw fail("unterminated object") }
                if p[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                break
            }
        }
        skip()
        guard i == n else { throw fail("text after the object") }
        return out
    }
}
