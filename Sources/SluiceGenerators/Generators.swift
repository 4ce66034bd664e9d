#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Deterministic test-data generators: Zipf-distributed text and a CSV stream of timestamped
// events. For a given configuration and seed the output is byte-identical on every machine:
// the random numbers come from our own xoshiro256** and the Zipf weights are computed with
// basic IEEE arithmetic only (no libm `pow`, whose last bit may differ between platforms).

/// A small, fast pseudo-random generator (xoshiro256**, seeded through SplitMix64) whose
/// output depends only on the seed: the same numbers on every machine and Swift version.
public struct DeterministicRandom: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// Seeds the four state words with successive SplitMix64 outputs of `seed`.
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix()
        s1 = splitMix()
        s2 = splitMix()
        s3 = splitMix()
    }

    /// The next 64 random bits.
    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inlinable @inline(__always)
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A number in `0..<bound` (`bound` > 0) by multiply-high: one draw, no rejection; the
    /// bias is below `bound / 2^64`. Unlike `random(in:using:)`, fixed by this code.
    @inlinable @inline(__always)
    public mutating func next(below bound: UInt64) -> UInt64 {
        next().multipliedFullWidth(by: bound).high
    }

    /// An integer in `range` (see `next(below:)`).
    @inlinable @inline(__always)
    public mutating func next(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(bitPattern: Int64(range.upperBound &- range.lowerBound)) &+ 1
        if span == 0 { return Int(truncatingIfNeeded: next()) }  // the whole Int range
        return range.lowerBound &+ Int(truncatingIfNeeded: next(below: span))
    }

    /// A double in `[0, 1)` with 53 random bits.
    @inlinable @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }
}

/// Why a generator could not write its output.
public struct GeneratorError: Error, CustomStringConvertible, Sendable {
    /// The file being written.
    public var path: String
    /// What went wrong.
    public var reason: String
    /// Makes the error for `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    /// `path: reason`.
    public var description: String { "\(path): \(reason)" }
}

/// Output plumbing shared by the generators: a large byte buffer flushed to a sink.
private struct GeneratorOutput {
    static let capacity = 4 << 20
    let buffer: UnsafeMutablePointer<UInt8>
    var count = 0

    init() { buffer = .allocate(capacity: GeneratorOutput.capacity) }
    func free() { buffer.deallocate() }

    var room: Int { GeneratorOutput.capacity - count }

    mutating func flush(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        if count > 0 { try sink(UnsafeRawBufferPointer(start: buffer, count: count)) }
        count = 0
    }

    @inline(__always) mutating func append(_ byte: UInt8) {
        buffer[count] = byte
        count &+= 1
    }

    /// Appends `value` in decimal, left-padded with zeros to `width` digits.
    @inline(__always) mutating func appendDecimal(_ value: UInt64, width: Int = 1) {
        var digits = 1
        var v = value
        while v >= 10 {
            v /= 10
            digits &+= 1
        }
        let n = max(digits, width)
        var p = buffer + count + n
        v = value
        for _ in 0..<n {
            p -= 1
            p.pointee = UInt8(truncatingIfNeeded: 48 &+ v % 10)
            v /= 10
        }
        count &+= n
    }

    @inline(__always) mutating func appendDecimal(signed value: Int64) {
        if value < 0 { append(UInt8(ascii: "-")) }
        appendDecimal(value.magnitude)
    }
}

/// Writes `body`'s output to `path` (created or truncated) with `write(2)`.
private func writeFile(_ path: String, _ body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw GeneratorError(path: path, reason: "cannot create: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    try body { try writeAll(fd, $0, name: path) }
}

/// `write(2)` of all of `bytes`, retrying after short writes and `EINTR`.
private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, name: String) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw GeneratorError(path: name, reason: "write failed: \(String(cString: strerror(errno)))")
        }
        done += n
    }
}

