import Foundation
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

/// Writes `bytes` to `path`.
private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A ustar archive of `files`, as `tar` writes it.
private func ustar(_ files: [(name: String, data: [UInt8])]) -> [UInt8] {
    func octal(_ v: Int, _ width: Int) -> String {
        let digits = String(v, radix: 8)
        return String(repeating: "0", count: width - digits.count) + digits
    }
    var out: [UInt8] = []
    for file in files {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, at offset: Int) { header.replaceSubrange(offset..<offset + s.utf8.count, with: s.utf8) }
        put(file.name, at: 0)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(octal(file.data.count, 11), at: 124)
        put(octal(0, 11), at: 136)
        put("        ", at: 148)
        put("0", at: 156)
        put("ustar", at: 257)
        put("00", at: 263)
        put(octal(header.reduce(0) { $0 + Int($1) }, 6), at: 148)
        out += header + file.data + [UInt8](repeating: 0, count: (512 - file.data.count % 512) % 512)
    }
    return out + [UInt8](repeating: 0, count: 1024)
}

/// A CSV document `id,text,n` whose quoted `text` fields hold LF, CRLF, lone CRs and
/// doubled quotes, and whose `n` field has a stray quote in every third record; one `text`
/// spans byte 1 MiB (where the reader's first read ends) and one is 1.5 MiB long. Returns
/// the bytes, each record as `line|id|text|n`, and the byte range of the record across 1 MiB.
private func multiLineDocument() -> (bytes: [UInt8], records: [String], spanning: Range<Int>) {
    var text = "id,text,n\r\n"
    var records: [String] = []
    var line = 2
    func add(_ content: String) {
        let id = records.count
        let n = id % 3 == 0 ? "\(id)\"" : "\(id)"
        text += "\(id),\(rfc4180Quote(content, force: true)),\(n)" + (id % 2 == 0 ? "\n" : "\r\n")
        records.append("\(line)|\(id)|\(content)|\(n)")
        line += content.utf8.filter { $0 == 10 }.count + 1
    }
    var rng = DeterministicRandom(seed: 11)
    let pieces = ["a", "é", " ", ",", "\n", "\r\n", "\r", "\"", "x\"y", "text"]
    func addRandom(until size: Int) {
        while text.utf8.count < size {
            add((0..<Int(rng.next(below: 40))).map { _ in pieces[Int(rng.next(below: UInt64(pieces.count)))] }.joined())
        }
    }
    add("first\r\nrecord")
    addRandom(until: (1 << 20) - 3000)
    let spanStart = text.utf8.count
    add(String(repeating: "spans 1 MiB\r\nand \"more\"\n", count: 250))
    let spanning = spanStart..<text.utf8.count
    addRandom(until: 2 << 20)
    add(String(repeating: "a line of a long field\r\n", count: 60_000) + "end\n")
    addRandom(until: (4 << 20) + 1000)
    return (Array(text.utf8), records, spanning)
}

