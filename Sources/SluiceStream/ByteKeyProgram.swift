import Sluice
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A view's aggregates in a byte-key table: composite keys (the key's bytes, then the window
/// start) to plain values, looked up by borrowed bytes. The speed layer folds events into it;
/// everything that works per key (merging, checkpoints, rows, compare) sees it as a
/// `TypedTable` through `typedForm()`.
@usableFromInline final class ByteKeyTable<V: BinaryCodable & BitwiseCopyable & Equatable>: AggregateTable {
    @usableFromInline let table = BytesTable<V>()

    @usableFromInline override init() {}

    override var count: Int { table.count }

    @usableFromInline override func typedForm() -> AggregateTable {
        let typed = TypedTable<Pair<Bytes, Int64>, V>()
        typed.entries.reserveCapacity(table.count)
        table.forEach { key, _, value in
            typed.entries[Pair(Bytes(UnsafeRawBufferPointer(rebasing: key.dropLast(8))), WindowKeyBuffer.start(key))] = value
        }
        return typed
    }

    override func encodeDirectly(to writer: inout ByteWriter) -> Bool {
        writer.writeVarint(UInt64(table.count))
        table.forEach { key, _, value in
            writer.writeLengthPrefixed(UnsafeRawBufferPointer(rebasing: key.dropLast(8)))
            writer.writeFixed(WindowKeyBuffer.start(key))
            value.encode(to: &writer)
        }
        return true
    }

    /// `batch`'s table as a byte-key table: a table restored from a checkpoint (typed) is
    /// converted once, when the batch is read into again.
    @inlinable static func of(_ batch: SpeedBatch, combine: (inout V, V) -> Void) -> ByteKeyTable {
        if let t = batch.table as? ByteKeyTable { return t }
        let t = ByteKeyTable()
        let keys = WindowKeyBuffer()
        for (k, v) in (batch.table as! TypedTable<Pair<Bytes, Int64>, V>).entries {
            k.first.storage.withUnsafeBytes { raw in
                let composite = keys.compose(ByteView(raw), k.second).raw
                t.table.upsert(composite, hash: StableHasher.hash(bytes: composite), create: { v }, update: { combine(&$0, v) })
            }
        }
        batch.table = t
        return t
    }
}

/// Compiles an aggregation keyed by borrowed bytes with a plain value: kappa, the batch layer
/// and the speed layer fold events into byte-key tables (no allocation or existential call
/// per event); per-key work is the typed program's. Session windows, and aggregations whose
/// key is not given as bytes, compile as `makeStreamProgram` does.
@inlinable func makeByteKeyProgram<M: Monoid>(_ a: Aggregation<Bytes, M>) -> any StreamProgram where M.Value: BitwiseCopyable {
    guard let keyBytes = a.keyBytes else { return makeStreamProgram(a) }
    if case .session = a.window { return makeStreamProgram(a) }
    let monoid = a.monoid, value = a.value, window = a.window
    let keyText: (LogEvent) throws -> String? = { e in try keyBytes(e).map { String(decoding: $0.raw, as: UTF8.self) } }
    let replay: (JobContext, ReplayRequest) throws -> Void = { ctx, request in
        let m = request.exact ? monoid.exact : monoid
        let events = ctx.eventLog(request.log, offsets: request.offsets, partitions: request.partitions).node
        let folded = ClosureNode<(ByteView, M.Value)>(op: "foldWindows", parents: [events], body: { task, partition, sink in
            let replay = try ReplayTask(request, partition: partition)
            let keys = WindowKeyBuffer()
            try events.compute(task, partition: partition) { e in
                if replay.isLate(e.time) { return replay.noteLate(e, key: try keyText(e)) }
                guard let k = try keyBytes(e) else { return }
                let v = try value(e)
                try window.forEachStart(e.time) { try sink((keys.compose(k, $0), v)) }
            }
            try replay.finish()
        }, reference: { ref in
            let replay = try ReplayTask(request, partition: 0)
            var bytes: [UInt8] = []
            var items: [(offset: Int, count: Int, value: M.Value)] = []
            for e in try ref.records(of: events) {
                if replay.isLate(e.time) {
                    replay.noteLate(e, key: try keyText(e))
                    continue
                }
                guard let k = try keyBytes(e) else { continue }
                let v = try value(e)
                window.forEachStart(e.time) { start in
                    items.append((bytes.count, k.count + 8, v))
                    bytes.append(contentsOf: k.raw)
                    withUnsafeBytes(of: start.littleEndian) { bytes.append(contentsOf: $0) }
                }
            }
            try replay.finish()
            let kept = ref.keep(bytes)
            return items.map { (ByteView(UnsafeRawBufferPointer(rebasing: kept[$0.offset..<($0.offset + $0.count)])), $0.value) }
        })
        let reduced = reduceByteKeyViews(folded, combine: { m.combine($0, $1) }, partitions: nil, partitionSuffix: 8)
        switch request.format {
        case .batch:
            Dataset(reduced, ctx.graph).write(to: request.output) { kv, w in
                var record = ByteWriter(capacity: 64)
                record.writeLengthPrefixed(UnsafeRawBufferPointer(rebasing: kv.0.raw.dropLast(8)))
                record.writeFixed(WindowKeyBuffer.start(kv.0.raw))
                kv.1.encode(to: &record)
                Hex.encode(record.bytes, into: &w)
            }
        case .view:
            let windows = WindowTextCache(window)
            Dataset(sortedWindowRows(reduced), ctx.graph).write(to: request.output) { row, w in
                w.write(raw: row.key.raw)
                w.write(0x09)
                windows.write(start: row.start, to: &w)
                w.write(0x09)
                m.write(row.value, to: &w)
            }
        }
    }
    let speedRead: (LogCursor, Int, Int64, SpeedRead) throws -> Int = { cursor, limit, end, state in
        let keys = WindowKeyBuffer()
        return try speedLoop(cursor, limit: limit, end: end, state, table: { ByteKeyTable<M.Value>.of($0, combine: monoid.combine) },
                             fold: { e, t in
            guard let k = try keyBytes(e) else { return }
            let v = try value(e)
            window.forEachStart(e.time) { start in
                let composite = keys.compose(k, start).raw
                t.table.upsert(composite, hash: StableHasher.hash(bytes: composite), create: { v }, update: { monoid.combine(into: &$0, v) })
            }
        }, keyText: keyText)
    }
    return makeTypedProgram(key: a.key, value: value, monoid: monoid, window: window, assign: window, rows: { key, v in
        [ViewRow(key: key, window: "", value: monoid.render(v))]
    }, fastReplay: replay, fastSpeedRead: speedRead, fastPartitionOf: { k, n in
        k.storage.withUnsafeBytes { bytesPartition(StableHasher.hash(bytes: $0), n) }
    })
}

