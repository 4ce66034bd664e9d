import Sluice
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The stream layer's engine job. Kappa and the batch layer are one job on the batch engine:
// the log's offset range is cut into tasks; each folds its events into (key, window) partial
// aggregates through the monoid on the map side, they are shuffled by key and merged on the
// reduce side. Kappa adds the watermark, exact in parallel: a task starts with the largest
// event time of every record before its first offset (the log's index keeps this prefix
// maximum) and advances it as a sequential replay would, so its late events are exactly a
// sequential replay's. Late events go to one side file per task, written whole and renamed,
// so a retried or speculative attempt writes the same file again.

/// What the engine job reads and writes.
@usableFromInline struct ReplayRequest {
    /// A kappa view (text rows sorted by key and window, each partition holding whole keys)
    /// or a batch view (one hex-encoded `(key, window, value)` record per line).
    @usableFromInline enum Format: String { case view, batch }

    @usableFromInline var log: String
    @usableFromInline var offsets: Range<Int64>
    /// Source tasks.
    @usableFromInline var partitions: Int
    @usableFromInline var exact: Bool
    /// The allowed lateness; nil: no watermark (every event counts).
    @usableFromInline var lateness: Int64?
    /// Where tasks put their late events (`late-NNNN…`), when there is a watermark.
    @usableFromInline var lateFolder: String?
    @usableFromInline var output: String
    @usableFromInline var format: Format
}

/// One task's watermark and side output.
@usableFromInline final class ReplayTask {
    var watermark: Watermark
    let filters: Bool
    let lateFile: String?
    var late = ByteWriter(capacity: 0)

    /// The task of `partition`: its watermark starts from the largest event time before its
    /// first offset.
    @usableFromInline init(_ request: ReplayRequest, partition: Int) throws {
        let first = EventLogSource.range(partition, of: request.offsets, partitions: request.partitions).lowerBound
        guard let lateness = request.lateness else {
            watermark = Watermark(allowedLateness: 0)
            filters = false
            lateFile = nil
            return
        }
        let before: TimeRange
        do {
            before = try EventLog(path: request.log).timeRange(before: first)
        } catch let e as EventLogError {
            // Bad input, not a transient failure: the job fails at once (as `EventLogSource` does).
            throw InputError(source: e.segment ?? request.log, offset: e.byte,
                             reason: e.segment == nil ? e.reason : "corrupt event log: \(e.reason)")
        }
        watermark = Watermark(allowedLateness: lateness, maxEventTime: before.isEmpty ? .min : before.max)
        filters = true
        lateFile = request.lateFolder.map { "\($0)/late-\(LogFormat.name(Int64(partition)))" }
    }

    /// Whether an event at time `t` is late (then the caller notes it); otherwise notes `t`.
    @usableFromInline func isLate(_ t: Int64) -> Bool { filters && watermark.isLate(t) }

    /// Adds a late event's side-output line.
    @usableFromInline func noteLate(_ e: LogEvent, key: String?) {
        late.write(contentsOf: "\(e.offset)\t\(e.time)\t\(watermark.value)\t\(sideOutputField(key ?? ""))\n".utf8)
    }

    /// Writes the side output (the same bytes whichever attempt writes it).
    @usableFromInline func finish() throws {
        if let lateFile, late.count > 0 { try Durable.writeAtomically(lateFile, late.bytes) }
    }
}

/// A (key, window start) shuffle key partitioned by the key alone, so that a reduce partition
/// holds all of a key's windows. Encoded as `Pair(key, start)` (the batch view's format).
@usableFromInline struct WindowKey<K: ShuffleKey & Comparable>: ShuffleKey, Comparable {
    @usableFromInline var key: K
    @usableFromInline var start: Int64

    @inlinable init(_ key: K, _ start: Int64) {
        self.key = key
        self.start = start
    }

    @inlinable func encode(to writer: inout ByteWriter) {
        key.encode(to: &writer)
        writer.writeFixed(start)
    }
    @inlinable static func decode(from reader: inout ByteReader) throws -> WindowKey {
        let k = try K.decode(from: &reader)
        return WindowKey(k, try reader.readFixed())
    }
    @inlinable var estimatedMemory: Int { key.estimatedMemory + 8 }
    @inlinable func stableHash(into hasher: inout StableHasher) { key.stableHash(into: &hasher) }
    @inlinable static func < (a: WindowKey, b: WindowKey) -> Bool { (a.key, a.start) < (b.key, b.start) }
}

/// A composite byte key: the key's bytes, then the window start's 8 bytes. Built in one
/// reused buffer per task; the tables copy what they keep.
@usableFromInline final class WindowKeyBuffer {
    @usableFromInline var buffer: UnsafeMutableRawPointer
    @usableFromInline var capacity: Int

    @inlinable init() {
        capacity = 256
        buffer = .allocate(byteCount: capacity, alignment: 8)
    }
    deinit { buffer.deallocate() }

    /// `key` followed by `start`, valid until the next call.
    @inlinable @inline(__always) func compose(_ key: ByteView, _ start: Int64) -> ByteView {
        let n = key.count
        if n + 8 > capacity { grow(n + 8) }
        if n > 0 { buffer.copyMemory(from: key.raw.baseAddress!, byteCount: n) }
        buffer.storeBytes(of: start.littleEndian, toByteOffset: n, as: Int64.self)
        return ByteView(UnsafeRawBufferPointer(start: buffer, count: n + 8))
    }

    @usableFromInline func grow(_ needed: Int) {
        buffer.deallocate()
        capacity = max(needed, capacity * 2)
        buffer = .allocate(byteCount: capacity, alignment: 8)
    }

    /// The window start of a composite key.
    @inlinable static func start(_ composite: UnsafeRawBufferPointer) -> Int64 {
        Int64(littleEndian: composite.loadUnaligned(fromByteOffset: composite.count - 8, as: Int64.self))
    }
}

/// A row of a sorted view on the byte-key path: the key (borrowed), its window and value.
@usableFromInline struct WindowRow<V> {
    @usableFromInline var key: ByteView
    @usableFromInline var start: Int64
    @usableFromInline var value: V
    @inlinable init(key: ByteView, start: Int64, value: V) {
        self.key = key
        self.start = start
        self.value = value
    }
}

/// The big-endian word of a key's first 8 bytes (zero-padded): its order is the bytes' order.
@inlinable func keyPrefixWord(_ key: UnsafeRawBufferPointer) -> UInt64 {
    var w: UInt64 = 0
    for i in 0..<min(8, key.count) { w |= UInt64(key[i]) << (56 - 8 * UInt64(i)) }
    return w
}

/// Window columns already written, by window start: a view repeats the same few windows over
/// millions of rows.
@usableFromInline final class WindowTextCache {
    let window: Window
    var texts: [Int64: [UInt8]] = [:]

    @usableFromInline init(_ window: Window) { self.window = window }

    /// Writes the window column of the window starting at `start`.
    @usableFromInline func write(start: Int64, to w: inout ByteWriter) {
        if let text = texts[start] { return w.write(contentsOf: text) }
        var t = ByteWriter(capacity: 48)
        window.writeText(start: start, to: &t)
        if texts.count >= 1 << 16 { texts.removeAll(keepingCapacity: true) }
        texts[start] = t.bytes
        w.write(contentsOf: t.bytes)
    }
}
