import Sluice
/// Event-time windows an aggregation groups events into (times in milliseconds).
public enum Window: Sendable, Equatable, CustomStringConvertible {
    /// No windows: one aggregate per key.
    case none
    /// Back-to-back windows of `size`: `[k·size, (k+1)·size)`.
    case tumbling(size: Int64)
    /// Windows of `size` starting every `slide`: an event is in `size / slide` of them.
    case sliding(size: Int64, slide: Int64)
    /// Per key, runs of events with gaps below `gap` between consecutive event times.
    case session(gap: Int64)

    /// Calls `body` with the start of every window holding an event at time `t` (0 when the
    /// window is not fixed: `none` and `session`).
    @inlinable public func forEachStart(_ t: Int64, _ body: (Int64) throws -> Void) rethrows {
        switch self {
        case .none, .session:
            try body(0)
        case .tumbling(let size):
            try body(floorDiv(t, size) * size)
        case .sliding(let size, let slide):
            var start = floorDiv(t, slide) * slide
            while start > t - size {
                try body(start)
                start -= slide
            }
        }
    }

    /// The window column for a fixed window starting at `start`.
    @usableFromInline func text(start: Int64) -> String {
        switch self {
        case .none, .session: return ""
        case .tumbling: return EventTime.iso(start)
        case .sliding(let size, _): return EventTime.iso(start) + ".." + EventTime.iso(start + size)
        }
    }

    /// `text(start:)`, written into `w`.
    @usableFromInline func writeText(start: Int64, to w: inout ByteWriter) {
        switch self {
        case .none, .session: return
        case .tumbling: EventTime.writeISO(start, to: &w)
        case .sliding(let size, _):
            EventTime.writeISO(start, to: &w)
            w.write(0x2E); w.write(0x2E)
            EventTime.writeISO(start + size, to: &w)
        }
    }

    /// The window's end for a fixed window starting at `start`.
    func end(start: Int64) -> Int64? {
        switch self {
        case .none, .session: return nil
        case .tumbling(let size), .sliding(let size, _): return start + size
        }
    }

    public var description: String {
        switch self {
        case .none: return "no windows"
        case .tumbling(let size): return "tumbling \(EventTime.describeDuration(size)) windows"
        case .sliding(let size, let slide):
            return "sliding \(EventTime.describeDuration(size)) windows every \(EventTime.describeDuration(slide))"
        case .session(let gap): return "session windows (gap \(EventTime.describeDuration(gap)))"
        }
    }
}

/// An aggregation written once and run by every layer — the batch layer on the engine, the
/// speed layer, kappa and the reference: a key function (nil skips the event), a value
/// function, a monoid that combines values, and optional event-time windows.
///
/// ```swift
/// Aggregation(key: { e in e.bytes(keyColumn) }, value: { _ in 1 }, monoid: Count(),
///             window: .tumbling(size: EventTime.minute))
/// ```
public struct Aggregation<Key: ShuffleKey & Comparable & TextRepresentable & Sendable, M: Monoid> {
    public var key: (LogEvent) throws -> Key?
    /// The key as bytes borrowed from the event, when it was given so: the layers then fold
    /// events into byte-key tables with no allocation per event (`Key` is `Bytes`).
    public var keyBytes: ((LogEvent) throws -> ByteView?)?
    public var value: (LogEvent) throws -> M.Value
    public var monoid: M
    public var window: Window

    public init(key: @escaping (LogEvent) throws -> Key?, value: @escaping (LogEvent) throws -> M.Value, monoid: M,
                window: Window = .none) {
        self.key = key
        self.value = value
        self.monoid = monoid
        self.window = window
    }
}

extension Aggregation where Key == Bytes {
    /// An aggregation keyed by bytes of the event, borrowed (`{ $0.field(keyColumn) }`): the
    /// fastest form — with a plain value (`Int`, `Pair` of integers, `MeanValue`), every layer
    /// folds an event without allocating.
    public init(key: @escaping (LogEvent) throws -> ByteView?, value: @escaping (LogEvent) throws -> M.Value, monoid: M,
                window: Window = .none) {
        self.init(key: { e in try key(e).map { Bytes($0.raw) } }, value: value, monoid: monoid, window: window)
        keyBytes = key
    }
}

/// Prepares a log for a stream job: reads raw inputs and returns the schema and the events
/// in the order they are to be appended (`sluice log append --feed JOB`).
public struct EventFeed: Sendable {
    public let summary: String
    /// Inputs used when none are given, relative to the working folder.
    public let defaultInputs: [String]
    public let read: @Sendable (_ inputs: [String]) throws -> (schema: LogSchema, events: [EncodedEvent])

