/// A borrowed byte string: bytes owned by the reader (a line in its buffer, a token in that
/// line, a key in a shuffle block), valid only during the call that hands it out. It is what
/// the fastest text path carries from the reader through `flatMap` to `reduceByKey` with no
/// allocation per record; `Bytes(view)` makes an owned copy to keep.
public struct ByteView {
    /// The bytes; do not keep this pointer past the call that handed the view out.
    public let raw: UnsafeRawBufferPointer

    @inlinable public init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }

    @inlinable public var count: Int { raw.count }

    /// Calls `body` with every maximal run of bytes that are not ASCII whitespace.
    @inlinable public func forEachToken(_ body: (ByteView) throws -> Void) rethrows {
        try ByteView.forEachToken(in: raw) { try body(ByteView($0)) }
    }

    /// The tokens of `raw`: maximal runs of bytes that are not ASCII whitespace. A token's end
    /// is searched eight bytes at a time (most tokens end within the first word): a word's
    /// bytes below 0x21 — space and the control bytes, whitespace among them — are flagged
    /// with one subtraction (the lowest flag is exact), and only the flagged byte is checked.
    @inlinable @inline(__always)
    static func forEachToken(in raw: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard let base = raw.baseAddress else { return }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let n = raw.count
        var i = 0
        while true {
            while i < n && Bytes.isWhitespace(p[i]) { i += 1 }
            if i == n { return }
            let start = i
            i += 1
            while true {
                if i &+ 8 > n {
                    while i < n && !Bytes.isWhitespace(p[i]) { i += 1 }
                    break
                }
                let w = (base + i).loadUnaligned(as: UInt64.self)
                let below21 = (w &- 0x2121_2121_2121_2121) & ~w & 0x8080_8080_8080_8080
                if below21 == 0 {
                    i += 8
                    continue
                }
                let j = i + below21.trailingZeroBitCount >> 3
                if Bytes.isWhitespace(p[j]) {
                    i = j
                    break
                }
                i = j + 1
            }
            try body(UnsafeRawBufferPointer(start: base + start, count: i - start))
        }
    }

    /// The stable hash `Bytes` with the same contents has.
    @inlinable public var stableHash: UInt64 { StableHasher.hash(bytes: raw) }
}

extension Bytes {
    /// An owned copy of a borrowed view.
    @inlinable public init(_ view: ByteView) { self.init(view.raw) }
}