/// One reduce partition's rows sorted by key, then window, handed on as borrowed `WindowRow`s.
@inlinable func sortedWindowRows<V>(_ source: Node<(ByteView, V)>) -> Node<WindowRow<V>> {
    ClosureNode<WindowRow<V>>(op: "sortWindows", parents: [source], body: { task, partition, sink in
        let sorted = SortedWindows<V>()
        try source.compute(task, partition: partition) { sorted.add($0.0, $0.1) }
        try sorted.forEachRow(sink)
    }, reference: { ref in
        let sorted = SortedWindows<V>()
        for kv in try ref.records(of: source) { sorted.add(kv.0, kv.1) }
        var rows: [WindowRow<V>] = []
        try sorted.forEachRow { row in
            rows.append(WindowRow(key: ByteView(ref.keep(Array(row.key.raw))), start: row.start, value: row.value))
        }
        return rows
    })
}

/// A partition's (composite key, value) entries gathered for sorting: the keys' bytes in one
/// buffer, and per entry the key's first 8 bytes as a big-endian word (whose order is the
/// bytes' order, so it decides most comparisons without touching the keys), the key's place,
/// the window start and the value.
@usableFromInline final class SortedWindows<V> {
    @usableFromInline typealias Entry = (prefix: UInt64, offset: Int, count: Int, start: Int64, value: V)
    @usableFromInline var keys: [UInt8] = []
    @usableFromInline var entries: [Entry] = []

    @inlinable init() {}

    @inlinable func add(_ composite: ByteView, _ value: V) {
        let key = UnsafeRawBufferPointer(rebasing: composite.raw.dropLast(8))
        let start = WindowKeyBuffer.start(composite.raw)
        if key.count <= 8 {
            entries.append((keyPrefixWord(key), 0, key.count, start, value))
        } else {
            entries.append((keyPrefixWord(key), keys.count, key.count, start, value))
            keys.append(contentsOf: key)
        }
    }

    /// Sorts the entries and calls `body` with each row in order.
    @inlinable func forEachRow(_ body: (WindowRow<V>) throws -> Void) throws {
        try keys.withUnsafeBytes { raw in
            let base = raw.baseAddress
            entries.sort { a, b in
                if a.prefix != b.prefix { return a.prefix < b.prefix }
                let n = min(a.count, b.count)
                if n > 8 {
                    let c = memcmp(base! + a.offset, base! + b.offset, n)
                    if c != 0 { return c < 0 }
                }
                if a.count != b.count { return a.count < b.count }
                return a.start < b.start
            }
            var short: UInt64 = 0
            for e in entries {
                if e.count <= 8 {
                    short = e.prefix.bigEndian
                    try withUnsafeBytes(of: &short) { word in
                        try body(WindowRow(key: ByteView(UnsafeRawBufferPointer(rebasing: word[0..<e.count])), start: e.start, value: e.value))
                    }
                } else {
                    try body(WindowRow(key: ByteView(UnsafeRawBufferPointer(rebasing: raw[e.offset..<(e.offset + e.count)])),
                                       start: e.start, value: e.value))
                }
            }
        }
    }
}