    public init(summary: String, defaultInputs: [String] = [],
                read: @escaping @Sendable ([String]) throws -> (schema: LogSchema, events: [EncodedEvent])) {
        self.summary = summary
        self.defaultInputs = defaultInputs
        self.read = read
    }
}

/// A stream job: a name and an aggregation over an event log. The same code serves the
/// lambda layers, kappa and `sluice compare`; `batchJob` is the engine job the batch layer
/// runs (register it with the other jobs so that workers find it).
public struct StreamJob: Sendable {
    public let name: String
    public let summary: String
    /// The allowed lateness used when none is given (milliseconds).
    public let allowedLateness: Int64
    /// How `sluice log append --feed NAME` prepares the job's log, if it has a feed.
    public let feed: EventFeed?
    /// Hidden jobs (test fixtures) are listed only by `sluice lambda jobs --all`.
    public let hidden: Bool
    @usableFromInline let make: @Sendable (LogSchema) throws -> any StreamProgram

    /// Defines a stream job; `aggregation` is called with the log's schema (resolve column
    /// names there, once) in every process that runs the job.
    @inlinable public init<K, M>(_ name: String, summary: String, allowedLateness: Int64 = 0, feed: EventFeed? = nil,
                                 hidden: Bool = false,
                                 aggregation: @escaping @Sendable (LogSchema) throws -> Aggregation<K, M>) {
        self.init(name: name, summary: summary, allowedLateness: allowedLateness, feed: feed, hidden: hidden,
                  make: { schema in makeStreamProgram(try aggregation(schema)) })
    }

    /// Defines a stream job whose key is bytes and whose aggregate is a plain value: when the
    /// aggregation gives its key as borrowed bytes, its layers run on byte-key tables.
    @inlinable public init<M: Monoid>(_ name: String, summary: String, allowedLateness: Int64 = 0, feed: EventFeed? = nil,
                                      hidden: Bool = false,
                                      aggregation: @escaping @Sendable (LogSchema) throws -> Aggregation<Bytes, M>)
    where M.Value: BitwiseCopyable {
        self.init(name: name, summary: summary, allowedLateness: allowedLateness, feed: feed, hidden: hidden,
                  make: { schema in makeByteKeyProgram(try aggregation(schema)) })
    }

    @usableFromInline init(name: String, summary: String, allowedLateness: Int64, feed: EventFeed?, hidden: Bool,
                           make: @escaping @Sendable (LogSchema) throws -> any StreamProgram) {
        self.name = name
        self.summary = summary
        self.allowedLateness = allowedLateness
        self.feed = feed
        self.hidden = hidden
        self.make = make
    }

    /// The compiled aggregation for `log`. Its monoid must be declared commutative: the batch
    /// layer's shuffle merges partial aggregates in no fixed order.
    func program(log: EventLog) throws -> any StreamProgram {
        let p = try make(log.schema)
        guard p.isCommutative else {
            throw JobError.invalid("stream job \(name): the monoid \(p.monoidName) is not commutative, but the batch layer merges partial aggregates in any order")
        }
        return p
    }

    /// What the job computes on a log with `schema`: monoid, windows and output columns.
    public func aggregationDescription(schema: LogSchema) throws -> String {
        let p = try make(schema)
        return "\(p.monoidName) per key, \(p.window); view columns: key, window, \(p.columns.joined(separator: ", "))"
    }

    /// The name of the stream job's engine job.
    public var engineJobName: String { "stream:" + name }

    /// The engine job behind kappa and the batch layer: the aggregation over an offset range
    /// of a log, folded on the map side, shuffled by key and merged on the workers. Parameters:
    /// `log`, `from`, `to`, `partitions` (source tasks), `exact`, `lateness` (`none`, or the
    /// allowed lateness in ms: kappa's watermark), `late` (the folder for late events) and
    /// `format` (`view`: sorted rows; `batch`: a batch view's hex records).
    public var engineJob: Job {
        let make = self.make
        return Job(engineJobName, summary: "Kappa and batch layer of the stream job \(name): \(summary)",
                   parameters: [JobParameter("log", help: "the event log folder"),
                                JobParameter("from", help: "first offset", default: "0"),
                                JobParameter("to", help: "exclusive end offset (the cut)"),
                                JobParameter("partitions", help: "source tasks (offset ranges)", default: "2"),
                                JobParameter("exact", help: "1: run the exact variant of an approximate monoid", default: "0"),
                                JobParameter("lateness", help: "allowed lateness in ms, or none (no watermark)", default: "none"),
                                JobParameter("late", help: "folder for the late events' side files", default: ""),
                                JobParameter("format", help: "view (sorted rows) or batch (a batch view)", default: "batch")],
                   hidden: true) { ctx in
            let path = try ctx.parameter("log")
            let log = try EventLog(path: path)
            let from = Int64(try ctx.intParameter("from")), to = Int64(try ctx.intParameter("to"))
            guard from >= 0, from <= to else { throw JobError.badParameter("bad offset range [\(from), \(to))") }
            let lateness = try ctx.parameter("lateness")
            guard let format = ReplayRequest.Format(rawValue: try ctx.parameter("format")) else {
                throw JobError.badParameter("format must be view or batch")
            }
            let late = try ctx.parameter("late")
            try make(log.schema).buildReplay(ctx, ReplayRequest(
                log: path, offsets: from..<to, partitions: max(1, try ctx.intParameter("partitions")),
                exact: try ctx.parameter("exact") == "1",
                lateness: lateness == "none" ? nil : Int64(try ctx.intParameter("lateness", atLeast: 0)),
                lateFolder: late.isEmpty ? nil : late, output: try ctx.output, format: format))
        }
    }
}

