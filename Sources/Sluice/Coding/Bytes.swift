#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A byte string: a line or a token exactly as it appears in the input, whether or not it
/// is valid UTF-8. Compares bytewise (memcmp order) and hashes its bytes in one pass.
public struct Bytes: Sendable, RandomAccessCollection, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The bytes.
    public var storage: [UInt8]

    @inlinable public init(_ storage: [UInt8]) { self.storage = storage }
    @inlinable public init<S: Sequence>(_ bytes: S) where S.Element == UInt8 { storage = Array(bytes) }
    @inlinable public init(_ raw: UnsafeRawBufferPointer) { storage = Array(raw) }
    @inlinable public init(_ string: String) { storage = Array(string.utf8) }
    @inlinable public init(stringLiteral value: String) { storage = Array(value.utf8) }

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { storage.count }
    @inlinable public subscript(i: Int) -> UInt8 { storage[i] }

    /// The bytes decoded as UTF-8 (invalid sequences become U+FFFD).
    @inlinable public var string: String { String(decoding: storage, as: UTF8.self) }
    public var description: String { string }

    /// True for the bytes that separate tokens: ASCII space, `\t`, `\n`, `\v`, `\f`, `\r`.
    @inlinable public static func isWhitespace(_ b: UInt8) -> Bool {
        b == 0x20 || (b >= 0x09 && b <= 0x0D)
    }

    /// Calls `body` with every maximal run of non-whitespace bytes, without building an array.
    @inlinable public func forEachToken(_ body: (Bytes) throws -> Void) rethrows {
        try storage.withUnsafeBytes { raw in try ByteView.forEachToken(in: raw) { try body(Bytes($0)) } }
    }

    /// The tokens of the line: maximal runs of bytes that are not ASCII whitespace.
    @inlinable public func tokens() -> [Bytes] {
        var result: [Bytes] = []
        forEachToken { result.append($0) }
        return result
    }

    /// The fields between `separator` bytes (empty fields kept).
    @inlinable public func split(separator: UInt8) -> [Bytes] {
        storage.split(separator: separator, omittingEmptySubsequences: false).map { Bytes($0) }
    }
}

extension Bytes: Hashable {
    @inlinable public static func == (a: Bytes, b: Bytes) -> Bool { a.storage == b.storage }
    @inlinable public func hash(into hasher: inout Hasher) {
        storage.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

extension Bytes: Comparable {
    @inlinable public static func < (a: Bytes, b: Bytes) -> Bool {
        a.storage.withUnsafeBytes { pa in
            b.storage.withUnsafeBytes { pb in
                let n = Swift.min(pa.count, pb.count)
                if n > 0 {
                    let c = memcmp(pa.baseAddress!, pb.baseAddress!, n)
                    if c != 0 { return c < 0 }
                }
                return pa.count < pb.count
            }
        }
    }
}

extension Bytes: ShuffleKey {
    @inlinable public func encode(to writer: inout ByteWriter) { writer.writeLengthPrefixed(storage) }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Bytes {
        Bytes(try reader.readLengthPrefixed())
    }
    @inlinable public var estimatedMemory: Int { 40 + storage.count }
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        storage.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
