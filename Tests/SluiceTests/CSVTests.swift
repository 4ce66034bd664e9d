import Testing
@testable import Sluice
import SluiceGenerators
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// In-memory bytes served in reads of a chosen size: everything at once, or 1...7 bytes per
/// read (seeded) so that quotes, delimiters and CRLF straddle read boundaries.
private final class ChoppySource: ByteSource {
    let name: String
    private let data: [UInt8]
    private var position = 0
    private var rng: DeterministicRandom?

    init(_ text: String, name: String = "test.csv", choppySeed: UInt64? = nil) {
        self.name = name
        data = Array(text.utf8)
        rng = choppySeed.map { DeterministicRandom(seed: $0) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var n = min(buffer.count, data.count - position)
        if var r = rng {
            n = min(n, 1 + Int(r.next(below: 7)))
            rng = r
        }
        if n <= 0 { return 0 }
        data.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + position, byteCount: n)
        }
        position += n
        return n
    }
}

/// A parsed record for comparisons: its fields and its line.
private struct Parsed: Equatable, CustomStringConvertible {
    var fields: [String]
    var line: Int
    var description: String { "\(line):\(fields)" }
}

private func parse(_ text: String, hasHeader: Bool = false, delimiter: UInt8 = UInt8(ascii: ","),
                   expected: Int? = nil, multiLine: Bool = true, choppySeed: UInt64? = nil,
                   chunkSize: Int = 1 << 20) throws -> [Parsed] {
    let reader = try CSVReader(ChoppySource(text, choppySeed: choppySeed), delimiter: delimiter,
                               hasHeader: hasHeader, expectedFieldCount: expected, multiLine: multiLine, chunkSize: chunkSize)
    var out: [Parsed] = []
    try reader.readAll { out.append(Parsed(fields: $0.fields, line: $0.line)) }
    return out
}

/// Parses with `readAll`, collecting bad records instead of stopping.
private func parseSkipping(_ text: String, hasHeader: Bool = false, expected: Int? = nil, quotes: CSVQuotes = .lenient,
                           choppySeed: UInt64? = nil) throws -> (records: [Parsed], errors: [InputError]) {
    let reader = try CSVReader(ChoppySource(text, choppySeed: choppySeed), hasHeader: hasHeader, expectedFieldCount: expected,
                               quotes: quotes)
    var records: [Parsed] = []
    var errors: [InputError] = []
    try reader.readAll({ records.append(Parsed(fields: $0.fields, line: $0.line)) },
                       onBadRecord: { errors.append($0) })
    return (records, errors)
}

/// Quotes a field per RFC 4180 when it needs it (or when `force`).
private func rfc4180Quote(_ field: String, force: Bool) -> String {
    let special = field.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }
    guard force || special else { return field }
    var out = "\""
    for c in field {
        out.append(c)
        if c == "\"" { out.append(c) }
    }
    return out + "\""
}

@Suite struct CSVTests {
    @Test func headerAndSimpleRecords() throws {
        let reader = try CSVReader(ChoppySource("a,b,c\n1,2,3\n4,5,6\n"), hasHeader: true)
        #expect(reader.header?.names == ["a", "b", "c"])
        #expect(reader.header?.line == 1)
        #expect(reader.expectedFieldCount == 3)
        var rows: [Parsed] = []
        try reader.readAll { rows.append(Parsed(fields: $0.fields, line: $0.line)) }
        #expect(rows == [Parsed(fields: ["1", "2", "3"], line: 2), Parsed(fields: ["4", "5", "6"], line: 3)])
    }

