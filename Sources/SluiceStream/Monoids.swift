import Foundation
import Sluice

/// A monoid: an associative `combine` with an `identity` (`combine(identity, a) == a`). This
/// is what lets the same aggregation run in any grouping — per task before a shuffle, per
/// batch in the batch layer, per event in the speed layer — and merge the pieces afterwards.
/// `isCommutative` declares whether the order of the pieces may change too (every monoid here
/// is commutative; session windows need a commutative inner monoid).
///
/// An approximate monoid (HyperLogLog) states its `relativeError` and offers an `exact`
/// variant that the reference computes, so `sluice compare` can tell an approximation within
/// its bound from a real difference.
public protocol Monoid: Sendable {
    /// The aggregate.
    associatedtype Value: BinaryCodable & Equatable
    /// A short name for people (`count`, `mean`, `hll(p=12)`).
    var name: String { get }
    /// The names of the tab-separated columns `render` writes.
    var columns: [String] { get }
    var identity: Value { get }
    func combine(_ a: Value, _ b: Value) -> Value
    /// `a = combine(a, b)`, in place where the value allows it.
    func combine(into a: inout Value, _ b: Value)
    /// Whether `combine(a, b) == combine(b, a)` for all values.
    var isCommutative: Bool { get }
    /// For an approximate monoid, the bound on the relative error of `estimate` (three
    /// standard errors); nil for an exact one.
    var relativeError: Double? { get }
    /// The exact variant the reference runs (the monoid itself when it is exact).
    var exact: Self { get }
    /// The value for people, as tab-separated columns.
    func render(_ value: Value) -> String
    /// `render`, written into `w` (views of millions of rows: no string per row where the
    /// monoid writes its digits directly).
    func write(_ value: Value, to w: inout ByteWriter)
    /// The number an approximate value stands for (compared against the exact variant's).
    func estimate(_ value: Value) -> Double?
}

extension Monoid {
    @inlinable public func combine(into a: inout Value, _ b: Value) { a = combine(a, b) }
    public var relativeError: Double? { nil }
    public var exact: Self { self }
    public func estimate(_ value: Value) -> Double? { nil }
    public func write(_ value: Value, to w: inout ByteWriter) { w.write(contentsOf: render(value).utf8) }
}

/// Counts: `value` is 1 per event.
public struct Count: Monoid {
    public init() {}
    public var name: String { "count" }
    public var columns: [String] { ["count"] }
    @inlinable public var identity: Int { 0 }
    @inlinable public func combine(_ a: Int, _ b: Int) -> Int { a &+ b }
    @inlinable public func combine(into a: inout Int, _ b: Int) { a &+= b }
    public var isCommutative: Bool { true }
    public func render(_ value: Int) -> String { String(value) }
    public func write(_ value: Int, to w: inout ByteWriter) { w.writeDecimal(Int64(value)) }
}

/// Sums of integers (wrapping on overflow, so that the laws hold for every value).
public struct Sum<N: FixedWidthInteger & BinaryCodable & Sendable>: Monoid {
    public init() {}
    public var name: String { "sum" }
    public var columns: [String] { ["sum"] }
    @inlinable public var identity: N { 0 }
    @inlinable public func combine(_ a: N, _ b: N) -> N { a &+ b }
    @inlinable public func combine(into a: inout N, _ b: N) { a &+= b }
    public var isCommutative: Bool { true }
    public func render(_ value: N) -> String { String(value) }
    public func write(_ value: N, to w: inout ByteWriter) {
        if let v = Int64(exactly: value) { w.writeDecimal(v) } else { w.write(contentsOf: String(value).utf8) }
    }
}

/// The smallest value (nil: none yet).
public struct Min<T: Comparable & BinaryCodable & Sendable>: Monoid {
    public init() {}
    public var name: String { "min" }
    public var columns: [String] { ["min"] }
    @inlinable public var identity: T? { nil }
    @inlinable public func combine(_ a: T?, _ b: T?) -> T? {
        guard let a else { return b }
        guard let b else { return a }
        return Swift.min(a, b)
    }
    public var isCommutative: Bool { true }
    public func render(_ value: T?) -> String { value.map { "\($0)" } ?? "" }
}

