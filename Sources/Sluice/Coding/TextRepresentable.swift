/// A value that `write(to:)` can turn into output text. Pairs are written `key<TAB>value`;
/// arrays as their elements joined by `,`; `nil` as the empty string.
public protocol TextRepresentable {
    /// Appends the value's text form (no newline).
    func writeText(to writer: inout ByteWriter)
}

extension Bytes: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) { writer.write(contentsOf: storage) }
}

extension String: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) {
        var s = self
        s.withUTF8 { writer.write(contentsOf: $0) }
    }
}

extension TextRepresentable where Self: BinaryInteger {
    @inlinable public func writeText(to writer: inout ByteWriter) {
        writer.write(contentsOf: String(self).utf8)
    }
}

extension Int: TextRepresentable {}
extension Int64: TextRepresentable {}
extension Int32: TextRepresentable {}
extension Int16: TextRepresentable {}
extension Int8: TextRepresentable {}
extension UInt: TextRepresentable {}
extension UInt64: TextRepresentable {}
extension UInt32: TextRepresentable {}
extension UInt16: TextRepresentable {}
extension UInt8: TextRepresentable {}

extension Double: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) { writer.write(contentsOf: description.utf8) }
}

extension Float: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) { writer.write(contentsOf: description.utf8) }
}

extension Bool: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) { writer.write(contentsOf: description.utf8) }
}

extension Unit: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) {}
}

extension Optional: TextRepresentable where Wrapped: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) { self?.writeText(to: &writer) }
}

extension Array: TextRepresentable where Element: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) {
        for (i, e) in enumerated() {
            if i > 0 { writer.write(UInt8(ascii: ",")) }
            e.writeText(to: &writer)
        }
    }
}

extension Pair: TextRepresentable where A: TextRepresentable, B: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) {
        first.writeText(to: &writer)
        writer.write(UInt8(ascii: "\t"))
        second.writeText(to: &writer)
    }
}

extension Triple: TextRepresentable where A: TextRepresentable, B: TextRepresentable, C: TextRepresentable {
    @inlinable public func writeText(to writer: inout ByteWriter) {
        first.writeText(to: &writer)
        writer.write(UInt8(ascii: "\t"))
        second.writeText(to: &writer)
        writer.write(UInt8(ascii: "\t"))
        third.writeText(to: &writer)
    }
}