/// One line of a view for people: the key, its window and the value's columns.
public struct ViewRow: Sendable, Equatable, Codable {
    public var key: String
    /// The window (`2013-01-01T10:00:00Z`, `start..end`), empty without windows.
    public var window: String
    /// The monoid's rendering: tab-separated columns.
    public var value: String

    public init(key: String, window: String, value: String) {
        self.key = key
        self.window = window
        self.value = value
    }
}

/// The aggregates of one view (a batch view, the speed layer's state for one batch, kappa's
/// view), type-erased so that the layers' drivers need not be generic.
@usableFromInline class AggregateTable {
    @usableFromInline init() {}
    var count: Int { 0 }
    /// The table as a `TypedTable` (a byte-key table converts itself; per key, not per event).
    @usableFromInline func typedForm() -> AggregateTable { self }
    /// Writes the table in `TypedTable`'s encoding straight from its own entries, when it
    /// keeps them in another form (a byte-key table: a checkpoint then needs no conversion).
    func encodeDirectly(to writer: inout ByteWriter) -> Bool { false }
}

/// The aggregates keyed by (key, window start).
@usableFromInline final class TypedTable<K: Hashable, V>: AggregateTable {
    @usableFromInline var entries: [K: V] = [:]
    @usableFromInline override init() {}
    override var count: Int { entries.count }
}

/// A compiled aggregation, type-erased: what the layers need from it. Per-event work runs in
/// loops specialised where the job was defined (`buildReplay`'s tasks, `speedRead`): no
/// existential call per event; the other methods run per key or per table.
@usableFromInline protocol StreamProgram: AnyObject {
    var monoidName: String { get }
    var columns: [String] { get }
    var window: Window { get }
    /// Nil for an exact monoid.
    var relativeError: Double? { get }
    var isCommutative: Bool { get }
    func makeTable() -> AggregateTable
    /// A table of event counts per (key, window), for `foldCounting`.
    func makeCountTable() -> AggregateTable
    /// Adds one event's contribution and counts it per (key, window) in `counts`.
    func foldCounting(_ event: LogEvent, into table: AggregateTable, counts: AggregateTable) throws
    func merge(_ source: AggregateTable, into target: AggregateTable)
    /// The entries of `tables`, merged and split by the reduce partition the engine job's
    /// shuffle sends each key to: one table per partition.
    func split(_ tables: [AggregateTable], partitions: Int) -> [AggregateTable]
    func encode(_ table: AggregateTable, to writer: inout ByteWriter)
    func decodeTable(from reader: inout ByteReader) throws -> AggregateTable
    /// Adds a batch-view file's lines (hex of key, window start and value) to `table`.
    func addViewLines(_ file: [UInt8], to table: AggregateTable) throws
    /// The rows of a table for people, sorted by key and window.
    func rows(_ table: AggregateTable) -> [ViewRow]
    /// Builds the engine job's graph (kappa or the batch layer).
    func buildReplay(_ ctx: JobContext, _ request: ReplayRequest) throws
    /// The speed layer's per-event loop: reads up to `limit` events before `end` into the
    /// batches' tables; the number read.
    func speedRead(_ cursor: LogCursor, limit: Int, end: Int64, _ state: SpeedRead) throws -> Int
    /// Compares the tables key by key and names the cause of each difference: the number of
    /// (key, window) pairs compared, and the differences.
    func compare(_ input: ComparisonInput) -> (compared: Int, differences: [KeyComparison])
    /// Whether `comparePart` works: a byte-key aggregation with an exact monoid.
    var comparesPartsAsBytes: Bool { get }
    /// One part of a comparison — lambda (the batch view's lines merged with `speed`), kappa
    /// and the reference — without typed tables for the pairs that agree: the pairs compared
    /// and the entries of those that differ, for `compare` to explain (only where
    /// `comparesPartsAsBytes`). `kappaLines` nil: kappa's view is the reference's.
    func comparePart(batchLines: [UInt8]?, speed: AggregateTable?, kappaLines: [UInt8]?, referenceLines: [UInt8]) throws -> PartComparison
}