/// The largest value (nil: none yet).
public struct Max<T: Comparable & BinaryCodable & Sendable>: Monoid {
    public init() {}
    public var name: String { "max" }
    public var columns: [String] { ["max"] }
    @inlinable public var identity: T? { nil }
    @inlinable public func combine(_ a: T?, _ b: T?) -> T? {
        guard let a else { return b }
        guard let b else { return a }
        return Swift.max(a, b)
    }
    public var isCommutative: Bool { true }
    public func render(_ value: T?) -> String { value.map { "\($0)" } ?? "" }
}

/// A mean kept as the sum and the count of integer values.
public struct MeanValue: BinaryCodable, Equatable, Sendable, BitwiseCopyable {
    public var sum: Int
    public var count: Int
    @inlinable public init(sum: Int, count: Int) {
        self.sum = sum
        self.count = count
    }
    /// One observation.
    @inlinable public init(_ x: Int) { self.init(sum: x, count: 1) }
    /// The mean (nil when there is no observation).
    public var mean: Double? { count == 0 ? nil : Double(sum) / Double(count) }
    @inlinable public func encode(to writer: inout ByteWriter) {
        writer.writeFixed(sum)
        writer.writeFixed(count)
    }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> MeanValue {
        MeanValue(sum: try reader.readFixed(), count: try reader.readFixed())
    }
}

/// The mean, as (sum, count): exact and mergeable, unlike a running average.
public struct Mean: Monoid {
    public init() {}
    public var name: String { "mean" }
    public var columns: [String] { ["n", "mean"] }
    @inlinable public var identity: MeanValue { MeanValue(sum: 0, count: 0) }
    @inlinable public func combine(_ a: MeanValue, _ b: MeanValue) -> MeanValue {
        MeanValue(sum: a.sum &+ b.sum, count: a.count &+ b.count)
    }
    @inlinable public func combine(into a: inout MeanValue, _ b: MeanValue) {
        a.sum &+= b.sum
        a.count &+= b.count
    }
    public var isCommutative: Bool { true }
    public func render(_ value: MeanValue) -> String {
        "\(value.count)\t" + (value.mean.map { String(format: "%.2f", $0) } ?? "")
    }
}

/// The `k` largest values (with repeats), largest first.
public struct TopK<T: Comparable & BinaryCodable & Sendable>: Monoid {
    public let k: Int
    public init(_ k: Int) { self.k = max(1, k) }
    public var name: String { "top\(k)" }
    public var columns: [String] { ["top\(k)"] }
    @inlinable public var identity: [T] { [] }
    @inlinable public func combine(_ a: [T], _ b: [T]) -> [T] {
        if b.isEmpty { return a }
        if a.isEmpty { return b }
        var out: [T] = []
        out.reserveCapacity(Swift.min(k, a.count + b.count))
        var i = 0
        var j = 0
        while out.count < k && (i < a.count || j < b.count) {
            if j == b.count || (i < a.count && a[i] >= b[j]) {
                out.append(a[i])
                i += 1
            } else {
                out.append(b[j])
                j += 1
            }
        }
        return out
    }
    public var isCommutative: Bool { true }
    public func render(_ value: [T]) -> String { value.map { "\($0)" }.joined(separator: ",") }
}

