/// A hash that is the same in every process and on every run (Swift's `Hasher` is seeded
/// per process, so it cannot decide which partition a record goes to). A wyhash-style
/// multiply–xor mix over 64-bit words.
public struct StableHasher: Sendable {
    @usableFromInline var state: UInt64

    @inlinable public init(seed: UInt64 = 0x243F_6A88_85A3_08D3) { state = seed }

    @inlinable static func mum(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let r = a.multipliedFullWidth(by: b)
        return r.high ^ r.low
    }

    /// Mixes one 64-bit word into the state.
    @inlinable public mutating func combine(_ word: UInt64) {
        state = StableHasher.mum(state ^ word, 0xA076_1D64_78BD_642F) &+ 0xE703_7ED1_A0B4_28DB
    }

    /// Mixes raw bytes (and their length) into the state, eight bytes at a time.
    @inlinable public mutating func combine(bytes: UnsafeRawBufferPointer) {
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            combine(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        combine(tail ^ (UInt64(n) << 56) ^ 0x8EBC_6AF0_9C88_C6E3)
    }

    /// The hash of `bytes` hashed alone: the same value as `combine(bytes:)` then `finalize()`
    /// on a fresh hasher. Keys of up to 16 bytes (most text tokens) are read with two
    /// overlapping loads instead of a loop whose length the branch predictor cannot guess.
    @inlinable public static func hash(bytes: UnsafeRawBufferPointer) -> UInt64 {
        let n = bytes.count
        if n <= 16 {
            let (w0, w1) = headWords(bytes)
            return hash(headWords: w0, w1, count: n)
        }
        var h = StableHasher()
        h.combine(bytes: bytes)
        return h.finalize()
    }

    /// `hash(bytes:)` of a key of `n` ≤ 16 bytes, given its `headWords`.
    @inlinable @inline(__always) static func hash(headWords w0: UInt64, _ w1: UInt64, count n: Int) -> UInt64 {
        var h = StableHasher()
        var tail = w0
        if n >= 8 {
            h.combine(w0)
            tail = w1
            if n == 16 {
                h.combine(w1)
                tail = 0
            }
        }
        h.combine(tail ^ (UInt64(n) << 56) ^ 0x8EBC_6AF0_9C88_C6E3)
        return h.finalize()
    }

    /// The first 16 bytes of `bytes`, zero-padded, as two little-endian words. Read with
    /// overlapping loads that never leave the bytes (no copy, no loop).
    @inlinable @inline(__always) static func headWords(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        let n = bytes.count
        guard let p = bytes.baseAddress, n > 0 else { return (0, 0) }
        if n >= 16 {
            return (p.loadUnaligned(as: UInt64.self), p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        if n >= 8 {
            let high = n == 8 ? 0 : p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) >> UInt64(8 * (16 - n))
            return (p.loadUnaligned(as: UInt64.self), high)
        }
        if n >= 4 {
            let lo = UInt64(p.loadUnaligned(as: UInt32.self))
            let hi = UInt64(p.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))
            return (lo | (hi << UInt64(8 * (n - 4))), 0)
        }
        let b0 = UInt64(p.load(as: UInt8.self))
        let b1 = UInt64(p.load(fromByteOffset: n / 2, as: UInt8.self))
        let b2 = UInt64(p.load(fromByteOffset: n - 1, as: UInt8.self))
        return (b0 | (b1 << UInt64(8 * (n / 2))) | (b2 << UInt64(8 * (n - 1))), 0)
    }

    /// The final hash, avalanched so that every output bit depends on every input bit.
    @inlinable public func finalize() -> UInt64 {
        var h = state
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    /// The stable hash of one key.
    @inlinable public static func hash<K: ShuffleKey>(_ key: K) -> UInt64 {
        var h = StableHasher()
        key.stableHash(into: &h)
        return h.finalize()
    }
}