/// Deterministic Zipf-distributed text: lines of `wordsPerLine` words separated by single
/// spaces. The word of rank r (0 = most frequent) is a pronounceable pseudo-word made from r
/// (`TextGenerator.word(rank:)`), distinct for every rank and shorter for frequent ranks; about
/// one rank in 31 carries a non-ASCII UTF-8 suffix (`é`, `ж`, `日本`, ...).
public struct TextGenerator: Sendable {
    /// The output size: at most this many bytes, ending with a newline, and less than one word
    /// short of it (the last line may be cut short to fit).
    public var bytes: Int64
    /// The random seed.
    public var seed: UInt64
    /// The number of distinct words.
    public var vocabulary: Int
    /// The Zipf exponent s: the word of rank r has weight (r+1)^-s.
    public var zipfExponent: Double
    /// The number of words on a line (uniform).
    public var wordsPerLine: ClosedRange<Int>

    /// Describes the text to generate (nothing is computed until it is written).
    public init(bytes: Int64, seed: UInt64 = 1, vocabulary: Int = 1_000_000, zipfExponent: Double = 1.1,
                wordsPerLine: ClosedRange<Int> = 10...20) {
        precondition(vocabulary >= 1 && vocabulary <= Int(Int32.max) && wordsPerLine.lowerBound >= 1,
                     "TextGenerator needs 1...Int32.max words and at least one word a line")
        self.bytes = bytes
        self.seed = seed
        self.vocabulary = vocabulary
        self.zipfExponent = zipfExponent
        self.wordsPerLine = wordsPerLine
    }

    /// Writes the text to the file at `path` (created or truncated).
    public func write(to path: String) throws {
        try writeFile(path) { try generate($0) }
    }

    /// Writes the text to an open file descriptor (for example 1, standard output).
    public func write(toFileDescriptor fd: Int32) throws {
        try generate { try writeAll(fd, $0, name: "fd \(fd)") }
    }