    @Test func quotedFieldsWithDelimitersQuotesAndNewlines() throws {
        let text = "\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\",\"x\r\ny\"\nnext,\"\",\"\"\"\",z\n"
        let records = try parse(text)
        #expect(records == [
            Parsed(fields: ["a,b", "say \"hi\"", "l1\nl2", "x\r\ny"], line: 1),
            Parsed(fields: ["next", "", "\"", "z"], line: 4),
        ])
    }

    @Test func crlfLineEndings() throws {
        let records = try parse("h1,h2\r\n1,2\r\n\"3\r\n\",4\r\n5,6", hasHeader: true)
        #expect(records == [
            Parsed(fields: ["1", "2"], line: 2),
            Parsed(fields: ["3\r\n", "4"], line: 3),
            Parsed(fields: ["5", "6"], line: 5),
        ])
    }

    @Test func emptyFieldsAndFinalLineWithoutNewline() throws {
        let records = try parse("a,,c\n,,\n1,2,")
        #expect(records.map(\.fields) == [["a", "", "c"], ["", "", ""], ["1", "2", ""]])
        #expect(try parse("x,\"q\"").map(\.fields) == [["x", "q"]])
        #expect(try parse("only").map(\.fields) == [["only"]])
        #expect(try parse("").isEmpty)
    }

    @Test func emptyLinesAreSkippedAndLinesCounted() throws {
        let records = try parse("\n\na,b\n\n\r\nc,d\r\n\r\n\ne,f\n\n")
        #expect(records == [
            Parsed(fields: ["a", "b"], line: 3),
            Parsed(fields: ["c", "d"], line: 6),
            Parsed(fields: ["e", "f"], line: 9),
        ])
    }

    @Test func tabSeparated() throws {
        let records = try parse("a\tb,c\t\"d\te\"\n1\t\t3\n", delimiter: UInt8(ascii: "\t"))
        #expect(records.map(\.fields) == [["a", "b,c", "d\te"], ["1", "", "3"]])
        // Plain TSV: no quoting, quotes are ordinary bytes.
        let reader = try CSVReader(ChoppySource("a\"b\t\"c\"\n\"\t5\"\n", choppySeed: 1), delimiter: UInt8(ascii: "\t"),
                                   hasHeader: false, quoting: false)
        #expect(try reader.next()?.fields == ["a\"b", "\"c\""])
        #expect(try reader.next()?.fields == ["\"", "5\""])
        #expect(try reader.next() == nil)
    }

    @Test func byteOrderMarkIsSkipped() throws {
        let reader = try CSVReader(ChoppySource("\u{FEFF}name,n\nx,1\n", choppySeed: 3), hasHeader: true)
        #expect(reader.header?.names == ["name", "n"])
        #expect(try reader.next()?.fields == ["x", "1"])
    }

    @Test func wrongFieldCountNamesFileAndLine() throws {
        let text = "a,b,c,d\n1,2,3,4\n1,2,3\n"
        #expect {
            _ = try parse(text, hasHeader: true)
        } throws: { error in
            let e = error as? InputError
            return e?.source == "test.csv" && e?.line == 3 && e?.reason == "expected 4 fields, found 3"
                && "\(error)" == "test.csv:3: expected 4 fields, found 3"
        }
        // An explicit count applies without a header, and to the header itself.
        #expect(throws: InputError.self) { _ = try parse("1,2\n3\n", expected: 2) }
        #expect(throws: InputError.self) { _ = try parse("a,b\n", hasHeader: true, expected: 3) }
        // Without a header or an explicit count, widths may vary.
        #expect(try parse("1,2\n3\n").map(\.fields) == [["1", "2"], ["3"]])
    }

    @Test("malformed rows and fields that do not parse are skippable; a missing column is not")
    func skippableErrors() throws {
        let bad = try parseSkipping("a,b\n1,2\n3\n4,\"x\"y\n5,\"open\n", hasHeader: true)
        #expect(bad.errors.count == 3)
        for error in bad.errors {
            #expect(error.skippable, "\(error)")
            #expect(error.failureDescription == error.description + "; use --bad-records skip to skip malformed records")
        }
        let reader = try CSVReader(ChoppySource("a,b\nx,1\n"), hasHeader: true)
        let row = try #require(try reader.next())
        let errors: [() throws -> Void] = [{ _ = try row.int("a") }, { _ = try row.int(5) }, { _ = try row.int("c") }]
        let thrown = errors.map { body in
            do { try body() } catch { return error as? InputError }
            return nil
        }
        #expect(thrown.map { $0?.skippable } == [true, true, false], "a field that is not an integer, a missing field; a missing column")
        let bare = try #require(try CSVReader(ChoppySource("1,2\n"), hasHeader: false).next())
        #expect { _ = try bare.int("x") } throws: { ($0 as? InputError)?.skippable == false }
        let column = InputError(source: "f.csv", line: 1, reason: "no column")
        #expect(column.failureDescription == column.description)
    }

    @Test func unclosedQuoteNamesStartLine() throws {
        let text = "a,b\n1,2\n3,\"open\nmore\nstill open"
        let result = try parseSkipping(text, hasHeader: true)
        #expect(result.records.map(\.fields) == [["1", "2"]])
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.description == "test.csv:3: unclosed quote starting at line 3")
        #expect(throws: InputError.self) { _ = try parse(text, hasHeader: true) }
        // The line of the opening quote, which may come after the record's first line.
        let later = try parseSkipping("1,\"a\nb\",\"c\nd\n")
        #expect(later.errors.map(\.description) == ["test.csv:1: unclosed quote starting at line 2"])
    }

    @Test func strictQuotesMakeStrayQuoteAndTextAfterQuoteBadRecords() throws {
        let text = "a,b\n1,2\nx,ab\"c\ny,\"q\"z\n3,4\nw,5'10\"\n"
        for seed: UInt64? in [nil, 1, 2] {
            let result = try parseSkipping(text, hasHeader: true, quotes: .strict, choppySeed: seed)
            #expect(result.records == [Parsed(fields: ["1", "2"], line: 2), Parsed(fields: ["3", "4"], line: 5)])
            #expect(result.errors.map(\.description) == [
                "test.csv:3: stray quote in unquoted column \"b\" (quote the field and double its quotes)",
                "test.csv:4: text after the closing quote of column \"b\"",
                "test.csv:6: stray quote in unquoted column \"b\" (quote the field and double its quotes)",
            ])
            #expect(result.errors.allSatisfy { $0.skippable })
        }
    }

    @Test func badRecordsCanBeSkippedAndReadingGoesOn() throws {
        let text = "k,v\na,1\nb\nc,3,extra\nd,4\n\"e,\"5\nf,6"
        for seed: UInt64? in [nil, 1, 2, 3] {
            let result = try parseSkipping(text, hasHeader: true, choppySeed: seed)
            #expect(result.records.map(\.fields) == [["a", "1"], ["d", "4"], ["f", "6"]])
            #expect(result.records.map(\.line) == [2, 5, 7])
            #expect(result.errors.map(\.line) == [3, 4, 6])
            #expect(result.errors.map(\.reason).prefix(2) == ["expected 2 fields, found 1", "expected 2 fields, found 3"])
        }
        // The pull form throws per bad record and goes on when called again.
        let reader = try CSVReader(ChoppySource(text), hasHeader: true)
        var fields: [[String]] = []
        var errors = 0
        while true {
            do {
                guard let row = try reader.next() else { break }
                fields.append(row.fields)
            } catch is InputError {
                errors += 1
            }
        }
        #expect(fields == [["a", "1"], ["d", "4"], ["f", "6"]])
        #expect(errors == 3)
    }

    @Test func defaultBadRecordHandlerRethrows() throws {
        let reader = try CSVReader(ChoppySource("a,b\n1,2\n3\n5,6\n"), hasHeader: true)
        var seen = 0
        #expect(throws: InputError.self) { try reader.readAll { _ in seen += 1 } }
        #expect(seen == 1)
    }

    @Test func headerLookupAndMissingColumn() throws {
        let reader = try CSVReader(ChoppySource("year,dep_delay,origin\n2024,5,JFK\n", name: "flights.csv"), hasHeader: true)
        let header = try #require(reader.header)
        #expect(try header.column("origin") == 2)
        #expect(header.index(of: "nope") == nil)
        #expect(try header.columns(["origin", "year"]) == [2, 0])
        #expect {
            _ = try header.column("arr_delay")
        } throws: { error in
            "\(error)" == "flights.csv:1: no column \"arr_delay\" in the header (columns: year, dep_delay, origin)"
        }
        let row = try #require(try reader.next())
        #expect(try row.int("dep_delay") == 5)
        #expect(try row.string("origin") == "JFK")
        #expect(throws: InputError.self) { _ = try row.int("arr_delay") }
        // Without a header, names cannot be looked up.
        let bare = try #require(try CSVReader(ChoppySource("1,2\n"), hasHeader: false).next())
        #expect { _ = try bare.int("x") } throws: { "\($0)" == "test.csv:1: no header to look up column \"x\" in" }
    }

    @Test func typedAccessorsAndTheirErrors() throws {
        let text = "id,dep_delay,ratio,name\n1,-7,0.25,JFK\n2,abc,x1,\n3,,NA,NA\n4, 12 ,1e3,\"a\"\"b\"\n"
        let reader = try CSVReader(ChoppySource(text, name: "flights.csv"), hasHeader: true)
        let r1 = try #require(try reader.next())
        #expect(try r1.int(0) == 1)
        #expect(try r1.int("dep_delay") == -7)
        #expect(try r1.double("ratio") == 0.25)
        #expect(try r1.string("name") == "JFK")
        #expect(r1[3] == "JFK")
        #expect(r1.bytes(3) == Array("JFK".utf8))
        #expect(try r1.optionalInt("dep_delay") == -7)

        let r2 = try #require(try reader.next())
        #expect { _ = try r2.int("dep_delay") } throws: {
            "\($0)" == "flights.csv:3: column \"dep_delay\": \"abc\" is not an integer"
        }
        #expect { _ = try r2.optionalInt(1) } throws: { ($0 as? InputError)?.line == 3 }
        #expect { _ = try r2.double("ratio") } throws: {
            "\($0)" == "flights.csv:3: column \"ratio\": \"x1\" is not a number"
        }
        #expect(try r2.optionalString("name") == nil)
        #expect(try r2.string("name") == "")
        #expect { _ = try r2.int(7) } throws: { "\($0)" == "flights.csv:3: no field 8: the record has 4 fields" }

        let r3 = try #require(try reader.next())
        #expect(try r3.optionalInt("dep_delay") == nil)
        #expect(try r3.optionalDouble("ratio") == nil)
        #expect(try r3.optionalString("name") == nil)
        #expect(throws: InputError.self) { _ = try r3.int("dep_delay") }
        #expect(throws: InputError.self) { _ = try r3.double("ratio") }

        // The borrowed record has the same accessors.
        try reader.readAll { (rec: CSVRecord) throws in
            #expect(try rec.int("dep_delay") == 12)
            #expect(try rec.double(2) == 1000)
            #expect(try rec.string(3) == "a\"b")
            #expect(rec.field(0, equals: "4"))
            #expect(!rec.field(0, equals: "44"))
            #expect(rec.line == 5)
        }
    }

    @Test func integerParsingEdgeCases() throws {
        func int(_ s: String) -> Int? {
            Array(s.utf8).withUnsafeBufferPointer { CSVScalars.parseInt($0) }
        }
        #expect(int("0") == 0)
        #expect(int("+5") == 5)
        #expect(int("-0") == 0)
        #expect(int(" \t42 ") == 42)
        #expect(int("9223372036854775807") == Int.max)
        #expect(int("-9223372036854775808") == Int.min)
        #expect(int("9223372036854775808") == nil)
        #expect(int("99999999999999999999999") == nil)
        #expect(int("4 2") == nil)
        #expect(int("-") == nil)
        #expect(int("") == nil)
        #expect(int("1.0") == nil)
        let row = CSVRow(fields: ["99999999999999999999"], sourceName: "n.csv", line: 9)
        #expect { _ = try row.int(0) } throws: {
            "\($0)" == "n.csv:9: field 1: \"99999999999999999999\" is out of range for an integer"
        }
    }

    @Test func doubleParsingMatchesStrtod() throws {
        func double(_ s: String) -> Double? {
            Array(s.utf8).withUnsafeBufferPointer { CSVScalars.parseDouble($0) }
        }
        #expect(double("1.5") == 1.5)
        #expect(double("-2e3") == -2000)
        #expect(double(".5") == 0.5)
        #expect(double("7.") == 7)
        #expect(double(" 3 ") == 3)
        #expect(double("1e400") == .infinity)
        #expect(double("-0.0")?.sign == .minus)
        #expect(double("abc") == nil)
        #expect(double("1.2.3") == nil)
        #expect(double("") == nil)
        #expect(double(".") == nil)
        let long = String(repeating: "1", count: 80) + ".5"
        #expect(double(long) == strtod(long, nil))
        // The fast decimal path agrees with strtod.
        var rng = DeterministicRandom(seed: 7)
        for _ in 0..<2000 {
            let digits = 1 + Int(rng.next(below: 15))
            var s = ""
            for _ in 0..<digits { s.append(Character(Unicode.Scalar(UInt8(48 + rng.next(below: 10))))) }
            let point = Int(rng.next(below: UInt64(digits + 1)))
            s.insert(".", at: s.index(s.startIndex, offsetBy: point))
            if rng.next(below: 2) == 0 { s = "-" + s }
            guard s.contains(where: \.isNumber) else { continue }
            #expect(double(s) == strtod(s, nil), "\(s)")
        }
        // Shortest round-trip forms parse back exactly.
        for _ in 0..<1000 {
            let v = Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF)
            #expect(double("\(v)") == v)
        }
    }

    @Test func rowsOwnTheirFields() throws {
        let reader = try CSVReader(ChoppySource("a,b\n\"x\"\"y\",1\nz,2\n"), hasHeader: true)
        var rows: [CSVRow] = []
        try reader.readAll { rows.append($0.toRow()) }
        #expect(rows.map(\.fields) == [["x\"y", "1"], ["z", "2"]])
        #expect(rows.map(\.line) == [2, 3])
        #expect(rows[0].sourceName == "test.csv")
        #expect(try rows[1].int("b") == 2)
        #expect(rows[0] == CSVRow(fields: ["x\"y", "1"], sourceName: "test.csv", line: 2, header: reader.header))
    }

    @Test func nextRecordBorrowsInPullForm() throws {
        let reader = try CSVReader(ChoppySource("a,b\n1,2\n3,4\n"), hasHeader: true)
        var sum = 0
        while let s = try reader.nextRecord({ try $0.int(0) + $0.int(1) }) { sum += s }
        #expect(sum == 10)
    }

    @Test func chunkBoundariesInsideQuotesAndCRLF() throws {
        let text = "id,text,n\r\n1,\"a,\"\"b\"\"\r\nc\",10\r\n\r\n2,plain,20\r\n3,\"\",\"\"\"\"\r\n4,\"x\ny\",40"
        let expected = try parse(text, hasHeader: true)
        #expect(expected.count == 4)
        #expect(expected[0] == Parsed(fields: ["1", "a,\"b\"\r\nc", "10"], line: 2))
        #expect(expected[3] == Parsed(fields: ["4", "x\ny", "40"], line: 7))
        for seed in UInt64(1)...60 {
            #expect(try parse(text, hasHeader: true, choppySeed: seed) == expected, "seed \(seed)")
        }
    }

    @Test func recordsLargerThanTheBufferGrowIt() throws {
        let long = String(repeating: "x", count: 5000)
        let text = "a,b\n1,\"\(long)\"\"\(long)\"\n2,\(long)\n"
        for seed: UInt64? in [nil, 5] {
            let records = try parse(text, hasHeader: true, choppySeed: seed, chunkSize: 16)
            #expect(records.map(\.fields) == [["1", long + "\"" + long], ["2", long]])
        }
        // Many fields grow the bounds array.
        let wide = (0..<1000).map(String.init).joined(separator: ",")
        let wideFields = (0..<1000).map(String.init)
        #expect(try parse(wide + "\n" + wide).map(\.fields) == [wideFields, wideFields])
    }

    @Test func randomizedRoundTrips() throws {
        var rng = DeterministicRandom(seed: 2024)
        let pieces = ["a", "b", "xyz", "1", " ", ",", "\"", "\n", "\r\n", "é", "日本", "\"\"", ",\""]
        for caseNumber in 0..<300 {
            let columns = 1 + Int(rng.next(below: 5))
            let rowCount = Int(rng.next(below: 6))
            var rows: [[String]] = []
            var text = ""
            var lines: [Int] = []
            var line = 1
            for r in 0..<rowCount {
                var fields: [String] = []
                for _ in 0..<columns {
                    var f = ""
                    for _ in 0..<Int(rng.next(below: 4)) { f += pieces[Int(rng.next(below: UInt64(pieces.count)))] }
                    fields.append(f)
                }
                rows.append(fields)
                lines.append(line)
                // A record of one empty field must be quoted, or it would be an empty line.
                let quoted = fields.map { rfc4180Quote($0, force: columns == 1 && $0.isEmpty || rng.next(below: 4) == 0) }
                let record = quoted.joined(separator: ",")
                text += record
                line += record.utf8.filter { $0 == UInt8(ascii: "\n") }.count
                if r < rowCount - 1 || rng.next(below: 2) == 0 {
                    text += rng.next(below: 2) == 0 ? "\n" : "\r\n"
                    line += 1
                }
            }
            let expected = zip(rows, lines).map { Parsed(fields: $0, line: $1) }
            #expect(try parse(text, expected: columns) == expected, "case \(caseNumber): \(text.debugDescription)")
            #expect(try parse(text, expected: columns, choppySeed: UInt64(caseNumber)) == expected,
                    "case \(caseNumber) choppy: \(text.debugDescription)")
        }
    }

    @Test func readsFilesAndReportsOffsets() throws {
        let path = "/tmp/sluice-csv-test-\(getpid()).csv"
        defer { unlink(path) }
        let text = "a,b\n1,2\n3\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let reader = try CSVReader(path: path, hasHeader: true)
        #expect(try reader.next()?.fields == ["1", "2"])
        #expect { _ = try reader.next() } throws: {
            let e = $0 as? InputError
            return e?.source == path && e?.line == 3 && e?.offset == 8
        }
        #expect(try reader.next() == nil)
        #expect(throws: InputError.self) { _ = try CSVReader(path: path + ".missing", hasHeader: true) }
    }

    @Test("a quote inside an unquoted field is a literal byte by default, as in Python's csv module")
    func strayQuotesAreLiteralByDefault() throws {
        let text = "name,where,n\na,37°36'37.8\"N,1\nb,12\" pipe,2\nc,a\"\"b,3\nd, \"x\",4\ne,\"ok \"\"q\"\"\",5\n"
            + "f,x\"y\"z,6\r\ng,5'10\",7\nh,\"\"\"\",8\nj,end\",9"
        // Python: list(csv.reader(io.StringIO(text, newline=""))).
        let python = [
            ["a", "37°36'37.8\"N", "1"], ["b", "12\" pipe", "2"], ["c", "a\"\"b", "3"], ["d", " \"x\"", "4"],
            ["e", "ok \"q\"", "5"], ["f", "x\"y\"z", "6"], ["g", "5'10\"", "7"], ["h", "\"", "8"], ["j", "end\"", "9"],
        ]
        for multiLine in [true, false] {
            for seed: UInt64? in [nil] + Array(1...30) {
                for chunkSize in [16, 1 << 20] {
                    let records = try parse(text, hasHeader: true, multiLine: multiLine, choppySeed: seed, chunkSize: chunkSize)
                    #expect(records.map(\.fields) == python, "multiLine \(multiLine), seed \(String(describing: seed)), chunk \(chunkSize)")
                    #expect(records.map(\.line) == Array(2...10))
                }
            }
        }
        #expect(try CSVReader(ChoppySource(text), hasHeader: true).quotes == .lenient)
        // Text after a closing quote is still a bad record.
        let after = try parseSkipping("a,b\ny,\"q\"z\n3,4\n", hasHeader: true)
        #expect(after.records.map(\.fields) == [["3", "4"]])
        #expect(after.errors.map(\.description) == ["test.csv:2: text after the closing quote of column \"b\""])
    }

    @Test("bytes inside quotes are data: CR, LF and CRLF come out exactly as they are in the file")
    func lineEndingsInsideQuotesAreKeptExactly() throws {
        let text = "id,v\r\n1,\"a\r\nb\"\r\n2,\"\r\n\"\r\n3,\"x\r\"\r\n4,\"\r\"\n5,\"a\r\n\r\nb\"\"c\r\n\"\r\n6,\"\n\r\"\r"
        // Python: [r[1] for r in csv.reader(io.StringIO(text, newline=""))][1:].
        let python = ["a\r\nb", "\r\n", "x\r", "\r", "a\r\n\r\nb\"c\r\n", "\n\r"].map { Array($0.utf8) }
        for seed: UInt64? in [nil] + Array(1...40) {
            for chunkSize in [16, 1 << 20] {
                let reader = try CSVReader(ChoppySource(text, choppySeed: seed), hasHeader: true, chunkSize: chunkSize)
                var values: [[UInt8]] = []
                var lines: [Int] = []
                try reader.readAll { r in
                    values.append(r.bytes(1))
                    lines.append(r.line)
                }
                #expect(values == python, "seed \(String(describing: seed)), chunk \(chunkSize)")
                #expect(lines == [2, 4, 6, 7, 8, 12])
            }
        }
    }
}
