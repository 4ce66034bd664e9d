/// A value that can cross a shuffle or a pipe: a compact, self-delimiting binary encoding.
///
/// Conformances exist for integers, floating point, `Bool`, `String`, `Bytes`, optionals,
/// arrays, `Pair`, `Triple` and `Unit`. For your own struct, encode its fields in order:
/// ```swift
/// extension Flight: BinaryCodable {
///     func encode(to w: inout ByteWriter) { carrier.encode(to: &w); delay.encode(to: &w) }
///     static func decode(from r: inout ByteReader) throws -> Flight {
///         Flight(carrier: try .decode(from: &r), delay: try .decode(from: &r))
///     }
/// }
/// ```
public protocol BinaryCodable {
    /// Appends the value's encoding.
    func encode(to writer: inout ByteWriter)
    /// Reads one value written by `encode(to:)`.
    static func decode(from reader: inout ByteReader) throws -> Self
    /// Roughly how many bytes the value occupies in memory, heap included; drives spilling.
    var estimatedMemory: Int { get }
}

extension BinaryCodable {
    @inlinable public var estimatedMemory: Int { MemoryLayout<Self>.stride }
}

/// A key that can be shuffled: equatable, hashable in-process, and hashable *stably*
/// across processes for partitioning.
public protocol ShuffleKey: BinaryCodable, Hashable {
    /// Feeds the key into a process-independent hash. The default hashes the encoding.
    func stableHash(into hasher: inout StableHasher)
}

extension ShuffleKey {
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        var w = ByteWriter(capacity: 32)
        encode(to: &w)
        w.bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

// MARK: - Integers and floating point

extension BinaryCodable where Self: FixedWidthInteger {
    @inlinable public func encode(to writer: inout ByteWriter) { writer.writeFixed(self) }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Self { try reader.readFixed(Self.self) }
}

extension ShuffleKey where Self: FixedWidthInteger {
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        hasher.combine(UInt64(truncatingIfNeeded: self))
    }
}

extension Int: ShuffleKey {}
extension Int64: ShuffleKey {}
extension Int32: ShuffleKey {}
extension Int16: ShuffleKey {}
extension Int8: ShuffleKey {}
extension UInt: ShuffleKey {}
extension UInt64: ShuffleKey {}
extension UInt32: ShuffleKey {}
extension UInt16: ShuffleKey {}
extension UInt8: ShuffleKey {}

extension Double: ShuffleKey {
    @inlinable public func encode(to writer: inout ByteWriter) { writer.writeFixed(bitPattern) }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Double {
        Double(bitPattern: try reader.readFixed(UInt64.self))
    }
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        hasher.combine((self == 0 ? 0.0 : self).bitPattern)
    }
}

extension Float: ShuffleKey {
    @inlinable public func encode(to writer: inout ByteWriter) { writer.writeFixed(bitPattern) }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Float {
        Float(bitPattern: try reader.readFixed(UInt32.self))
    }
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        hasher.combine(UInt64((self == 0 ? Float(0) : self).bitPattern))
    }
}

extension Bool: ShuffleKey {
    @inlinable public func encode(to writer: inout ByteWriter) { writer.write(self ? 1 : 0) }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Bool {
        switch try reader.readByte() {
        case 0: return false
        case 1: return true
        case let b: throw CorruptDataError("invalid Bool byte \(b)")
        }
    }
    @inlinable public func stableHash(into hasher: inout StableHasher) { hasher.combine(self ? 1 : 0) }
}

// MARK: - Strings

extension String: ShuffleKey {
    @inlinable public func encode(to writer: inout ByteWriter) { writer.writeString(self) }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> String { try reader.readString() }
    @inlinable public var estimatedMemory: Int { 16 + (utf8.count > 15 ? utf8.count + 32 : 0) }
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        var s = self
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

// MARK: - Containers

extension Optional: BinaryCodable where Wrapped: BinaryCodable {
    @inlinable public func encode(to writer: inout ByteWriter) {
        switch self {
        case .none: writer.write(0)
        case .some(let v):
            writer.write(1)
            v.encode(to: &writer)
        }
    }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Wrapped? {
        switch try reader.readByte() {
        case 0: return nil
        case 1: return try Wrapped.decode(from: &reader)
        case let b: throw CorruptDataError("invalid Optional tag \(b)")
        }
    }
    @inlinable public var estimatedMemory: Int { self?.estimatedMemory ?? MemoryLayout<Self>.stride }
}

extension Optional: ShuffleKey where Wrapped: ShuffleKey {
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        switch self {
        case .none: hasher.combine(0x5eed)
        case .some(let v):
            hasher.combine(1)
            v.stableHash(into: &hasher)
        }
    }
}

