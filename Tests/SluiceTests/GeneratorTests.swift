import Testing
import Sluice
@testable import SluiceGenerators
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Serves an in-memory byte array to a `CSVReader`.
private final class ArraySource: ByteSource {
    let name: String
    private let data: [UInt8]
    private var position = 0

    init(_ data: [UInt8], name: String) {
        self.data = data
        self.name = name
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, data.count - position)
        if n <= 0 { return 0 }
        data.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
}

/// 64-bit FNV-1a, to pin generator output in a short constant.
private func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h &*= 0x100_0000_01B3
    }
    return h
}

private func readFile(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

/// One parsed event row.
private struct Event {
    var ts: Int
    var user: String
    var key: String
    var value: Int
}

private func events(_ generator: EventGenerator) throws -> [Event] {
    let reader = try CSVReader(ArraySource(generator.makeBytes(), name: "events.csv"), hasHeader: true)
    #expect(reader.header?.names == ["ts", "user", "key", "value"])
    var out: [Event] = []
    out.reserveCapacity(generator.rows)
    try reader.readAll { r in
        out.append(Event(ts: try r.int(0), user: r[1], key: r[2], value: try r.int(3)))
    }
    return out
}

@Suite struct GeneratorTests {
    @Test func randomMatchesReferenceXoshiro() {
        // The reference C xoshiro256** seeded with splitmix64(42).
        var rng = DeterministicRandom(seed: 42)
        #expect([rng.next(), rng.next(), rng.next(), rng.next()] ==
                [1_546_998_764_402_558_742, 6_990_951_692_964_543_102, 12_544_586_762_248_559_009, 17_057_574_109_182_124_193])
        for _ in 0..<1000 {
            #expect(rng.next(below: 7) < 7)
            let d = rng.nextDouble()
            #expect(d >= 0 && d < 1)
            #expect((-3...3).contains(rng.next(in: -3...3)))
        }
    }

    @Test func portableMathIsAccurate() {
        for x in [1.0, 1.5, 2, 3, 10, 12345, 999_999, 1e300, 1e-300] {
            #expect(abs(PortableMath.log(x) - log(x)) <= 1e-14 * max(1, abs(log(x))), "log \(x)")
        }
        for x in [0.0, -0.5, -1, -10, -15.2, -300, -700.5, 1, 3.7] {
            #expect(abs(PortableMath.exp(x) - exp(x)) <= 1e-14 * exp(x), "exp \(x)")
        }
    }

    @Test func wordsAreDistinctAndMostlyASCII() {
        #expect(TextGenerator.word(rank: 0) == "ba")
        #expect(TextGenerator.word(rank: 89) == "zu")
        #expect(TextGenerator.word(rank: 90) == "baba")
        #expect(TextGenerator.word(rank: 11) == "deé")  // rank % 31 == 11 carries a suffix
        var seen = Set<String>()
        for r in 0..<20_000 { seen.insert(TextGenerator.word(rank: r)) }
        #expect(seen.count == 20_000)
        #expect(TextGenerator.word(rank: Int.max).utf8.count <= 32)
    }

    @Test func textIsDeterministic() {
        let a = TextGenerator(bytes: 50_000, seed: 7, vocabulary: 20_000).makeBytes()
        let b = TextGenerator(bytes: 50_000, seed: 7, vocabulary: 20_000).makeBytes()
        let c = TextGenerator(bytes: 50_000, seed: 8, vocabulary: 20_000).makeBytes()
        #expect(a == b)
        #expect(a != c)
        // Pinned, so that a change of output on some machine or toolchain is noticed.
        #expect(fnv1a(TextGenerator(bytes: 20_000, seed: 42, vocabulary: 5_000).makeBytes()) == 9_786_918_189_820_447_202)
    }

    @Test(arguments: [Int64(0), 1, 2, 3, 100, 4_321, 123_457])
    func textSizeAndShape(bytes: Int64) {
        let text = TextGenerator(bytes: bytes, seed: 3, vocabulary: 20_000).makeBytes()
        #expect(text.count <= bytes)
        #expect(Int64(text.count) > bytes - 34)  // short by less than one word and its space
        guard !text.isEmpty else { return }
        #expect(text.last == UInt8(ascii: "\n"))
        let lines = text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast()
        for (i, line) in lines.enumerated() {
            let words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            #expect(!words.contains { $0.isEmpty })
            if i < lines.count - 1 { #expect((10...20).contains(words.count)) }
        }
    }

    @Test func textIsZipfianWithSomeNonASCIIWords() {
        let text = TextGenerator(bytes: 300_000, seed: 11).makeBytes()
        let string = String(decoding: text, as: UTF8.self)
        #expect(Array(string.utf8) == text)  // valid UTF-8
        var counts: [Substring: Int] = [:]
        var total = 0
        var nonASCII = 0
        for line in string.split(separator: "\n") {
            for word in line.split(separator: " ") {
                counts[word, default: 0] += 1
                total += 1
                if word.utf8.contains(where: { $0 >= 0x80 }) { nonASCII += 1 }
            }
        }
        let ranked = counts.sorted { $0.value > $1.value }
        #expect(ranked.first?.key == "ba")
        // P(rank 0) = 1/H with H ≈ 8.1 for s = 1.1 and a million words.
        let top = Double(ranked[0].value) / Double(total)
        #expect(top > 0.10 && top < 0.15)
        #expect(Double(counts["be"] ?? 0) / Double(total) > top / 2.5)  // rank 1 ≈ 2^-1.1 of rank 0
        let share = Double(nonASCII) / Double(total)
        #expect(share > 0.002 && share < 0.06)
    }

    @Test func textWriteToFileMatchesMemory() throws {
        let generator = TextGenerator(bytes: 30_000, seed: 5, vocabulary: 10_000)
        let path = "/tmp/sluice-gen-text-\(getpid()).txt"
        defer { unlink(path) }
        try generator.write(to: path)
        #expect(readFile(path) == generator.makeBytes())
        #expect(throws: GeneratorError.self) { try generator.write(to: "/nonexistent-dir/x.txt") }
    }

    @Test func eventsAreDeterministicCSV() throws {
        let a = EventGenerator(rows: 5_000, seed: 1).makeBytes()
        #expect(a == EventGenerator(rows: 5_000, seed: 1).makeBytes())
        #expect(a != EventGenerator(rows: 5_000, seed: 2).makeBytes())
        #expect(a.starts(with: Array("ts,user,key,value\n".utf8)))
        #expect(fnv1a(EventGenerator(rows: 1_000, seed: 42).makeBytes()) == 4_363_106_916_640_095_093)
        #expect(EventGenerator(rows: 0, seed: 1).makeBytes() == Array("ts,user,key,value\n".utf8))

        let generator = EventGenerator(rows: 5_000, seed: 1)
        let rows = try events(generator)
        #expect(rows.count == 5_000)
        for e in rows {
            #expect(e.user.utf8.count == 6 && e.user.hasPrefix("u"))
            #expect(e.key.utf8.count == 6 && e.key.hasPrefix("k"))
            #expect((-100...1000).contains(e.value))
        }
        #expect(rows.contains { $0.value < 0 })
        #expect(rows[0].ts == 1_700_000_000_000)
        #expect(generator.keyName(42) == "k00042")
        #expect(generator.userName(12345) == "u12345")
    }

    @Test func eventsHotKeyShare() throws {
        let generator = EventGenerator(rows: 40_000, seed: 9)
        let hot = Set(generator.hotKeyIndices.map(generator.keyName))
        #expect(hot == ["k00000", "k33333", "k66666"])
        let rows = try events(generator)
        var perKey: [String: Int] = [:]
        for e in rows { perKey[e.key, default: 0] += 1 }
        let hotRows = hot.map { perKey[$0] ?? 0 }
        let share = Double(hotRows.reduce(0, +)) / Double(rows.count)
        #expect(abs(share - 0.25) < 0.015)
        for n in hotRows { #expect(abs(Double(n) / Double(rows.count) - 0.25 / 3) < 0.01) }
        // Cold keys get about (1 - 0.25) / 99_997 of the rows each: a handful at most.
        #expect(perKey.filter { !hot.contains($0.key) }.values.max() ?? 0 < 10)
        #expect(perKey.count > 10_000)
    }

    @Test func eventsLateFraction() throws {
        let generator = EventGenerator(rows: 40_000, seed: 4, lateFraction: 0.05, maxLatenessMillis: 5_000)
        let rows = try events(generator)
        var maxTs = Int.min
        var late = 0
        var outOfOrder = 0
        var previous = Int.min
        for e in rows {
            if e.ts < maxTs {
                late += 1
                #expect(maxTs - e.ts <= 5_000)
            }
            if e.ts < previous { outOfOrder += 1 }
            previous = e.ts
            maxTs = max(maxTs, e.ts)
        }
        let fraction = Double(late) / Double(rows.count)
        #expect(abs(fraction - 0.05) < 0.006)
        #expect(outOfOrder > 0)
        // Mostly increasing: the clock moves 0...20 ms per on-time row.
        #expect(maxTs - rows[0].ts > 40_000 * 5)
        let none = try events(EventGenerator(rows: 2_000, seed: 4, lateFraction: 0))
        #expect(zip(none, none.dropFirst()).allSatisfy { $0.ts <= $1.ts })
    }

    @Test func eventsWriteToFileMatchesMemory() throws {
        let generator = EventGenerator(rows: 3_000, seed: 12, keys: 50, users: 7, hotKeys: 1, hotShare: 0.5)
        let path = "/tmp/sluice-gen-events-\(getpid()).csv"
        defer { unlink(path) }
        try generator.write(to: path)
        #expect(readFile(path) == generator.makeBytes())
        let reader = try CSVReader(path: path, hasHeader: true)
        var keys = Set<String>()
        var users = Set<String>()
        try reader.readAll { r in
            keys.insert(r[2])
            users.insert(r[1])
        }
        #expect(keys.count == 50 && keys.contains("k00") && keys.contains("k49"))
        #expect(users == Set((0..<7).map { "u\($0)" }))
    }
}
