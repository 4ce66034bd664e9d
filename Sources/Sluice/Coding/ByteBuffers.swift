/// An append-only byte buffer that records are encoded into (spill blocks, frames, output lines).
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public var bytes: [UInt8]

    @inlinable public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable public var count: Int { bytes.count }

    @inlinable public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    @inlinable public mutating func write(_ byte: UInt8) { bytes.append(byte) }

    @inlinable public mutating func write<S: Sequence>(contentsOf s: S) where S.Element == UInt8 {
        bytes.append(contentsOf: s)
    }

    @inlinable public mutating func write(raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    /// Writes a fixed-width little-endian integer.
    @inlinable public mutating func writeFixed<I: FixedWidthInteger>(_ value: I) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes an unsigned LEB128 variable-length integer (lengths, counts).
    @inlinable public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Writes a length-prefixed byte string.
    @inlinable public mutating func writeLengthPrefixed<C: Collection>(_ data: C) where C.Element == UInt8 {
        writeVarint(UInt64(data.count))
        bytes.append(contentsOf: data)
    }

    /// Writes an integer in decimal, as `String(value)` would, without making the string.
    @inlinable public mutating func writeDecimal(_ value: Int64) {
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                n += 1
                buffer[24 - n] = UInt8(truncatingIfNeeded: 48 + magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { bytes.append(0x2D) }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[(24 - n)...]))
        }
    }

    /// Writes a length-prefixed UTF-8 string.
    @inlinable public mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { writeLengthPrefixed($0) }
    }

    /// Overwrites a fixed-width little-endian integer at `offset` (used to back-patch headers).
    @inlinable public mutating func patchFixed<I: FixedWidthInteger>(_ value: I, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for i in 0..<raw.count { bytes[offset + i] = raw[i] }
        }
    }
}

/// Bytes that do not decode in one of Sluice's binary formats (records, shuffle blocks,
/// protocol frames): truncated or corrupt. (Not `DecodingError`, which is `Codable`'s.)
public struct CorruptDataError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A cursor over borrowed bytes that records are decoded from. The bytes must outlive the reader.
public struct ByteReader {
    @usableFromInline let base: UnsafeRawBufferPointer
    /// The read position.
    public var position: Int

    @inlinable public init(_ base: UnsafeRawBufferPointer, position: Int = 0) {
        self.base = base
        self.position = position
    }

    @inlinable public var isAtEnd: Bool { position >= base.count }
    @inlinable public var remaining: Int { base.count - position }

    @inlinable public mutating func readByte() throws -> UInt8 {
        guard position < base.count else { throw CorruptDataError("unexpected end of data") }
        let b = base[position]
        position += 1
        return b
    }

    @inlinable public mutating func readFixed<I: FixedWidthInteger>(_: I.Type = I.self) throws -> I {
        let size = MemoryLayout<I>.size
        guard position + size <= base.count else { throw CorruptDataError("unexpected end of data") }
        var value = I.zero
        withUnsafeMutableBytes(of: &value) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: base[position..<position + size]))
        }
        position += size
        return I(littleEndian: value)
    }

    @inlinable public mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < base.count else { throw CorruptDataError("unexpected end of data in varint") }
            let b = base[position]
            position += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw CorruptDataError("varint too long") }
        }
    }

    /// Reads `count` bytes as a borrowed slice (valid as long as the underlying bytes are).
    @inlinable public mutating func readSlice(count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, position + count <= base.count else { throw CorruptDataError("unexpected end of data") }
        let slice = UnsafeRawBufferPointer(rebasing: base[position..<position + count])
        position += count
        return slice
    }

    @inlinable public mutating func readLengthPrefixed() throws -> UnsafeRawBufferPointer {
        let n = try readVarint()
        guard n <= UInt64(remaining) else { throw CorruptDataError("length \(n) exceeds the remaining \(remaining) bytes") }
        return try readSlice(count: Int(n))
    }

    @inlinable public mutating func readString() throws -> String {
        let raw = try readLengthPrefixed()
        return String(decoding: raw, as: UTF8.self)
    }
}