    /// The text in memory (for tests and small outputs).
    public func makeBytes() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Int(max(0, bytes)))
        generate { out.append(contentsOf: $0) }
        return out
    }

    // Syllables: consonant + vowel, 18 * 5 = 90 of them; a word is the rank written in
    // bijective base 90, one syllable per digit. (StaticStrings: constant bytes, no lazy globals.)
    private static let consonants: StaticString = "bcdfghjklmnprstvwz"
    private static let vowels: StaticString = "aeiou"
    /// The longest word in bytes (10 syllables cover every Int rank, plus the longest suffix).
    private static let maxWordBytes = 32

    /// The non-ASCII suffix number `i` (0..<10).
    private static func suffix(_ i: Int) -> StaticString {
        switch i {
        case 0: "é"
        case 1: "ü"
        case 2: "ñ"
        case 3: "ø"
        case 4: "ß"
        case 5: "ç"
        case 6: "λ"
        case 7: "ж"
        case 8: "日本"
        default: "한"
        }
    }

    /// The pseudo-word of `rank` (0-based): ASCII syllables (`ba`, `ce`, `baba`...), with a
    /// non-ASCII suffix when `rank % 31 == 11`.
    public static func word(rank: Int) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxWordBytes) { buf in
            let n = writeWord(rank: rank, to: buf.baseAddress!)
            return String(decoding: UnsafeBufferPointer(start: buf.baseAddress!, count: n), as: UTF8.self)
        }
    }

    /// Writes the word of `rank` at `p` (room for `maxWordBytes`); returns its length.
    @inline(__always)
    private static func writeWord(rank: Int, to p: UnsafeMutablePointer<UInt8>) -> Int {
        let consonants = TextGenerator.consonants.utf8Start
        let vowels = TextGenerator.vowels.utf8Start
        var n = UInt64(rank) &+ 1
        var len = 0
        repeat {
            n &-= 1
            let syllable = Int(n % 90)
            n /= 90
            p[len] = consonants[syllable / 5]
            p[len &+ 1] = vowels[syllable % 5]
            len &+= 2
        } while n > 0
        if rank % 31 == 11 {
            TextGenerator.suffix((rank / 31) % 10).withUTF8Buffer { suffix in
                (p + len).update(from: suffix.baseAddress!, count: suffix.count)
                len &+= suffix.count
            }
        }
        return len
    }

    /// Calls `sink` with the text, in pieces of up to 4 MiB.
    public func generate(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard bytes > 0 else { return }
        let sampler = ZipfSampler(count: vocabulary, exponent: zipfExponent)
        defer { sampler.free() }

        // The words of the most frequent ranks, precomputed in 16-byte slots (at most 12 bytes
        // of word, the length in the last byte) so that each is copied with two 8-byte moves.
        let cached = min(vocabulary, 1 << 16)
        let slots = UnsafeMutableRawPointer.allocate(byteCount: cached * 16, alignment: 16)
        defer { slots.deallocate() }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: TextGenerator.maxWordBytes) { tmp in
            for r in 0..<cached {
                let n = TextGenerator.writeWord(rank: r, to: tmp.baseAddress!)
                let slot = slots + r * 16
                slot.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
                slot.copyMemory(from: tmp.baseAddress!, byteCount: n)
                slot.storeBytes(of: UInt8(n), toByteOffset: 15, as: UInt8.self)
            }
        }

        var rng = DeterministicRandom(seed: seed)
        var out = GeneratorOutput()
        defer { out.free() }
        let maxLine = wordsPerLine.upperBound * (TextGenerator.maxWordBytes + 1)
        var remaining = bytes
        let lowWords = wordsPerLine.lowerBound
        let wordSpan = UInt64(wordsPerLine.upperBound - lowWords + 1)

        lines: while true {
            if out.room < maxLine { try out.flush(sink) }
            let words = lowWords + Int(rng.next(below: wordSpan))
            var cutShort = false
            for k in 0..<words {
                let rank = sampler.sample(&rng)
                let dest = out.buffer + out.count
                let len: Int
                if rank < cached {
                    let slot = UnsafeRawPointer(slots + rank &* 16)
                    let raw = UnsafeMutableRawPointer(dest)
                    raw.storeBytes(of: slot.load(as: UInt64.self), as: UInt64.self)
                    raw.storeBytes(of: slot.load(fromByteOffset: 8, as: UInt64.self), toByteOffset: 8, as: UInt64.self)
                    len = Int(slot.load(fromByteOffset: 15, as: UInt8.self))
                } else {
                    len = TextGenerator.writeWord(rank: rank, to: dest)
                }
                // The word and the space or newline after it must fit in what is left.
                if Int64(len + 1) > remaining {
                    if k == 0 { break lines }
                    cutShort = true
                    break
                }
                dest[len] = UInt8(ascii: " ")
                out.count += len + 1
                remaining -= Int64(len + 1)
            }
            out.buffer[out.count - 1] = UInt8(ascii: "\n")
            if cutShort { break }
        }
        try out.flush(sink)
    }
}

/// Samples ranks `0..<count` with probability proportional to `(rank+1)^-exponent`: inverse
/// CDF with a guide table (O(1) expected; frequent ranks never touch the CDF array).
private struct ZipfSampler {
    let count: Int
    let cdf: UnsafeMutablePointer<Double>
    let guide: UnsafeMutablePointer<Int32>
    static let guideBits = 16
    static let guideSize = 1 << guideBits

    init(count: Int, exponent: Double) {
        self.count = count
        cdf = .allocate(capacity: count)
        guide = .allocate(capacity: ZipfSampler.guideSize + 1)
        var sum = 0.0
        for r in 0..<count {
            sum += PortableMath.exp(-exponent * PortableMath.log(Double(r + 1)))
            cdf[r] = sum
        }
        for r in 0..<count { cdf[r] /= sum }
        cdf[count - 1] = 1.0
        // guide[b] = the first rank whose CDF exceeds b / guideSize.
        var r = 0
        for b in 0...ZipfSampler.guideSize {
            let threshold = Double(b) / Double(ZipfSampler.guideSize)
            while r < count - 1 && cdf[r] <= threshold { r += 1 }
            guide[b] = Int32(r)
        }
    }

    func free() {
        cdf.deallocate()
        guide.deallocate()
    }