/// Two monoids side by side (count and sum, count and mean …).
public struct Both<A: Monoid, B: Monoid>: Monoid {
    public let first: A
    public let second: B
    public init(_ first: A, _ second: B) {
        self.first = first
        self.second = second
    }
    public var name: String { "\(first.name)+\(second.name)" }
    public var columns: [String] { first.columns + second.columns }
    @inlinable public var identity: Pair<A.Value, B.Value> { Pair(first.identity, second.identity) }
    @inlinable public func combine(_ a: Pair<A.Value, B.Value>, _ b: Pair<A.Value, B.Value>) -> Pair<A.Value, B.Value> {
        Pair(first.combine(a.first, b.first), second.combine(a.second, b.second))
    }
    @inlinable public func combine(into a: inout Pair<A.Value, B.Value>, _ b: Pair<A.Value, B.Value>) {
        first.combine(into: &a.first, b.first)
        second.combine(into: &a.second, b.second)
    }
    public var isCommutative: Bool { first.isCommutative && second.isCommutative }
    public var relativeError: Double? {
        switch (first.relativeError, second.relativeError) {
        case (nil, nil): return nil
        case let (a, b): return Swift.max(a ?? 0, b ?? 0)
        }
    }
    public var exact: Both { Both(first.exact, second.exact) }
    public func render(_ value: Pair<A.Value, B.Value>) -> String {
        first.render(value.first) + "\t" + second.render(value.second)
    }
    public func write(_ value: Pair<A.Value, B.Value>, to w: inout ByteWriter) {
        first.write(value.first, to: &w)
        w.write(0x09)
        second.write(value.second, to: &w)
    }
    public func estimate(_ value: Pair<A.Value, B.Value>) -> Double? {
        first.estimate(value.first) ?? second.estimate(value.second)
    }
}

/// One session: the events between `start` and `end` (event times), no two consecutive ones
/// `gap` or more apart, and their aggregate.
public struct SessionSpan<V: BinaryCodable & Equatable>: BinaryCodable, Equatable {
    public var start: Int64
    public var end: Int64
    public var value: V
    @inlinable public init(start: Int64, end: Int64, value: V) {
        self.start = start
        self.end = end
        self.value = value
    }
    @inlinable public func encode(to writer: inout ByteWriter) {
        writer.writeFixed(start)
        writer.writeFixed(end)
        value.encode(to: &writer)
    }
    @inlinable public static func decode(from reader: inout ByteReader) throws -> SessionSpan {
        let start: Int64 = try reader.readFixed()
        let end: Int64 = try reader.readFixed()
        return SessionSpan(start: start, end: end, value: try V.decode(from: &reader))
    }
}

/// Session windows as a monoid over sorted lists of sessions: `combine` merges the lists and
/// fuses sessions less than `gap` apart, combining their aggregates with the inner monoid.
/// The result depends only on the set of events, so it is associative — and commutative when
/// the inner monoid is, which session windows require.
public struct Sessions<M: Monoid>: Monoid {
    public let inner: M
    public let gap: Int64
    public init(_ inner: M, gap: Int64) {
        self.inner = inner
        self.gap = max(1, gap)
    }
    public var name: String { "sessions(\(EventTime.describeDuration(gap)))·\(inner.name)" }
    public var columns: [String] { inner.columns }
    @inlinable public var identity: [SessionSpan<M.Value>] { [] }
    @inlinable public func combine(_ a: [SessionSpan<M.Value>], _ b: [SessionSpan<M.Value>]) -> [SessionSpan<M.Value>] {
        if a.isEmpty { return b }
        if b.isEmpty { return a }
        var out: [SessionSpan<M.Value>] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            let next: SessionSpan<M.Value>
            if j == b.count || (i < a.count && a[i].start <= b[j].start) {
                next = a[i]
                i += 1
            } else {
                next = b[j]
                j += 1
            }
            if let last = out.last, next.start < last.end &+ gap {
                out[out.count - 1].end = Swift.max(last.end, next.end)
                inner.combine(into: &out[out.count - 1].value, next.value)
            } else {
                out.append(next)
            }
        }
        return out
    }
    public var isCommutative: Bool { inner.isCommutative }
    public var relativeError: Double? { inner.relativeError }
    public var exact: Sessions { Sessions(inner.exact, gap: gap) }
    public func render(_ value: [SessionSpan<M.Value>]) -> String {
        value.map { inner.render($0.value) }.joined(separator: "; ")
    }
    public func estimate(_ value: [SessionSpan<M.Value>]) -> Double? {
        var total = 0.0
        for s in value {
            guard let e = inner.estimate(s.value) else { return nil }
            total += e
        }
        return total
    }
}