/// One comparison part done in one byte-key table (`StreamProgram.comparePart`): the pairs
/// compared, and lambda's, kappa's and the reference's entries for the pairs that differ.
@usableFromInline struct PartComparison {
    @usableFromInline var compared: Int
    @usableFromInline var differing: Int
    @usableFromInline var lambda: AggregateTable
    @usableFromInline var kappa: AggregateTable
    @usableFromInline var reference: AggregateTable

    @inlinable init(compared: Int, differing: Int, lambda: AggregateTable, kappa: AggregateTable, reference: AggregateTable) {
        self.compared = compared
        self.differing = differing
        self.lambda = lambda
        self.kappa = kappa
        self.reference = reference
    }
}

/// What an aggregation does its own, faster way (see `makeByteKeyProgram`); nil: the typed way.
@usableFromInline struct FastPaths<K> {
    @usableFromInline var replay: ((JobContext, ReplayRequest) throws -> Void)?
    @usableFromInline var speedRead: ((LogCursor, Int, Int64, SpeedRead) throws -> Int)?
    @usableFromInline var partitionOf: ((K, Int) -> Int)?
    @usableFromInline var decode: ((inout ByteReader) throws -> AggregateTable)?
    @usableFromInline var split: (([AggregateTable], Int) -> [AggregateTable])?
    @usableFromInline var comparePart: (([UInt8]?, AggregateTable?, [UInt8]?, [UInt8]) throws -> PartComparison)?

    @inlinable init() {}
}

/// Compiles an aggregation. Inlined into the job's module, so that the closures it builds —
/// the per-event paths of every layer — are specialised for the job's key and monoid.
@inlinable func makeStreamProgram<K, M>(_ a: Aggregation<K, M>) -> any StreamProgram {
    let window = a.window
    if case .session(let gap) = window {
        let inner = a.monoid
        let value = a.value
        let sessions = Sessions(inner, gap: gap)
        return makeTypedProgram(key: a.key, value: { e in [SessionSpan(start: e.time, end: e.time, value: try value(e))] },
                                monoid: sessions, window: window, assign: .none) { key, spans in
            spans.map { ViewRow(key: key, window: EventTime.iso($0.start) + ".." + EventTime.iso($0.end + gap),
                                value: inner.render($0.value)) }
        }
    }
    let monoid = a.monoid
    return makeTypedProgram(key: a.key, value: a.value, monoid: monoid, window: window, assign: window) { key, v in
        [ViewRow(key: key, window: "", value: monoid.render(v))]
    }
}

