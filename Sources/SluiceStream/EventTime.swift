import Sluice
/// Event times are milliseconds since the Unix epoch (UTC). These are the units, the parsers
/// for times in input records and for durations on the command line, and the ISO 8601 text
/// that views print.
public enum EventTime {
    public static let second: Int64 = 1000
    public static let minute: Int64 = 60_000
    public static let hour: Int64 = 3_600_000
    public static let day: Int64 = 86_400_000

    /// How an input record writes its event time.
    public enum Format: String, Sendable, CaseIterable {
        /// An integer is epoch milliseconds; anything else is ISO 8601.
        case auto
        /// Integer milliseconds since the epoch.
        case epochMillis = "epoch-ms"
        /// Seconds since the epoch (fractions allowed).
        case epochSeconds = "epoch-s"
        /// `2013-01-01T10:00:00Z`, `2013-01-01 10:00:00`, `2013-01-01T10:00:00.250+01:00`, `2013-01-01`
        /// (no zone means UTC).
        case iso8601
    }

    /// Parses an event time written in `format`; nil when the text is not one.
    public static func parse(_ p: UnsafeBufferPointer<UInt8>, format: Format) -> Int64? {
        switch format {
        case .epochMillis:
            return CSVScalars.parseInt(p).map(Int64.init)
        case .epochSeconds:
            guard let s = CSVScalars.parseDouble(p), s.isFinite, abs(s) < 9e15 else { return nil }
            return Int64((s * 1000).rounded())
        case .iso8601:
            return parseISO(p)
        case .auto:
            if let v = CSVScalars.parseInt(p) { return Int64(v) }
            return parseISO(p)
        }
    }

    /// Parses an event time in a string.
    public static func parse(_ s: String, format: Format) -> Int64? {
        var s = s
        return s.withUTF8 { parse($0, format: format) }
    }

    /// ISO 8601 date-times (see `Format.iso8601`).
    static func parseISO(_ p: UnsafeBufferPointer<UInt8>) -> Int64? {
        let r = CSVScalars.trimmed(p)
        var i = r.lowerBound
        let n = r.upperBound
        func digits(_ count: Int) -> Int64? {
            guard i + count <= n else { return nil }
            var v: Int64 = 0
            for _ in 0..<count {
                let d = p[i] &- 48
                guard d < 10 else { return nil }
                v = v * 10 + Int64(d)
                i += 1
            }
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < n, p[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
              let day = digits(2), (1...12).contains(month), (1...31).contains(day) else { return nil }
        var millis = daysFromCivil(year, month, day) * EventTime.day
        if i == n { return millis }
        guard i < n, p[i] == UInt8(ascii: "T") || p[i] == UInt8(ascii: "t") || p[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2), hour < 24, minute < 60 else { return nil }
        millis += hour * EventTime.hour + minute * EventTime.minute
        if expect(UInt8(ascii: ":")) {
            guard let second = digits(2), second < 61 else { return nil }
            millis += second * EventTime.second
            if expect(UInt8(ascii: ".")) || expect(UInt8(ascii: ",")) {
                var scale: Int64 = 100
                var any = false
                while i < n, p[i] &- 48 < 10 {
                    millis += Int64(p[i] &- 48) * scale
                    scale /= 10
                    any = true
                    i += 1
                }
                guard any else { return nil }
            }
        }
        if i == n || expect(UInt8(ascii: "Z")) || expect(UInt8(ascii: "z")) { return i == n ? millis : nil }
        guard i < n, p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") else { return nil }
        let sign: Int64 = p[i] == UInt8(ascii: "-") ? -1 : 1
        i += 1
        guard let zoneHours = digits(2) else { return nil }
        _ = expect(UInt8(ascii: ":"))
        let zoneMinutes = i < n ? digits(2) : 0
        guard let zoneMinutes, i == n else { return nil }
        return millis - sign * (zoneHours * EventTime.hour + zoneMinutes * EventTime.minute)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day number (inverse of `daysFromCivil`).
    static func civilFromDays(_ z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// `2013-01-01T10:00:00Z` (with `.SSS` when the milliseconds are not zero).
    public static func iso(_ t: Int64) -> String {
        let days = floorDiv(t, EventTime.day)
        let rest = t - days * EventTime.day
        let (y, m, d) = civilFromDays(days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var s = "\(y)-\(two(m))-\(two(d))T\(two(rest / hour)):\(two(rest / minute % 60)):\(two(rest / second % 60))"
        let ms = rest % 1000
        if ms != 0 { s += "." + String(String(ms + 1000).dropFirst()) }
        return s + "Z"
    }

    /// `iso(t)`, written into `w` digit by digit (a view's window column, once per row).
    static func writeISO(_ t: Int64, to w: inout ByteWriter) {
        let days = floorDiv(t, EventTime.day)
        let rest = t - days * EventTime.day
        let (y, m, d) = civilFromDays(days)
        func digits(_ v: Int64, _ count: Int) {
            var divisor: Int64 = 1
            for _ in 1..<count { divisor *= 10 }
            var v = v
            while divisor > 0 {
                w.write(UInt8(48 + v / divisor % 10))
                v %= divisor
                divisor /= 10
            }
        }
        guard (1000...9999).contains(y) else {
            w.write(contentsOf: iso(t).utf8)
            return
        }
        digits(y, 4); w.write(0x2D); digits(m, 2); w.write(0x2D); digits(d, 2); w.write(0x54)
        digits(rest / hour, 2); w.write(0x3A); digits(rest / minute % 60, 2); w.write(0x3A); digits(rest / second % 60, 2)
        if rest % 1000 != 0 { w.write(0x2E); digits(rest % 1000, 3) }
        w.write(0x5A)
    }

    /// Parses a duration: `250ms`, `30s`, `5m`, `2h`, `1d`, or a plain number of milliseconds.
    public static func parseDuration(_ text: String) -> Int64? {
        let s = text.trimmingSpaces.lowercased()
        for (suffix, unit) in [("ms", Int64(1)), ("s", second), ("m", minute), ("h", hour), ("d", day)] where s.hasSuffix(suffix) {
            guard let v = Double(s.dropLast(suffix.count)), v >= 0, v.isFinite else { return nil }
            return Int64((v * Double(unit)).rounded())
        }
        guard let v = Int64(s), v >= 0 else { return nil }
        return v
    }

    /// `90s` → `1m30s`-style text for people.
    public static func describeDuration(_ ms: Int64) -> String {
        if ms == 0 { return "0" }
        var parts: [String] = []
        var rest = ms
        for (unit, name) in [(day, "d"), (hour, "h"), (minute, "m"), (second, "s")] where rest >= unit {
            parts.append("\(rest / unit)\(name)")
            rest %= unit
        }
        if rest > 0 { parts.append("\(rest)ms") }
        return parts.joined()
    }
}

/// Integer division rounding toward negative infinity (window starts before 1970).
@inlinable func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

extension String {
    /// The string without leading and trailing spaces.
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
