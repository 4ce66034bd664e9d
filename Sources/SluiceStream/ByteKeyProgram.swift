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
        let t = bytes(batch.table!, combine: combine) // the loop reads into open batches only
        batch.table = t
        return t
    }

    /// `table` as a byte-key table: itself, or a typed table converted.
    @inlinable static func bytes(_ table: AggregateTable, combine: (inout V, V) -> Void) -> ByteKeyTable {
        table as? ByteKeyTable ?? split([table], partitions: 1, combine: combine)[0]
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
    }, fast: byteKeyPaths(monoid: monoid, replay: replay, speedRead: speedRead))
}

/// The byte-key program's own paths: its replay and speed loop, and tables kept as byte keys
/// from checkpoint to comparison (decoded, split by part and compared without a typed step).
@inlinable func byteKeyPaths<M: Monoid>(monoid: M, replay: @escaping (JobContext, ReplayRequest) throws -> Void,
                                        speedRead: @escaping (LogCursor, Int, Int64, SpeedRead) throws -> Int) -> FastPaths<Bytes>
where M.Value: BitwiseCopyable {
    var fast = FastPaths<Bytes>()
    fast.replay = replay
    fast.speedRead = speedRead
    fast.partitionOf = { k, n in k.storage.withUnsafeBytes { bytesPartition(StableHasher.hash(bytes: $0), n) } }
    fast.decode = { reader in try ByteKeyTable<M.Value>.decode(from: &reader, combine: monoid.combine) }
    fast.split = { tables, partitions in ByteKeyTable<M.Value>.split(tables, partitions: partitions, combine: monoid.combine) }
    if monoid.relativeError == nil {
        fast.comparePart = { batch, speed, kappa, reference in
            try comparePart(monoid: monoid, batch: batch, speed: speed, kappa: kappa, reference: reference)
        }
    }
    return fast
}

extension ByteKeyTable {
    /// Reads a table in `TypedTable`'s encoding (as `encodeDirectly` writes it) straight into
    /// byte keys: a checkpoint or sealed batch is restored with no typed step.
    @inlinable static func decode(from reader: inout ByteReader, combine: (inout V, V) -> Void) throws -> ByteKeyTable {
        let t = ByteKeyTable()
        let n = try reader.readVarint()
        guard n <= UInt64(reader.remaining) else { throw CorruptDataError("table of \(n) entries exceeds the data") }
        for _ in 0..<n {
            let length = try reader.readVarint()
            guard length <= UInt64(reader.remaining) else { throw CorruptDataError("key of \(length) bytes exceeds the data") }
            let composite = try reader.readSlice(count: Int(length) + 8)
            let v = try V.decode(from: &reader)
            t.table.upsert(composite, hash: StableHasher.hash(bytes: composite), create: { v }, update: { combine(&$0, v) })
        }
        return t
    }

    /// The entries of `tables` merged and split by the reduce partition of their key, as the
    /// engine job's shuffle splits them: one table per partition.
    @inlinable static func split(_ tables: [AggregateTable], partitions: Int, combine: (inout V, V) -> Void) -> [ByteKeyTable] {
        let parts = (0..<partitions).map { _ in ByteKeyTable() }
        func add(_ composite: UnsafeRawBufferPointer, hash: UInt64, _ v: V) {
            let p = partitions == 1 ? 0 : bytesPartition(StableHasher.hash(bytes: UnsafeRawBufferPointer(rebasing: composite.dropLast(8))), partitions)
            parts[p].table.upsert(composite, hash: hash, create: { v }, update: { combine(&$0, v) })
        }
        let keys = WindowKeyBuffer()
        for source in tables {
            if let bytes = source as? ByteKeyTable {
                bytes.table.forEach { composite, hash, v in add(composite, hash: hash, v) }
            } else {
                // A byte-key program's tables are its own: byte-key tables, or the typed tables
                // of the same key and value its checkpoints decode into. Another cannot reach here.
                for (k, v) in (source.typedForm() as! TypedTable<Pair<Bytes, Int64>, V>).entries {
                    k.first.storage.withUnsafeBytes { raw in
                        let composite = keys.compose(ByteView(raw), k.second).raw
                        add(composite, hash: StableHasher.hash(bytes: composite), v)
                    }
                }
            }
        }
        return parts
    }
}