@inlinable func makeTypedProgram<K: ShuffleKey & Comparable & TextRepresentable & Sendable, M: Monoid>(
    key: @escaping (LogEvent) throws -> K?, value: @escaping (LogEvent) throws -> M.Value, monoid: M,
    window: Window, assign: Window, rows: @escaping (String, M.Value) -> [ViewRow],
    fast: FastPaths<K> = FastPaths()
) -> any StreamProgram {
    typealias VK = Pair<K, Int64>
    let explode: (LogEvent, (VK, M.Value) throws -> Void) throws -> Void = { e, emit in
        guard let k = try key(e) else { return }
        let v = try value(e)
        try assign.forEachStart(e.time) { try emit(Pair(k, $0), v) }
    }
    let identity = monoid.identity
    let accumulate: (LogEvent, TypedTable<VK, M.Value>) throws -> Bool = { e, table in
        guard let k = try key(e) else { return false }
        let v = try value(e)
        switch assign {
        case .none, .session:
            monoid.combine(into: &table.entries[Pair(k, 0), default: identity], v)
        case .tumbling(let size):
            monoid.combine(into: &table.entries[Pair(k, floorDiv(e.time, size) * size), default: identity], v)
        case .sliding:
            assign.forEachStart(e.time) { monoid.combine(into: &table.entries[Pair(k, $0), default: identity], v) }
        }
        return true
    }
    let keyText: (K) -> String = TypedProgram<K, M>.text
    let replay: (JobContext, ReplayRequest) throws -> Void = { ctx, request in
        let m = request.exact ? monoid.exact : monoid
        let folded: Dataset<(WindowKey<K>, M.Value)> = ctx.eventLog(request.log, offsets: request.offsets, partitions: request.partitions)
            .mapPartitions(setup: { try ReplayTask(request, partition: $0) }, process: { task, e, emit in
                if task.isLate(e.time) { return task.noteLate(e, key: try key(e).map(keyText)) }
                try explode(e) { vk, v in try emit((WindowKey(vk.first, vk.second), v)) }
            }, finish: { task, _ in try task.finish() })
        // Not split when skewed: a reduce partition must hold whole keys (`partitionOf`).
        let reduced = folded.reduceByKey(skew: .off) { m.combine($0, $1) }
        switch request.format {
        case .batch:
            reduced.write(to: request.output) { kv, w in
                var record = ByteWriter(capacity: 64)
                kv.0.encode(to: &record)
                kv.1.encode(to: &record)
                Hex.encode(record.bytes, into: &w)
            }
        case .view:
            // Sorted per partition; a partition holds whole keys, so the parts merge by key.
            reduced.mapPartitions(setup: { _ in [(WindowKey<K>, M.Value)]() }, process: { all, kv, _ in all.append(kv) },
                                  finish: { all, emit in
                                      all.sort { $0.0 < $1.0 }
                                      for (k, v) in all {
                                          for row in rows(keyText(k.key), v) {
                                              try emit(ViewRow(key: row.key, window: row.window.isEmpty ? window.text(start: k.start) : row.window,
                                                               value: row.value))
                                          }
                                      }
                                  })
                .write(to: request.output) { row, w in w.write(contentsOf: "\(row.key)\t\(row.window)\t\(row.value)".utf8) }
        }
    }
    let speedRead: (LogCursor, Int, Int64, SpeedRead) throws -> Int = { cursor, limit, end, state in
        // The batch an event falls in is open (its table set): the log is read forward.
        try speedLoop(cursor, limit: limit, end: end, state, table: { TableOps<K, M>.target($0.table!) },
                      fold: { e, t in _ = try accumulate(e, t) }, keyText: { try key($0).map(keyText) })
    }
    var ops = TableOps(monoid: monoid, window: window, partitionOf: fast.partitionOf ?? { k, n in hashPartition(WindowKey(k, 0), n) },
                       rowsOf: rows)
    if let decode = fast.decode { ops.decode = decode }
    return TypedProgram(monoid: monoid, window: window, key: key, explode: explode,
                        replay: fast.replay ?? replay, speedRead: fast.speedRead ?? speedRead, ops: ops, rows: rows,
                        split: fast.split, comparePart: fast.comparePart)
}

/// The per-key work on whole tables — reading a batch view's lines, merging a table's share of
/// one reduce partition, finding the (key, window) pairs that differ — as closures made where
/// the job is defined, so that their dictionary work is specialised for its key and value.
/// (`splitInto` adds a table's entries to the table of their reduce partition.)
@usableFromInline struct TableOps<K: ShuffleKey & Comparable & TextRepresentable & Sendable, M: Monoid> {
    @usableFromInline typealias VK = Pair<K, Int64>
    @usableFromInline typealias Table = TypedTable<VK, M.Value>
    @usableFromInline typealias Counts = TypedTable<VK, Int>
    @usableFromInline var addLines: ([UInt8], AggregateTable) throws -> Void
    @usableFromInline var splitInto: (AggregateTable, [AggregateTable]) -> Void
    @usableFromInline var scan: (TypedProgram<K, M>, ComparisonInput) -> (compared: Int, differences: [KeyComparison])
    @usableFromInline var sortedRows: (AggregateTable) -> [ViewRow]
    @usableFromInline var encode: (AggregateTable, inout ByteWriter) -> Void
    @usableFromInline var decode: (inout ByteReader) throws -> AggregateTable

    // The three casts of the stream layer's tables. Every table a program handles was made by
    // that program (`makeTable`, `makeCountTable`, `decode`, or a byte-key table of the same
    // types), so they cannot fail; a table of another program would be an engine bug.

    /// `table` as this aggregation's typed table (a byte-key table converted, a copy).
    @inlinable static func typed(_ table: AggregateTable) -> Table { table.typedForm() as! Table }

    /// `table`, a typed table made by this program, to be added to in place.
    @inlinable static func target(_ table: AggregateTable) -> Table { table as! Table }

    /// `table`, a count table made by this program (`makeCountTable`).
    @inlinable static func counts(_ table: AggregateTable) -> Counts { table as! Counts }