/// Runs `ctx.csv(paths, multiLine:quotes:)` in this process with splits of `splitSize`,
/// checks it against the reference executor, and returns each record as `line|field|…`
/// (`field|…` without `lines`: a split counts lines from its start) and the number of splits.
private func readThroughEngine(_ paths: [String], multiLine: Bool = false, quotes: CSVQuotes = .lenient,
                               splitSize: Int64 = 256 << 10, lines: Bool = true, dir: String) throws -> (records: [String], splits: Int) {
    let job = Job("csv-test", summary: "CSV records as line|fields") { ctx in
        ctx.csv(ctx.inputs, multiLine: multiLine, quotes: quotes) { r in
            (lines ? "\(r.line)|" : "") + r.fields.joined(separator: "|")
        }.collect()
    }
    let graph = try job.graph(JobArguments(inputs: paths))
    let plan = try PlanTests.plan(graph, partitions: 1, splitSize: splitSize, broadcastThreshold: 0)
    let records = try PlanTests.runInProcess(plan, workDir: dir + "/work-\(UInt32.random(in: 0...UInt32.max))")[0]
    #expect(try graph.actions[0].reference(ReferenceExecutor()) == records, "the reference executor reads the same records")
    return (records, plan.splits(of: graph.fileSources[0] as! FileSourceLike).count)
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

    @Test("tabJoined: the fields but one, tab-joined; the record's own bytes for plain TSV, a copy otherwise")
    func tabJoined() throws {
        let expected = { (fields: [String], skip: Int?) in
            fields.enumerated().filter { $0.offset != skip }.map(\.element).joined(separator: "\t")
        }
        for (text, delimiter) in [("a\tbb\t\tccc\n\"q\"\"x\"\tv\tw\tz\n", UInt8(ascii: "\t")), ("a,bb,,ccc\n\"q,\"\"x\",v,w,z\n", UInt8(ascii: ","))] {
            let reader = try CSVReader(ChoppySource(text), delimiter: delimiter, hasHeader: false)
            var views: [String] = []
            try reader.readAll { r in
                for skip in [nil, 0, 1, 2, 3, 9] as [Int?] {
                    let got = r.tabJoined(skipping: skip)
                    #expect(String(decoding: got.raw, as: UTF8.self) == expected(r.fields, skip), "\(r.fields) skipping \(String(describing: skip))")
                    let inRecord = got.raw.baseAddress.map { $0 >= UnsafeRawPointer(r.field(0).baseAddress!) && $0 < UnsafeRawPointer(r.field(3).baseAddress!) } ?? false
                    // Plain TSV fields side by side (the quoted one left out): no copy.
                    #expect(inRecord == (delimiter == 9 && [nil, 0, 3, 9].contains(skip) && (r.line == 1 || skip == 0)), "\(r.fields) skipping \(String(describing: skip))")
                }
                views.append(String(decoding: r.tabJoined(skipping: 1).raw, as: UTF8.self))
            }
            #expect(views == ["a\t\tccc", (delimiter == 9 ? "q\"x" : "q,\"x") + "\tw\tz"])
        }
        // Kept whole (the reference executor's arena), every record's copies stay valid at once.
        let reader = try CSVReader(ChoppySource("a,b,c\nd,e,f\ng,h,i\n"), hasHeader: false)
        reader.arena.keepsAll = true
        var kept: [ByteView] = []
        try reader.readAll { kept.append($0.tabJoined(skipping: 1)) }
        #expect(kept.map { String(decoding: $0.raw, as: UTF8.self) } == ["a\tc", "d\tf", "g\ti"])
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

    @Test("multi-line records in documents read whole: a plain file with multiLine, gzip, archive entries")
    func multiLineRecordsInWholeDocuments() throws {
        let dir = Harness.tempDir("csv-multiline")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (bytes, expected, spanning) = multiLineDocument()
        #expect(spanning.contains((1 << 20) - 1000) && spanning.contains((1 << 20) + 1000) && bytes.count > (4 << 20),
                "the fixture has a record across byte 1 MiB")
        try writeFile(dir + "/doc.csv", bytes)
        let gzip = try GzipWriter(path: dir + "/doc.csv.gz")
        try bytes.withUnsafeBytes { try gzip.write($0) }
        _ = try gzip.finish()
        let small = Array("id,text,n\n1,\"p\r\nq\",2\"\n".utf8)
        try writeFile(dir + "/docs.tar", ustar([("doc.csv", bytes), ("small.csv", small)]))

        // A plain file with multiLine is one split, however small the split size.
        let plain = try readThroughEngine([dir + "/doc.csv"], multiLine: true, dir: dir)
        #expect(plain.splits == 1)
        #expect(plain.records.map { Array($0.utf8) } == expected.map { Array($0.utf8) })
        // Gzip files and archive entries are read whole, with or without multiLine.
        for multiLine in [false, true] {
            let gz = try readThroughEngine([dir + "/doc.csv.gz"], multiLine: multiLine, dir: dir)
            #expect(gz.records.map { Array($0.utf8) } == expected.map { Array($0.utf8) }, "gzip, multiLine \(multiLine)")
            let tar = try readThroughEngine([dir + "/docs.tar"], multiLine: multiLine, dir: dir)
            #expect(tar.records.map { Array($0.utf8) } == (expected + ["2|1|p\r\nq|2\""]).map { Array($0.utf8) },
                    "archive, multiLine \(multiLine)")
        }
        // quotes: .strict reaches the reader: the stray quote of record 0 is a bad record.
        #expect { _ = try readThroughEngine([dir + "/doc.csv.gz"], quotes: .strict, dir: dir) } throws: {
            let e = $0 as? InputError
            return e?.line == 2 && e?.skippable == true && e?.reason.hasPrefix("stray quote in unquoted column \"n\"") == true
        }
        // An unclosed quote at the end of a gzip document is still a bad record naming its line.
        let openGzip = try GzipWriter(path: dir + "/open.csv.gz")
        try Array("id,text,n\n1,\"ok\",2\n2,\"open\nmore\n".utf8).withUnsafeBytes { try openGzip.write($0) }
        _ = try openGzip.finish()
        #expect { _ = try readThroughEngine([dir + "/open.csv.gz"], dir: dir) } throws: {
            "\($0)" == dir + "/open.csv.gz:3: unclosed quote starting at line 3" && ($0 as? InputError)?.skippable == true
        }
    }

    @Test("plain files without multiLine are read one line per record, split or not; a quoted newline there is a bad record")
    func plainFilesWithoutMultiLineAreLineByLine() throws {
        let dir = Harness.tempDir("csv-lines")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (bytes, _, _) = multiLineDocument()
        try writeFile(dir + "/doc.csv", bytes)
        for splitSize: Int64 in [256 << 10, 64 << 20] {
            let graph = try Job("csv-splits", summary: "") { ctx in ctx.csvRows(ctx.inputs).count() }
                .graph(JobArguments(inputs: [dir + "/doc.csv"]))
            let plan = try PlanTests.plan(graph, partitions: 1, splitSize: splitSize, broadcastThreshold: 0)
            #expect((plan.splits(of: graph.fileSources[0] as! FileSourceLike).count > 1) == (splitSize < bytes.count))
            #expect { _ = try readThroughEngine([dir + "/doc.csv"], splitSize: splitSize, dir: dir) } throws: {
                let e = $0 as? InputError
                return e?.line == 2 && e?.skippable == true && e?.reason.contains("multiLine: true") == true
            }
        }
        // Single-line records with stray quotes read the same split as whole.
        var text = "id,where\n"
        for i in 0..<40_000 { text += "\(i),\(i % 90)°1'2.5\"N\n" }
        try writeFile(dir + "/flat.csv", Array(text.utf8))
        let split = try readThroughEngine([dir + "/flat.csv"], splitSize: 256 << 10, lines: false, dir: dir)
        let whole = try readThroughEngine([dir + "/flat.csv"], splitSize: 64 << 20, lines: false, dir: dir)
        #expect(split.splits > 1 && whole.splits == 1)
        #expect(split.records.count == 40_000 && split.records == whole.records)
        #expect(whole.records[7] == "7|7°1'2.5\"N")
    }
}