    @inline(__always)
    func sample(_ rng: inout DeterministicRandom) -> Int {
        let u = rng.nextDouble()
        let x = u * Double(ZipfSampler.guideSize)
        let b = Int(x)
        var lo = Int(guide[b])
        var hi = Int(guide[b + 1])
        // The answer, the first rank with cdf > u, is in lo...hi.
        if hi - lo > 8 {
            // A bucket of rare ranks, whose CDF is nearly linear: interpolate, then step to the
            // exact answer (one cache line of the CDF instead of a binary search's many).
            var r = lo + Int((x - Double(b)) * Double(hi - lo))
            while r > lo && cdf[r - 1] > u { r -= 1 }
            while cdf[r] <= u { r += 1 }  // stops at hi at the latest: cdf[hi] > u
            return r
        }
        while lo < hi {
            let mid = (lo + hi) >> 1
            if cdf[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}

/// `log` and `exp` from basic IEEE operations only, so that they give the same bits on every
/// platform (libm's last bit may differ). Accurate to a few ulps; used for Zipf weights.
enum PortableMath {
    /// ln 2 split for Cody-Waite reduction: `ln2Hi` has its low bits zero, so `k * ln2Hi` is
    /// exact for the |k| < 2^11 used here.
    static let ln2Hi = 6.931_471_803_691_238_164_90e-01
    static let ln2Lo = 1.908_214_929_270_587_700_02e-10

    /// Natural logarithm of a positive finite `x`.
    static func log(_ x: Double) -> Double {
        var k = Double(x.exponent)
        var m = x.significand  // in [1, 2)
        if m > 1.414_213_562_373_095_1 {
            m /= 2
            k += 1
        }
        // ln m = 2 atanh(z), z = (m-1)/(m+1), |z| < 0.172
        let z = (m - 1) / (m + 1)
        let z2 = z * z
        var term = z
        var sum = 0.0
        var n = 1.0
        while n < 40 {
            sum += term / n
            term *= z2
            n += 2
        }
        return k * ln2Hi + (k * ln2Lo + 2 * sum)
    }

    /// e^x for finite `x` (0 below about -745, where the result underflows).
    static func exp(_ x: Double) -> Double {
        if x < -745 { return 0 }
        let k = (x / (ln2Hi + ln2Lo)).rounded()
        let f = (x - k * ln2Hi) - k * ln2Lo  // |f| <= ln2 / 2 (+ rounding)
        var term = 1.0
        var sum = 1.0
        var n = 1.0
        while n <= 20 {
            term *= f / n
            sum += term
            n += 1
        }
        // sum * 2^k, exactly, in two steps so that 2^k itself never underflows or overflows.
        let half = Int(k) / 2
        return sum * Double(sign: .plus, exponent: half, significand: 1)
            * Double(sign: .plus, exponent: Int(k) - half, significand: 1)
    }
}

/// Deterministic event CSV with header `ts,user,key,value`: `ts` in epoch milliseconds, mostly
/// increasing with a fraction of late (out-of-order) rows; `user` like `u12345`; `key` like
/// `k00042`, where `hotKeys` specific keys (`hotKeyIndices`) together get `hotShare` of the rows
/// and the others share the rest uniformly; `value` an integer in -100...1000.
public struct EventGenerator: Sendable {
    /// The number of data rows (the header line comes on top).
    public var rows: Int
    /// The random seed.
    public var seed: UInt64
    /// The number of distinct keys.
    public var keys: Int
    /// The number of distinct users (uniform).
    public var users: Int
    /// The number of hot keys.
    public var hotKeys: Int
    /// The share of rows, in [0, 1], that the hot keys together hold.
    public var hotShare: Double
    /// The share of rows that are late: their ts is 1...maxLatenessMillis earlier than the
    /// largest ts so far. Late rows do not advance the clock.
    public var lateFraction: Double
    /// The largest lateness, in milliseconds (at least 1).
    public var maxLatenessMillis: Int64
    /// The ts of the first on-time row.
    public var startMillis: Int64
    /// On-time rows advance the clock by 0...maxGapMillis (uniform).
    public var maxGapMillis: Int64

    /// Describes the events to generate (nothing is computed until they are written).
    public init(rows: Int, seed: UInt64 = 1, keys: Int = 100_000, users: Int = 50_000, hotKeys: Int = 3,
                hotShare: Double = 0.25, lateFraction: Double = 0.01, maxLatenessMillis: Int64 = 60_000,
                startMillis: Int64 = 1_700_000_000_000, maxGapMillis: Int64 = 20) {
        precondition(keys >= 1 && users >= 1 && hotKeys >= 0 && hotKeys <= keys, "bad EventGenerator key counts")
        precondition(hotKeys < keys || hotShare >= 1 || hotKeys == 0, "no cold keys for a hot share below 1")
        precondition(maxLatenessMillis >= 1 && maxGapMillis >= 0, "bad EventGenerator time settings")
        self.rows = rows
        self.seed = seed
        self.keys = keys
        self.users = users
        self.hotKeys = hotKeys
        self.hotShare = hotShare
        self.lateFraction = lateFraction
        self.maxLatenessMillis = maxLatenessMillis
        self.startMillis = startMillis
        self.maxGapMillis = maxGapMillis
    }

    /// The indices of the hot keys: spread evenly, `i * (keys / hotKeys)`.
    public var hotKeyIndices: [Int] { (0..<hotKeys).map { $0 * (keys / hotKeys) } }

    /// The text of key `index` (`k` and zero-padded digits, as wide as the largest key).
    public func keyName(_ index: Int) -> String { "k" + EventGenerator.padded(index, to: EventGenerator.width(keys - 1)) }

    /// The text of user `index` (`u` and zero-padded digits, as wide as the largest user).
    public func userName(_ index: Int) -> String { "u" + EventGenerator.padded(index, to: EventGenerator.width(users - 1)) }

    private static func width(_ n: Int) -> Int { String(max(n, 0)).count }
    private static func padded(_ n: Int, to width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    /// Writes the CSV to the file at `path` (created or truncated).
    public func write(to path: String) throws {
        try writeFile(path) { try generate($0) }
    }

    /// Writes the CSV to an open file descriptor (for example 1, standard output).
    public func write(toFileDescriptor fd: Int32) throws {
        try generate { try writeAll(fd, $0, name: "fd \(fd)") }
    }

    /// The CSV in memory (for tests and small outputs).
    public func makeBytes() -> [UInt8] {
        var out = [UInt8]()
        generate { out.append(contentsOf: $0) }
        return out
    }

    /// Calls `sink` with the CSV, in pieces of up to 4 MiB.
    public func generate(_ sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var rng = DeterministicRandom(seed: seed)
        var out = GeneratorOutput()
        defer { out.free() }
        for b in "ts,user,key,value\n".utf8 { out.append(b) }

        let hot = hotKeyIndices
        let keyWidth = EventGenerator.width(keys - 1)
        let userWidth = EventGenerator.width(users - 1)
        let coldKeys = UInt64(keys - hotKeys)
        let maxRow = 64 + keyWidth + userWidth
        var clock = startMillis
        var first = true

        for _ in 0..<max(rows, 0) {
            if out.room < maxRow { try out.flush(sink) }
            let ts: Int64
            if rng.nextDouble() < lateFraction {
                ts = clock - 1 - Int64(rng.next(below: UInt64(maxLatenessMillis)))
            } else {
                if !first { clock += Int64(rng.next(below: UInt64(maxGapMillis) + 1)) }
                first = false
                ts = clock
            }
            let user = rng.next(below: UInt64(users))
            var key: Int
            if hotKeys > 0 && rng.nextDouble() < hotShare {
                key = hot[Int(rng.next(below: UInt64(hotKeys)))]
            } else {
                // A cold key: the k-th index that is not hot (hot indices are ascending).
                key = Int(rng.next(below: coldKeys))
                for h in hot where key >= h { key += 1 }
            }
            let value = Int64(rng.next(below: 1101)) - 100

            out.appendDecimal(signed: ts)
            out.append(UInt8(ascii: ","))
            out.append(UInt8(ascii: "u"))
            out.appendDecimal(user, width: userWidth)
            out.append(UInt8(ascii: ","))
            out.append(UInt8(ascii: "k"))
            out.appendDecimal(UInt64(key), width: keyWidth)
            out.append(UInt8(ascii: ","))
            out.appendDecimal(signed: value)
            out.append(UInt8(ascii: "\n"))
        }
        try out.flush(sink)
    }
}