    @inlinable init(monoid: M, window: Window, partitionOf: @escaping (K, Int) -> Int, rowsOf: @escaping (String, M.Value) -> [ViewRow]) {
        encode = { table, writer in
            let t = Self.typed(table)
            writer.writeVarint(UInt64(t.entries.count))
            for (k, v) in t.entries {
                k.encode(to: &writer)
                v.encode(to: &writer)
            }
        }
        decode = { reader in
            let t = Table()
            let n = try reader.readVarint()
            guard n <= UInt64(reader.remaining) else { throw CorruptDataError("table of \(n) entries exceeds the data") }
            t.entries.reserveCapacity(Int(n))
            for _ in 0..<n {
                let k = try VK.decode(from: &reader)
                t.entries[k] = try M.Value.decode(from: &reader)
            }
            return t
        }
        sortedRows = { table in
            let entries = Array(Self.typed(table).entries)
            // Sorted through a word of each key's first bytes where the key has one (`Bytes`:
            // most comparisons then touch no key), falling back to the keys' own order.
            var order = entries.indices.map { i in
                let (prefix, count) = sortPrefix(entries[i].key.first)
                return (prefix: prefix, count: count, start: entries[i].key.second, index: i)
            }
            order.sort { a, b in
                if a.prefix != b.prefix { return a.prefix < b.prefix }
                if a.count <= 8 && b.count <= 8 { return (a.count, a.start) < (b.count, b.start) }
                return entries[a.index].key < entries[b.index].key
            }
            var windows: [Int64: String] = [:]
            var rows: [ViewRow] = []
            rows.reserveCapacity(entries.count)
            for (_, _, _, i) in order {
                let (k, v) = entries[i]
                for var row in rowsOf(TypedProgram<K, M>.text(k.first), v) {
                    if row.window.isEmpty {
                        if let text = windows[k.second] {
                            row.window = text
                        } else {
                            row.window = window.text(start: k.second)
                            windows[k.second] = row.window
                        }
                    }
                    rows.append(row)
                }
            }
            return rows
        }
        addLines = { file, table in
            var bytes: [UInt8] = []
            let t = Self.typed(table)
            let lines = file.split(separator: 0x0A)
            t.entries.reserveCapacity(t.entries.count + lines.count)
            for line in lines where !line.isEmpty {
                guard Hex.decode(line, into: &bytes) else { throw CorruptDataError("a batch view line is not hex") }
                try bytes.withUnsafeBytes { raw in
                    var r = ByteReader(raw)
                    let k = try VK.decode(from: &r)
                    let v = try M.Value.decode(from: &r)
                    guard r.isAtEnd else { throw CorruptDataError("trailing bytes in a batch view line") }
                    // Stored as read (not combined with the identity): the exact reference's
                    // values must keep the exact variant's form.
                    if let existing = t.entries.updateValue(v, forKey: k) { t.entries[k] = monoid.combine(existing, v) }
                }
            }
        }
        splitInto = { source, parts in
            let targets = parts.map(Self.target)
            let entries = Self.typed(source).entries
            if targets.count == 1 { targets[0].entries.reserveCapacity(targets[0].entries.count + entries.count) }
            for (k, v) in entries {
                let t = targets[targets.count == 1 ? 0 : partitionOf(k.first, targets.count)]
                monoid.combine(into: &t.entries[k, default: monoid.identity], v)
            }
        }
        scan = { program, input in
            let lambda = Self.typed(input.lambda), kappa = Self.typed(input.kappa)
            let reference = Self.typed(input.reference), same = Self.typed(input.referenceSame)
            let identity = monoid.identity
            var compared = 0
            var differences: [KeyComparison] = []
            // One pass over the reference finds every key it shares with lambda and kappa; the
            // keys only they (or the monoid's own reference) hold are looked for only when some are.
            var inLambda = 0, inKappa = 0, inSame = 0
            for (k, r) in reference.entries {
                compared += 1
                let l = lambda.entries[k], kv = kappa.entries[k]
                if l != nil { inLambda += 1 }
                if kv != nil { inKappa += 1 }
                if same !== reference && same.entries[k] != nil { inSame += 1 }
                if (l ?? identity) == r && (kv ?? identity) == r { continue }
                differences.append(program.compareKey(k, input))
            }
            func visit(_ k: VK) {
                compared += 1
                if (lambda.entries[k] ?? identity) == identity && (kappa.entries[k] ?? identity) == identity { return }
                differences.append(program.compareKey(k, input))
            }
            if inLambda < lambda.entries.count {
                for k in lambda.entries.keys where reference.entries[k] == nil { visit(k) }
            }
            if inKappa < kappa.entries.count {
                for k in kappa.entries.keys where reference.entries[k] == nil && lambda.entries[k] == nil { visit(k) }
            }
            if same !== reference && inSame < same.entries.count {
                for k in same.entries.keys where reference.entries[k] == nil && lambda.entries[k] == nil && kappa.entries[k] == nil {
                    visit(k)
                }
            }
            return (compared, differences)
        }
    }
}

