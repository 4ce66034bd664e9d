import Foundation
@testable import Sluice
import Testing

/// The byte-key table and its spilling aggregator against a `Dictionary`, on keys of every
/// length around the slot's inline limit (12 bytes) and the batch's (16 bytes).
@Suite("Byte-key tables")
struct BytesTableTests {
    /// Keys of length 0 to 40, several distinct per length, each seen several times.
    func keys() -> [[UInt8]] {
        var rng = SplitMix64(seed: 11)
        var distinct: [[UInt8]] = []
        for n in 0...40 {
            for _ in 0..<(n == 0 ? 1 : 300) { distinct.append((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next() % 8) }) }
        }
        var stream: [[UInt8]] = []
        for i in 0..<60_000 { stream.append(distinct[Int(rng.next() % UInt64(distinct.count))]); _ = i }
        return stream
    }

    func expected(_ stream: [[UInt8]]) -> [[UInt8]: Int] {
        stream.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }

    @Test("the word-at-a-time tokenizer finds exactly the runs of non-whitespace bytes")
    func tokenizer() {
        var rng = SplitMix64(seed: 9)
        // Whitespace, other control bytes (part of tokens), ASCII letters and non-ASCII bytes.
        let alphabet: [UInt8] = [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x00, 0x01, 0x08, 0x0E, 0x1F, 0x21,
                                 0x61, 0x62, 0x7F, 0x80, 0xC3, 0xFF]
        func naive(_ line: [UInt8]) -> [[UInt8]] {
            var out: [[UInt8]] = [], current: [UInt8] = []
            for b in line {
                if Bytes.isWhitespace(b) {
                    if !current.isEmpty { out.append(current) }
                    current = []
                } else {
                    current.append(b)
                }
            }
            if !current.isEmpty { out.append(current) }
            return out
        }
        for length in 0..<200 {
            for round in 0..<20 {
                // Mostly letters in some lines, so tokens run past several 8-byte words.
                let line: [UInt8] = (0..<length).map { _ in
                    round % 2 == 0 && rng.next() % 10 != 0 ? 0x61 : alphabet[Int(rng.next() % UInt64(alphabet.count))]
                }
                var got: [[UInt8]] = []
                line.withUnsafeBytes { ByteView($0).forEachToken { got.append(Array($0.raw)) } }
                #expect(got == naive(line), "line \(line)")
                #expect(Bytes(line).tokens().map(\.storage) == got)
            }
        }
    }

    @Test("the one-shot hash (overlapping loads up to 16 bytes) equals the streamed hash for every length")
    func oneShotHash() {
        var rng = SplitMix64(seed: 5)
        for n in 0...40 {
            for _ in 0..<50 {
                let key = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                key.withUnsafeBytes { raw in
                    var streamed = StableHasher()
                    streamed.combine(bytes: raw)
                    #expect(StableHasher.hash(bytes: raw) == streamed.finalize(), "length \(n)")
                }
            }
        }
    }

    @Test("batched upserts count every key exactly, whatever its length, through growth and a slot limit",
          arguments: [Int.max, 1 << 16])
    func batched(slotLimit: Int) throws {
        let stream = keys()
        let table = BytesTable<Int>(slotLimit: slotLimit)
        let batch = BatchedUpserts(table: table)
        var got: [[UInt8]: Int] = [:]
        var drains = 0
        func drain() {
            drains += 1
            table.forEach { key, hash, value in
                #expect(hash == ByteView(key).stableHash | 1)
                got[Array(key), default: 0] += value
            }
            table.removeAll()
        }
        for key in stream {
            try key.withUnsafeBytes { try batch.add($0, 1, combine: +) }
            if batch.count == 0 && table.isFull { drain() }
        }
        try batch.apply(+)
        let drainsBefore = drains
        drain()
        #expect(got == expected(stream))
        if slotLimit < Int.max { #expect(drainsBefore > 0, "the slot limit made the table fill up") }
    }

    @Test("a worker keeps an emptied table for the next task of the same stage only, and never one past the slot limit")
    func shelf() throws {
        BytesTableShelf.enter(stage: 1_000)
        let first: BytesTable<UInt16> = BytesTableShelf.take(slotLimit: 1 << 30)
        for i in 0..<50_000 {
            withUnsafeBytes(of: UInt64(i)) { key in
                first.upsert(key, hash: ByteView(key).stableHash, create: { 1 }, update: { $0 += 1 })
            }
        }
        BytesTableShelf.put(first)
        let again: BytesTable<UInt16> = BytesTableShelf.take(slotLimit: 1 << 30)
        #expect(again === first, "the same stage gets the kept table")
        #expect(again.count == 0 && again.arenaUsed == 0, "emptied")
        BytesTableShelf.put(again)
        let small: BytesTable<UInt16> = BytesTableShelf.take(slotLimit: 1 << 16)
        #expect(small !== first, "a table past the slot limit is not handed out")
        BytesTableShelf.put(first)
        BytesTableShelf.enter(stage: 1_001)
        let next: BytesTable<UInt16> = BytesTableShelf.take(slotLimit: 1 << 30)
        #expect(next !== first, "another stage starts without the kept table")
    }

    @Test("the spilling aggregator hands out every key once with its total, with and without spills",
          arguments: [64 << 20, 1 << 16])
    func aggregator(budget: Int) throws {
        let stream = keys()
        let dir = Harness.tempDir("bagg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let metrics = TaskMetrics()
        let agg = BytesAggregator<Int>(budget: budget, spillPrefix: dir + "/t", metrics: metrics, combine: +)
        for key in stream {
            try key.withUnsafeBytes { try agg.add($0, 1) }
        }
        var got: [[UInt8]: Int] = [:]
        try agg.finish { key, value in
            #expect(got[Array(key)] == nil, "key handed out twice")
            got[Array(key)] = value
        }
        #expect(got == expected(stream))
        if budget < 1 << 20 { #expect(metrics.spills > 0 || metrics.spillBytes > 0) }
    }
}