extension Array: BinaryCodable where Element: BinaryCodable {
    @inlinable public func encode(to writer: inout ByteWriter) {
        writer.writeVarint(UInt64(count))
        for e in self { e.encode(to: &writer) }
    }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> [Element] {
        let n = try reader.readVarint()
        guard n <= UInt64(reader.remaining) else { throw CorruptDataError("array count \(n) exceeds the data") }
        var result: [Element] = []
        result.reserveCapacity(Int(n))
        for _ in 0..<n { result.append(try Element.decode(from: &reader)) }
        return result
    }
    @inlinable public var estimatedMemory: Int {
        var total = 32
        for e in self { total += e.estimatedMemory }
        return total
    }
}

extension Array: ShuffleKey where Element: ShuffleKey {
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        hasher.combine(UInt64(count))
        for e in self { e.stableHash(into: &hasher) }
    }
}

/// The empty value: the value type of `distinct`, a set's membership.
public struct Unit: ShuffleKey, Sendable, Comparable {
    @inlinable public init() {}
    @inlinable public func encode(to writer: inout ByteWriter) {}
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Unit { Unit() }
    @inlinable public func stableHash(into hasher: inout StableHasher) {}
    @inlinable public static func < (a: Unit, b: Unit) -> Bool { false }
}

/// Two values as one codable value. Swift tuples cannot conform to protocols, so a tuple
/// that must cross a shuffle as a key or value is written as a `Pair` (or `Triple`).
public struct Pair<A, B> {
    public var first: A
    public var second: B
    @inlinable public init(_ first: A, _ second: B) {
        self.first = first
        self.second = second
    }
    /// The pair as a Swift tuple.
    @inlinable public var tuple: (A, B) { (first, second) }
}

extension Pair: Equatable where A: Equatable, B: Equatable {}
extension Pair: Hashable where A: Hashable, B: Hashable {}
extension Pair: Sendable where A: Sendable, B: Sendable {}
/// A pair of plain values is a plain value: it may sit inline in the byte-key tables.
extension Pair: BitwiseCopyable where A: BitwiseCopyable, B: BitwiseCopyable {}
extension Pair: Comparable where A: Comparable, B: Comparable {
    @inlinable public static func < (l: Pair, r: Pair) -> Bool { (l.first, l.second) < (r.first, r.second) }
}
extension Pair: BinaryCodable where A: BinaryCodable, B: BinaryCodable {
    @inlinable public func encode(to writer: inout ByteWriter) {
        first.encode(to: &writer)
        second.encode(to: &writer)
    }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Pair {
        let a = try A.decode(from: &reader)
        return Pair(a, try B.decode(from: &reader))
    }
    @inlinable public var estimatedMemory: Int { first.estimatedMemory + second.estimatedMemory }
}
extension Pair: ShuffleKey where A: ShuffleKey, B: ShuffleKey {
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        first.stableHash(into: &hasher)
        second.stableHash(into: &hasher)
    }
}

/// Three values as one codable value (see `Pair`).
public struct Triple<A, B, C> {
    public var first: A
    public var second: B
    public var third: C
    @inlinable public init(_ first: A, _ second: B, _ third: C) {
        self.first = first
        self.second = second
        self.third = third
    }
}

extension Triple: Equatable where A: Equatable, B: Equatable, C: Equatable {}
extension Triple: Hashable where A: Hashable, B: Hashable, C: Hashable {}
extension Triple: Sendable where A: Sendable, B: Sendable, C: Sendable {}
extension Triple: Comparable where A: Comparable, B: Comparable, C: Comparable {
    @inlinable public static func < (l: Triple, r: Triple) -> Bool {
        (l.first, l.second, l.third) < (r.first, r.second, r.third)
    }
}
extension Triple: BinaryCodable where A: BinaryCodable, B: BinaryCodable, C: BinaryCodable {
    @inlinable public func encode(to writer: inout ByteWriter) {
        first.encode(to: &writer)
        second.encode(to: &writer)
        third.encode(to: &writer)
    }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> Triple {
        let a = try A.decode(from: &reader)
        let b = try B.decode(from: &reader)
        return Triple(a, b, try C.decode(from: &reader))
    }
    @inlinable public var estimatedMemory: Int {
        first.estimatedMemory + second.estimatedMemory + third.estimatedMemory
    }
}
extension Triple: ShuffleKey where A: ShuffleKey, B: ShuffleKey, C: ShuffleKey {
    @inlinable public func stableHash(into hasher: inout StableHasher) {
        first.stableHash(into: &hasher)
        second.stableHash(into: &hasher)
        third.stableHash(into: &hasher)
    }
}