/// A word whose order agrees with the keys' order where it differs — a `Bytes` key's first 8
/// bytes, big-endian — and the key's length (keys of up to 8 bytes with equal words differ
/// only in length). For other keys, (0, `Int.max`): their own `<` decides.
@inlinable func sortPrefix<K>(_ key: K) -> (UInt64, Int) {
    guard let bytes = key as? Bytes else { return (0, .max) }
    return (bytes.storage.withUnsafeBytes { keyPrefixWord($0) }, bytes.count)
}

/// The compiled aggregation for key type `K` and monoid `M`; tables map (key, window start)
/// to the monoid's value. Only the closures run per event; the methods run per key.
@usableFromInline final class TypedProgram<K: ShuffleKey & Comparable & TextRepresentable & Sendable, M: Monoid>: StreamProgram {
    @usableFromInline typealias VK = Pair<K, Int64>
    @usableFromInline typealias Table = TypedTable<VK, M.Value>

    let monoid: M
    @usableFromInline let window: Window
    let key: (LogEvent) throws -> K?
    let explode: (LogEvent, (VK, M.Value) throws -> Void) throws -> Void
    let replay: (JobContext, ReplayRequest) throws -> Void
    let speedReader: (LogCursor, Int, Int64, SpeedRead) throws -> Int
    /// Per-key work on whole tables, specialised where the job was defined (see `TableOps`).
    let addLines: ([UInt8], AggregateTable) throws -> Void
    let splitInto: (AggregateTable, [AggregateTable]) -> Void
    let sortedRows: (AggregateTable) -> [ViewRow]
    let encodeTyped: (AggregateTable, inout ByteWriter) -> Void
    let decode: (inout ByteReader) throws -> AggregateTable
    let scan: (TypedProgram, ComparisonInput) -> (compared: Int, differences: [KeyComparison])
    let rowsOf: (String, M.Value) -> [ViewRow]
    let fastSplit: (([AggregateTable], Int) -> [AggregateTable])?
    let quickCompare: (([UInt8]?, AggregateTable?, [UInt8]?, [UInt8]) throws -> PartComparison)?

    @usableFromInline init(monoid: M, window: Window, key: @escaping (LogEvent) throws -> K?,
                           explode: @escaping (LogEvent, (VK, M.Value) throws -> Void) throws -> Void,
                           replay: @escaping (JobContext, ReplayRequest) throws -> Void,
                           speedRead: @escaping (LogCursor, Int, Int64, SpeedRead) throws -> Int,
                           ops: TableOps<K, M>,
                           rows: @escaping (String, M.Value) -> [ViewRow],
                           split: (([AggregateTable], Int) -> [AggregateTable])?,
                           comparePart: (([UInt8]?, AggregateTable?, [UInt8]?, [UInt8]) throws -> PartComparison)?) {
        self.monoid = monoid
        self.window = window
        self.key = key
        self.explode = explode
        self.replay = replay
        speedReader = speedRead
        addLines = ops.addLines
        splitInto = ops.splitInto
        sortedRows = ops.sortedRows
        encodeTyped = ops.encode
        decode = ops.decode
        scan = ops.scan
        rowsOf = rows
        fastSplit = split
        quickCompare = comparePart
    }

    @usableFromInline var monoidName: String { monoid.name }
    @usableFromInline var columns: [String] { monoid.columns }
    @usableFromInline var relativeError: Double? { monoid.relativeError }
    @usableFromInline var isCommutative: Bool { monoid.isCommutative }

    @usableFromInline func makeTable() -> AggregateTable { Table() }

    @usableFromInline func makeCountTable() -> AggregateTable { TypedTable<VK, Int>() }

    @usableFromInline func foldCounting(_ event: LogEvent, into table: AggregateTable, counts: AggregateTable) throws {
        let t = Self.typed(table)
        let c = TableOps<K, M>.counts(counts)
        let m = monoid
        try explode(event) { vk, v in
            m.combine(into: &t.entries[vk, default: m.identity], v)
            c.entries[vk, default: 0] += 1
        }
    }

