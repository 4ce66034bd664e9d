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
        guard let base = raw.baseAddress else { return }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let n = raw.count
        var i = 0
        while i < n {
            while i < n && Bytes.isWhitespace(p[i]) { i += 1 }
            if i == n { break }
            let start = i
            while i < n && !Bytes.isWhitespace(p[i]) { i += 1 }
            try body(ByteView(UnsafeRawBufferPointer(start: base + start, count: i - start)))
        }
    }

    /// The stable hash `Bytes` with the same contents has.
    @inlinable public var stableHash: UInt64 { StableHasher.hash(bytes: raw) }
}

extension Bytes {
    /// An owned copy of a borrowed view.
    @inlinable public init(_ view: ByteView) { self.init(view.raw) }
}