/// One (key, window)'s value in lambda, kappa and the reference (`comparePart`), and which of
/// them hold it (bits 1, 2, 4).
@usableFromInline struct ThreeSides<V: BitwiseCopyable>: BitwiseCopyable {
    @usableFromInline var lambda: V
    @usableFromInline var kappa: V
    @usableFromInline var reference: V
    @usableFromInline var present: UInt8 = 0

    @inlinable init(_ identity: V) {
        lambda = identity
        kappa = identity
        reference = identity
    }
}

/// One comparison part in one byte-key table: lambda (batch view lines and the speed layer's
/// table), kappa and the reference folded together, a missing value counting as the identity,
/// as `compare` counts it (`kappa` nil: kappa's view is the reference's). The pairs compared,
/// and typed tables of the entries of the pairs that differ, for `compare` to explain.
/// Exact monoids only: an approximate one is compared with its exact reference.
@inlinable func comparePart<M: Monoid>(monoid: M, batch: [UInt8]?, speed: AggregateTable?, kappa: [UInt8]?,
                                       reference: [UInt8]) throws -> PartComparison where M.Value: BitwiseCopyable {
    let blank = ThreeSides(monoid.identity)
    let table = BytesTable<ThreeSides<M.Value>>()
    defer { table.release() }
    // About one pair per reference line: room for them all up front.
    let lines = BatchLayer.countLines(reference)
    table.reserve(lines + lines / 8)
    var decoded: [UInt8] = []
    /// Adds `v` to side `side` (0 lambda, 1 kappa, 2 reference) of `composite`'s entry.
    @inline(__always) func fold(_ composite: UnsafeRawBufferPointer, hash: UInt64, _ v: M.Value, _ side: Int) {
        @inline(__always) func add(to sides: inout ThreeSides<M.Value>) {
            switch side {
            case 0: monoid.combine(into: &sides.lambda, v)
            case 1: monoid.combine(into: &sides.kappa, v)
            default: monoid.combine(into: &sides.reference, v)
            }
            sides.present |= 1 << UInt8(side)
        }
        table.upsert(composite, hash: hash, create: {
            var sides = blank
            add(to: &sides)
            return sides
        }, update: { add(to: &$0) })
    }
    func addLines(_ file: [UInt8], _ side: Int) throws {
        for line in file.split(separator: 0x0A) where !line.isEmpty {
            guard Hex.decode(line, into: &decoded) else { throw CorruptDataError("a batch view line is not hex") }
            try decoded.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let length = try r.readVarint()
                guard length <= UInt64(r.remaining) else { throw CorruptDataError("a batch view line's key exceeds the line") }
                let composite = try r.readSlice(count: Int(length) + 8)
                let v = try M.Value.decode(from: &r)
                guard r.isAtEnd else { throw CorruptDataError("trailing bytes in a batch view line") }
                fold(composite, hash: StableHasher.hash(bytes: composite), v, side)
            }
        }
    }
    try addLines(reference, 2)
    if let kappa { try addLines(kappa, 1) }
    if let batch { try addLines(batch, 0) }
    if let speed {
        ByteKeyTable<M.Value>.bytes(speed, combine: monoid.combine).table.forEach { composite, hash, v in fold(composite, hash: hash, v, 0) }
    }
    typealias Table = TypedTable<Pair<Bytes, Int64>, M.Value>
    let lambdaDiffering = Table(), kappaDiffering = Table(), referenceDiffering = Table()
    var differing = 0
    table.forEach { composite, _, sides in
        guard sides.lambda != sides.reference || (kappa != nil && sides.kappa != sides.reference) else { return }
        differing += 1
        let k = Pair(Bytes(UnsafeRawBufferPointer(rebasing: composite.dropLast(8))), WindowKeyBuffer.start(composite))
        if sides.present & 1 != 0 { lambdaDiffering.entries[k] = sides.lambda }
        if sides.present & 4 != 0 { referenceDiffering.entries[k] = sides.reference }
        if kappa == nil {
            if sides.present & 4 != 0 { kappaDiffering.entries[k] = sides.reference }
        } else if sides.present & 2 != 0 {
            kappaDiffering.entries[k] = sides.kappa
        }
    }
    return PartComparison(compared: table.count, differing: differing, lambda: lambdaDiffering, kappa: kappaDiffering,
                          reference: referenceDiffering)
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
