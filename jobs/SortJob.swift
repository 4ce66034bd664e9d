import Sluice

/// `sort`: the lines of text files in order, as `LC_ALL=C sort` gives them; the output parts
/// are in total order (part 0 holds the smallest lines), as TeraSort's are.
///
/// By default lines compare bytewise. With `--key-field N` they compare by their N-th field
/// (`--delimiter`, tab by default), as a decimal number with `--numeric`, and lines with equal
/// keys by their whole bytes — what `sort -t C -k N,N [-n]` does (its last-resort comparison).
/// The key is turned into bytes whose memcmp order is the wanted order (`SortKeys`), followed
/// by the line, so every mode runs on the byte sort path.
let sortJob = Job(
    "sort", summary: "Sorts the lines of text files bytewise (or by --key-field N [--numeric]), output parts in total order",
    parameters: [
        JobParameter("key-field", help: "sort by this field, 1-based (0: the whole line); ties by the whole line, as sort -k N,N", default: "0"),
        JobParameter("delimiter", help: "the one-byte field separator of --key-field (default: tab)", default: "tab"),
        JobParameter("numeric", help: "true: compare the key field as a decimal number, as sort -n (LC_ALL=C)", default: "false"),
    ]
) { ctx in
    let field = try ctx.intParameter("key-field", atLeast: 0)
    let numeric = try ctx.parameter("numeric")
    guard numeric == "true" || numeric == "false" else { throw JobError.badParameter("--numeric must be true or false, not \(numeric)") }
    let given = try ctx.parameter("delimiter")
    let delimiter: UInt8
    if given == "tab" || given == "\\t" {
        delimiter = 0x09
    } else if given.utf8.count == 1 {
        delimiter = given.utf8.first!
    } else {
        throw JobError.badParameter("--delimiter must be one byte (or tab), not '\(given)'")
    }
    let output = try ctx.output
    let lines = ctx.textLineViews(ctx.inputs)
    if field == 0 && numeric == "false" {
        // The lines themselves are the keys: borrowed from the reader to the shuffle writer.
        lines.map { ($0, Unit()) }.sortByKey().write(to: output) { kv, w in w.write(raw: kv.0.raw) }
        return
    }
    let keys = SortKeys(field: max(field, 1), delimiter: delimiter, numeric: numeric == "true")
    lines.map { line in (keys.key(of: line.raw), Unit()) }.sortByKey().write(to: output) { kv, w in
        kv.0.storage.withUnsafeBytes { raw in w.write(raw: UnsafeRawBufferPointer(rebasing: raw[keys.lineStart(in: raw)...])) }
    }
}

/// Sort keys whose bytewise order is `sort -t C -k N,N [-n]`'s order: an order-preserving
/// encoding of the field, then the whole line (the tie-break).
///
/// - Text: the field's bytes with 0x00 written as 0x00 0x01, ended by 0x00 0x00, so a field
///   that is a prefix of another sorts first, as memcmp-then-length does.
/// - Numeric (`sort -n` in the C locale: leading blanks, an optional `-`, digits, an optional
///   `.` and digits; anything else ends the number, no digits is zero): a class byte (0x01
///   negative, 0x02 otherwise), then the magnitude as the count of integer digits (two bytes,
///   big-endian), the integer digits without leading zeros, the fraction digits without
///   trailing zeros and 0x00 — every byte complemented for negative numbers, so a larger
///   magnitude sorts first. Exact for any number of digits, as `sort -n` is.
struct SortKeys {
    let field: Int
    let delimiter: UInt8
    let numeric: Bool

    /// The field's byte range in `line` (empty at the end when the line has fewer fields).
    func fieldRange(_ line: UnsafeRawBufferPointer) -> Range<Int> {
        var start = 0
        var n = 1
        while n < field {
            guard let d = line[start...].firstIndex(of: delimiter) else { return line.count..<line.count }
            start = d + 1
            n += 1
        }
        let end = line[start...].firstIndex(of: delimiter) ?? line.count
        return start..<end
    }

    /// The sort key of a line: encoded field, then the line.
    func key(of line: UnsafeRawBufferPointer) -> Bytes {
        let f = fieldRange(line)
        var out: [UInt8] = []
        out.reserveCapacity(line.count + f.count + 8)
        if numeric {
            appendNumber(UnsafeRawBufferPointer(rebasing: line[f]), to: &out)
        } else {
            for b in line[f] {
                out.append(b)
                if b == 0 { out.append(1) }
            }
            out.append(0)
            out.append(0)
        }
        out.append(contentsOf: line)
        return Bytes(out)
    }

    func appendNumber(_ s: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var i = 0
        while i < s.count && (s[i] == 0x20 || s[i] == 0x09) { i += 1 }
        var negative = false
        if i < s.count && s[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        let isDigit = { (b: UInt8) in b >= 0x30 && b <= 0x39 }
        while i < s.count && s[i] == 0x30 { i += 1 }
        let intStart = i
        while i < s.count && isDigit(s[i]) { i += 1 }
        let intDigits = s[intStart..<i]
        var fraction = s[i..<i]
        if i < s.count && s[i] == UInt8(ascii: ".") {
            let start = i + 1
            i = start
            while i < s.count && isDigit(s[i]) { i += 1 }
            var end = i
            while end > start && s[end - 1] == 0x30 { end -= 1 }
            fraction = s[start..<end]
        }
        if intDigits.isEmpty && fraction.isEmpty { negative = false } // zero, -0 included
        let flip: UInt8 = negative ? 0xFF : 0
        out.append(negative ? 1 : 2)
        let count = min(intDigits.count, 0xFFFF)
        out.append(UInt8(count >> 8) ^ flip)
        out.append(UInt8(count & 0xFF) ^ flip)
        for b in intDigits { out.append(b ^ flip) }
        for b in fraction { out.append(b ^ flip) }
        out.append(flip)
    }

    /// Where the line starts in a key made by `key(of:)`.
    func lineStart(in key: UnsafeRawBufferPointer) -> Int {
        if numeric {
            let end: UInt8 = key[0] == 1 ? 0xFF : 0
            var i = 3
            while key[i] != end { i += 1 }
            return i + 1
        }
        var i = 0
        while true {
            if key[i] == 0 {
                if key[i + 1] == 0 { return i + 2 }
                i += 2
            } else {
                i += 1
            }
        }
    }
}
