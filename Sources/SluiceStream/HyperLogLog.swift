import Foundation
import Sluice

/// A HyperLogLog sketch: the sorted 64-bit hashes of the items while there are few of them
/// (an exact count, as in HyperLogLog++'s sparse form), then 2^p registers of leading-zero
/// ranks. Which form a sketch takes depends only on the set of items it has seen.
public struct HLLSketch: BinaryCodable, Equatable, Sendable {
    /// Sorted, distinct item hashes (sparse form); empty in the dense form.
    @usableFromInline var hashes: [UInt64]
    /// The registers (dense form); empty in the sparse form.
    @usableFromInline var registers: [UInt8]

    @inlinable init(hashes: [UInt64], registers: [UInt8]) {
        self.hashes = hashes
        self.registers = registers
    }

    @inlinable public var isDense: Bool { !registers.isEmpty }

    @inlinable public func encode(to writer: inout ByteWriter) {
        if isDense {
            writer.write(1)
            writer.writeLengthPrefixed(registers)
        } else {
            writer.write(0)
            writer.writeVarint(UInt64(hashes.count))
            for h in hashes { writer.writeFixed(h) }
        }
    }

    @inlinable public static func decode(from reader: inout ByteReader) throws -> HLLSketch {
        switch try reader.readByte() {
        case 0:
            let n = try reader.readVarint()
            guard n <= UInt64(reader.remaining / 8) else { throw CorruptDataError("HyperLogLog hash count \(n) exceeds the data") }
            var hashes: [UInt64] = []
            hashes.reserveCapacity(Int(n))
            for _ in 0..<n { hashes.append(try reader.readFixed()) }
            return HLLSketch(hashes: hashes, registers: [])
        case 1:
            return HLLSketch(hashes: [], registers: Array(try reader.readLengthPrefixed()))
        case let tag:
            throw CorruptDataError("invalid HyperLogLog tag \(tag)")
        }
    }

    @inlinable public var estimatedMemory: Int { 64 + hashes.count * 8 + registers.count }
}

/// Distinct counts with HyperLogLog (Flajolet et al.; the sparse form of HyperLogLog++):
/// `combine` is a set union — a register-wise max, or a merge of sorted hashes — so it is
/// associative, commutative and idempotent. The standard error is 1.04/√(2^p); the stated
/// bound is three of those (4.9 % at the default p = 12). Its `exact` variant never leaves
/// the sparse form and counts distinct 64-bit hashes exactly.
public struct HyperLogLog: Monoid {
    /// Bits of the hash that pick a register (4…18).
    public let precision: Int
    /// Hashes kept in the sparse form before switching to registers.
    @usableFromInline let sparseLimit: Int

    public init(precision: Int = 12) {
        self.init(precision: precision, sparseLimit: (1 << min(max(precision, 4), 18)) / 4)
    }

    @usableFromInline init(precision: Int, sparseLimit: Int) {
        self.precision = min(max(precision, 4), 18)
        self.sparseLimit = sparseLimit
    }

    public var name: String { sparseLimit == .max ? "exact-distinct" : "hll(p=\(precision))" }
    public var columns: [String] { [sparseLimit == .max ? "distinct" : "distinct≈"] }

    /// The sketch of one item (hashed with the process-independent `StableHasher`).
    @inlinable public func single<K: ShuffleKey>(_ item: K) -> HLLSketch {
        HLLSketch(hashes: [StableHasher.hash(item)], registers: [])
    }

    /// The sketch of one item given as borrowed bytes (hashes like the same `Bytes`).
    @inlinable public func single(_ item: ByteView) -> HLLSketch {
        HLLSketch(hashes: [item.stableHash], registers: [])
    }

    @inlinable public var identity: HLLSketch { HLLSketch(hashes: [], registers: []) }

    @inlinable func registerUpdate(_ registers: inout [UInt8], _ h: UInt64) {
        let index = Int(h >> UInt64(64 - precision))
        let w = (h << UInt64(precision)) | (1 << UInt64(precision - 1))
        let rank = UInt8(w.leadingZeroBitCount + 1)
        if registers[index] < rank { registers[index] = rank }
    }

    @inlinable func densified(_ hashes: [UInt64]) -> [UInt8] {
        var registers = [UInt8](repeating: 0, count: 1 << precision)
        for h in hashes { registerUpdate(&registers, h) }
        return registers
    }

    @inlinable public func combine(_ a: HLLSketch, _ b: HLLSketch) -> HLLSketch {
        var out = a
        combine(into: &out, b)
        return out
    }

    @inlinable public func combine(into a: inout HLLSketch, _ b: HLLSketch) {
        if b.isDense {
            if !a.isDense {
                var registers = b.registers
                for h in a.hashes { registerUpdate(&registers, h) }
                a = HLLSketch(hashes: [], registers: registers)
            } else {
                for i in 0..<a.registers.count where a.registers[i] < b.registers[i] { a.registers[i] = b.registers[i] }
            }
            return
        }
        if a.isDense {
            for h in b.hashes { registerUpdate(&a.registers, h) }
            return
        }
        if b.hashes.count == 1 {
            // One new item: a binary-search insertion, the speed layer's common case.
            let h = b.hashes[0]
            var lo = 0
            var hi = a.hashes.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if a.hashes[mid] < h { lo = mid + 1 } else { hi = mid }
            }
            if lo < a.hashes.count && a.hashes[lo] == h { return }
            a.hashes.insert(h, at: lo)
        } else if !b.hashes.isEmpty {
            var merged: [UInt64] = []
            merged.reserveCapacity(a.hashes.count + b.hashes.count)
            var i = 0
            var j = 0
            while i < a.hashes.count || j < b.hashes.count {
                if j == b.hashes.count || (i < a.hashes.count && a.hashes[i] < b.hashes[j]) {
                    merged.append(a.hashes[i])
                    i += 1
                } else if i == a.hashes.count || b.hashes[j] < a.hashes[i] {
                    merged.append(b.hashes[j])
                    j += 1
                } else {
                    merged.append(a.hashes[i])
                    i += 1
                    j += 1
                }
            }
            a.hashes = merged
        }
        if a.hashes.count > sparseLimit { a = HLLSketch(hashes: [], registers: densified(a.hashes)) }
    }

    public var isCommutative: Bool { true }
    public var relativeError: Double? { sparseLimit == .max ? nil : 3 * 1.04 / Double(1 << precision).squareRoot() }
    public var exact: HyperLogLog { HyperLogLog(precision: precision, sparseLimit: .max) }

    /// The estimated number of distinct items: exact in the sparse form; the raw HyperLogLog
    /// estimate, with linear counting for small ranges, in the dense form.
    public func estimate(_ value: HLLSketch) -> Double? {
        guard value.isDense else { return Double(value.hashes.count) }
        let m = Double(value.registers.count)
        var sum = 0.0
        var zeros = 0
        for r in value.registers {
            sum += 1 / Double(UInt64(1) << UInt64(r))
            if r == 0 { zeros += 1 }
        }
        let alpha: Double
        switch value.registers.count {
        case 16: alpha = 0.673
        case 32: alpha = 0.697
        case 64: alpha = 0.709
        default: alpha = 0.7213 / (1 + 1.079 / m)
        }
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m && zeros > 0 { return m * log(m / Double(zeros)) }
        return raw
    }

    public func render(_ value: HLLSketch) -> String { String(Int(estimate(value)!.rounded())) }
}