    @usableFromInline static func text(_ k: K) -> String {
        var w = ByteWriter(capacity: 32)
        k.writeText(to: &w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    @usableFromInline func merge(_ source: AggregateTable, into target: AggregateTable) { splitInto(source, [target]) }

    @usableFromInline func split(_ tables: [AggregateTable], partitions: Int) -> [AggregateTable] {
        if let fastSplit { return fastSplit(tables, partitions) }
        let parts = (0..<partitions).map { _ in Table() }
        for t in tables { splitInto(t, parts) }
        return parts
    }

    @usableFromInline func encode(_ table: AggregateTable, to writer: inout ByteWriter) {
        if table.encodeDirectly(to: &writer) { return }
        encodeTyped(table, &writer)
    }

    @usableFromInline func decodeTable(from reader: inout ByteReader) throws -> AggregateTable { try decode(&reader) }

    @usableFromInline func addViewLines(_ file: [UInt8], to table: AggregateTable) throws { try addLines(file, table) }

    /// The rows of one entry.
    func rows(_ k: VK, _ v: M.Value) -> [ViewRow] {
        rowsOf(Self.text(k.first), v).map { row in
            var row = row
            if row.window.isEmpty { row.window = window.text(start: k.second) }
            return row
        }
    }

    @usableFromInline func rows(_ table: AggregateTable) -> [ViewRow] { sortedRows(table) }

    @usableFromInline func buildReplay(_ ctx: JobContext, _ request: ReplayRequest) throws { try replay(ctx, request) }

    @usableFromInline func speedRead(_ cursor: LogCursor, limit: Int, end: Int64, _ state: SpeedRead) throws -> Int {
        try speedReader(cursor, limit, end, state)
    }

    /// `table` as this program's `TypedTable`.
    static func typed(_ table: AggregateTable) -> Table { TableOps<K, M>.typed(table) }

    @usableFromInline func compare(_ input: ComparisonInput) -> (compared: Int, differences: [KeyComparison]) { scan(self, input) }

    @usableFromInline var comparesPartsAsBytes: Bool { quickCompare != nil }

    @usableFromInline func comparePart(batchLines: [UInt8]?, speed: AggregateTable?, kappaLines: [UInt8]?,
                                       referenceLines: [UInt8]) throws -> PartComparison {
        guard let quickCompare else { throw LambdaError("\(monoid.name): this aggregation has no byte-key comparison") }
        return try quickCompare(batchLines, speed, kappaLines, referenceLines)
    }

    /// Judges one (key, window) that differs somewhere and describes it for people (not per
    /// key: `scan`, specialised for the job, finds the few that differ).
    @usableFromInline func compareKey(_ k: VK, _ input: ComparisonInput) -> KeyComparison {
        let lambda = Self.typed(input.lambda), kappa = Self.typed(input.kappa)
        let reference = Self.typed(input.reference), referenceSame = Self.typed(input.referenceSame)
        let identity = monoid.identity
        let exact = monoid.exact

        func describe(_ k: VK, _ v: M.Value?) -> String {
            guard let v else { return "(none)" }
            let shown = rows(k, v)
            if shown.isEmpty { return "(none)" }
            guard case .session = window else { return shown.map(\.value).joined(separator: "; ") }
            return shown.map { "\($0.window) \($0.value)" }.joined(separator: "; ")
        }

        func judge(_ side: M.Value?, _ k: VK, _ explanations: [Explanation]) -> Cause? {
            let s = side ?? identity
            let r = reference.entries[k] ?? identity
            if s == r { return nil }
            let same = referenceSame.entries[k] ?? identity
            if let bound = monoid.relativeError, s == same {
                let estimate = monoid.estimate(s) ?? 0
                let truth = exact.estimate(r) ?? 0
                let error = truth == 0 ? abs(estimate) : abs(estimate - truth) / truth
                return Cause(kind: .approximate, events: 0, withinBound: error <= bound,
                             detail: String(format: "estimate %.0f, exact %.0f: error %.2f%% (bound %.2f%%)",
                                            estimate, truth, 100 * error, 100 * bound))
            }
            var found: [(Explanation, Int)] = []
            var combined = s
            for e in explanations {
                guard let add = TableOps<K, M>.target(e.values).entries[k] else { continue }
                let n = TableOps<K, M>.counts(e.counts).entries[k] ?? 0
                if e.kind == .duplicate {
                    if s == monoid.combine(same, add) {
                        return Cause(kind: .duplicate, events: n, withinBound: nil, detail: e.detail)
                    }
                    continue
                }
                if monoid.combine(s, add) == same {
                    return Cause(kind: e.kind, events: n, withinBound: nil, detail: e.detail)
                }
                combined = monoid.combine(combined, add)
                found.append((e, n))
            }
            if found.count > 1 && combined == same {
                return Cause(kind: .several, events: found.reduce(0) { $0 + $1.1 }, withinBound: nil,
                             detail: found.map { "\($0.0.kind.rawValue): \($0.1)" }.joined(separator: ", "))
            }
            return Cause(kind: .unknown, events: 0, withinBound: nil, detail: "not explained by the late events, missing ranges or duplicates known")
        }

        let l = lambda.entries[k], kv = kappa.entries[k], r = reference.entries[k]
        return KeyComparison(key: Self.text(k.first), window: window.text(start: k.second),
                             windowStart: window.end(start: k.second) == nil ? nil : k.second,
                             reference: describe(k, r), lambda: describe(k, l), kappa: describe(k, kv),
                             lambdaCause: judge(l, k, input.lambdaExplanations), kappaCause: judge(kv, k, input.kappaExplanations))
    }
}
