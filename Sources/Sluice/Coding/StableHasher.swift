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
