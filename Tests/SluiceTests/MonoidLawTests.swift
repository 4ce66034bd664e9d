import Foundation
import Sluice
@testable import SluiceStream
import Testing

/// Property tests of the monoid laws: identity on both sides, associativity, commutativity
/// where declared, `combine(into:)` agreeing with `combine`, and the binary encoding round
/// trip — on random values built by folding random single observations.
@Suite("Monoid laws")
struct MonoidLawTests {
    /// Checks the laws on `trials` random triples; `single` makes one observation.
    static func checkLaws<M: Monoid>(_ m: M, trials: Int = 300, seed: UInt64, maxFold: Int = 6,
                                     sourceLocation: SourceLocation = #_sourceLocation,
                                     single: (inout TestRandom) -> M.Value) {
        var rng = TestRandom(seed)
        func value() -> M.Value {
            var v = m.identity
            for _ in 0..<rng.int(maxFold + 1) { v = m.combine(v, single(&rng)) }
            return v
        }
        for _ in 0..<trials {
            let a = value(), b = value(), c = value()
            #expect(m.combine(m.identity, a) == a, "\(m.name): left identity", sourceLocation: sourceLocation)
            #expect(m.combine(a, m.identity) == a, "\(m.name): right identity", sourceLocation: sourceLocation)
            #expect(m.combine(m.combine(a, b), c) == m.combine(a, m.combine(b, c)), "\(m.name): associativity", sourceLocation: sourceLocation)
            if m.isCommutative {
                #expect(m.combine(a, b) == m.combine(b, a), "\(m.name): commutativity", sourceLocation: sourceLocation)
            }
            var inPlace = a
            m.combine(into: &inPlace, b)
            #expect(inPlace == m.combine(a, b), "\(m.name): combine(into:) agrees with combine", sourceLocation: sourceLocation)
            var w = ByteWriter()
            a.encode(to: &w)
            let decoded = w.bytes.withUnsafeBytes { raw -> M.Value? in
                var r = ByteReader(raw)
                return try? M.Value.decode(from: &r)
            }
            #expect(decoded == a, "\(m.name): encoding round trip", sourceLocation: sourceLocation)
        }
    }

    @Test func count() {
        Self.checkLaws(Count(), seed: 1) { _ in 1 }
    }

    @Test func sumWrapsAndStaysAssociative() {
        Self.checkLaws(Sum<Int>(), seed: 2) { rng in Int(bitPattern: UInt(truncatingIfNeeded: rng.next())) }
        Self.checkLaws(Sum<Int32>(), seed: 3) { rng in Int32(truncatingIfNeeded: rng.next()) }
    }

    @Test func minAndMax() {
        Self.checkLaws(Min<Int>(), seed: 4) { rng in rng.int(100) - 50 }
        Self.checkLaws(Max<String>(), seed: 5) { rng in "s\(rng.int(40))" }
    }

    @Test func mean() {
        Self.checkLaws(Mean(), seed: 6) { rng in MeanValue(rng.int(1000) - 500) }
        #expect(Mean().combine(MeanValue(3), MeanValue(6)).mean == 4.5)
    }

    @Test func topK() {
        Self.checkLaws(TopK<Int>(3), seed: 7) { rng in [rng.int(20)] }
        #expect(TopK<Int>(2).combine([9, 4], [7, 7]) == [9, 7])
    }

    @Test func pairsOfMonoids() {
        Self.checkLaws(Both(Count(), Sum<Int>()), seed: 8) { rng in Pair(1, rng.int(100)) }
    }

    @Test func hyperLogLogAcrossTheSparseToDenseSwitch() {
        // Precision 6: 64 registers, sparse up to 16 hashes, so folds cross the switch often.
        let small = HyperLogLog(precision: 6)
        Self.checkLaws(small, seed: 9, maxFold: 40) { rng in small.single(rng.int(200)) }
        Self.checkLaws(small.exact, seed: 10, maxFold: 40) { rng in small.single(rng.int(200)) }
        let hll = HyperLogLog(precision: 12)
        Self.checkLaws(hll, trials: 30, seed: 11, maxFold: 3) { rng in
            var v = hll.identity
            for _ in 0..<rng.int(3000) { hll.combine(into: &v, hll.single(rng.int(5000))) }
            return v
        }
    }

    @Test func hyperLogLogIsExactWhileSparseAndWithinItsBoundAfter() throws {
        let hll = HyperLogLog(precision: 12)
        let bound = try #require(hll.relativeError)
        for n in [10, 1000, 20_000, 200_000] {
            var v = hll.identity
            for i in 0..<n { hll.combine(into: &v, hll.single(Bytes("user-\(i)"))) }
            for i in 0..<(n / 2) { hll.combine(into: &v, hll.single(Bytes("user-\(i)"))) } // repeats change nothing
            let estimate = try #require(hll.estimate(v))
            if n <= 1024 {
                #expect(estimate == Double(n), "sparse form is exact")
            } else {
                #expect(abs(estimate - Double(n)) / Double(n) <= bound, "estimate \(estimate) for \(n)")
            }
        }
    }

    @Test func sessionsMergeAcrossPieces() {
        let sessions = Sessions(Count(), gap: 10)
        Self.checkLaws(sessions, seed: 12, maxFold: 8) { rng in
            let t = Int64(rng.int(200))
            return [SessionSpan(start: t, end: t, value: 1)]
        }
        // Events at 0, 5, 14 form one session (gaps below 10); 30 starts another.
        let s = [0, 30, 5, 14].map { (t: Int64) in [SessionSpan(start: t, end: t, value: 1)] }.reduce(sessions.identity, sessions.combine)
        #expect(s == [SessionSpan(start: 0, end: 14, value: 3), SessionSpan(start: 30, end: 30, value: 1)])
    }
}
