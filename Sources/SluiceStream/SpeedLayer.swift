#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Sluice

/// The watermark: the largest event time seen minus the allowed lateness. An event older than
/// the watermark is late: it goes to the side output instead of the aggregates.
@usableFromInline struct Watermark {
    @usableFromInline let allowedLateness: Int64
    /// The largest event time seen (`Int64.min`: none yet).
    @usableFromInline private(set) var maxEventTime: Int64
    /// Events with a time below this are late.
    @usableFromInline private(set) var value: Int64

    init(allowedLateness: Int64, maxEventTime: Int64 = .min) {
        self.allowedLateness = allowedLateness
        self.maxEventTime = .min
        value = .min
        advance(to: maxEventTime)
    }

    /// Whether an event at time `t` is late; then notes `t`.
    @inlinable @inline(__always) mutating func isLate(_ t: Int64) -> Bool {
        if t < value { return true }
        if t > maxEventTime { advance(to: t) }
        return false
    }

    @usableFromInline mutating func advance(to t: Int64) {
        guard t > maxEventTime else { return }
        maxEventTime = t
        let (w, overflow) = t.subtractingReportingOverflow(allowedLateness)
        value = overflow ? .min : w
    }
}

/// One batch's share of the speed layer's state.
@usableFromInline final class SpeedBatch {
    @usableFromInline let id: Int64
    /// Events of the batch read (late ones included).
    @usableFromInline var delivered: Int64 = 0
    /// Of which late.
    @usableFromInline var late: Int64 = 0
    /// The aggregates, while the batch is open (sealed batches live in their own file).
    @usableFromInline var table: AggregateTable?
    var sealed: Bool { table == nil }

    init(id: Int64, table: AggregateTable?) {
        self.id = id
        self.table = table
    }
}

/// What the speed layer's per-event loop reads and updates: the batches, the watermark, the
/// side output. The loop itself (`speedLoop`) is specialised for each job's table and fold.
@usableFromInline final class SpeedRead {
    @usableFromInline var batches: [Int64: SpeedBatch]
    @usableFromInline let batchSize: Int64
    @usableFromInline var watermark: Watermark
    @usableFromInline var lateBuffer = ByteWriter(capacity: 1 << 12)
    @usableFromInline var late = 0
    @usableFromInline var next: Int64
    let makeTable: () -> AggregateTable

    init(batches: [Int64: SpeedBatch], batchSize: Int64, watermark: Watermark, next: Int64, makeTable: @escaping () -> AggregateTable) {
        self.batches = batches
        self.batchSize = batchSize
        self.watermark = watermark
        self.next = next
        self.makeTable = makeTable
    }

    /// The open batch holding `offset` (created when new).
    @usableFromInline func batch(of offset: Int64) -> SpeedBatch {
        let id = offset / batchSize
        if let b = batches[id] { return b }
        let b = SpeedBatch(id: id, table: makeTable())
        batches[id] = b
        return b
    }

    /// Adds a late event's side-output line.
    @usableFromInline func noteLate(_ e: LogEvent, key: String?) {
        late += 1
        lateBuffer.write(contentsOf: "\(e.offset)\t\(e.time)\t\(watermark.value)\t\(sideOutputField(key ?? ""))\n".utf8)
    }
}

/// The speed layer's loop over up to `limit` events before `end`: each event counts in its
/// batch; a late one goes to the side output, any other is folded into the batch's table.
@inlinable func speedLoop<T: AggregateTable>(
    _ cursor: LogCursor, limit: Int, end: Int64, _ s: SpeedRead, table: (SpeedBatch) -> T,
    fold: (LogEvent, T) throws -> Void, keyText: (LogEvent) throws -> String?
) throws -> Int {
    var batch: SpeedBatch?
    var current: T?
    var range: Range<Int64> = 0..<0
    return try cursor.read(limit: limit, end: end) { e in
        if !range.contains(e.offset) {
            let b = s.batch(of: e.offset)
            batch = b
            current = table(b)
            range = b.id * s.batchSize..<(b.id + 1) * s.batchSize
        }
        batch.unsafelyUnwrapped.delivered += 1
        if s.watermark.isLate(e.time) {
            batch.unsafelyUnwrapped.late += 1
            s.noteLate(e, key: try keyText(e))
        } else {
            try fold(e, current.unsafelyUnwrapped)
        }
        s.next = e.offset + 1
    }
}

/// The speed layer's durable state: the manifest `speed/checkpoint` (scalars, per-batch
/// counters, the open batches' aggregates) plus one immutable file per sealed batch. Both are
/// written whole to a temporary file, fsync'd and renamed; the manifest last, so that it only
/// ever names sealed files that are complete.
struct SpeedState {
    var job: String
    var batchSize: Int64
    var allowedLateness: Int64
    /// The first offset the state covers (batches below it are dropped or were never read).
    var start: Int64
    /// The next offset to read: offsets `[start, next)` are in the state.
    var next: Int64
    /// The newest batch view applied (its batches and those below it are dropped).
    var appliedBatch: Int64
    var maxEventTime: Int64
    /// Bytes of `late.tsv` that belong to this state.
    var lateLength: Int64
    var batches: [Int64: SpeedBatch]

    static let magic = Array("SLSPEED1".utf8)
    static let sealedMagic = Array("SLBATCH1".utf8)

    static func manifestPath(_ store: LambdaStore) -> String { store.speedFolder + "/checkpoint" }
    static func sealedPath(_ store: LambdaStore, _ id: Int64) -> String { "\(store.speedFolder)/batch-\(LogFormat.name(id)).state" }
    static func latePath(_ store: LambdaStore) -> String { store.speedSideOutput }

    func encode(program: any StreamProgram) -> [UInt8] {
        var w = ByteWriter(capacity: 1 << 16)
        w.write(contentsOf: SpeedState.magic)
        job.encode(to: &w)
        for v in [batchSize, allowedLateness, start, next, appliedBatch, maxEventTime, lateLength] { w.writeFixed(v) }
        w.writeVarint(UInt64(batches.count))
        for b in batches.values.sorted(by: { $0.id < $1.id }) {
            w.writeFixed(b.id)
            w.writeFixed(b.delivered)
            w.writeFixed(b.late)
            if let table = b.table {
                w.write(0)
                program.encode(table, to: &w)
            } else {
                w.write(1)
            }
        }
        let crc = w.bytes.withUnsafeBytes { BlockFormat.crc($0) }
        w.writeFixed(crc)
        return w.bytes
    }

    /// Checks the trailing CRC-32 and magic; the payload after the magic.
    static func checked(_ bytes: [UInt8], magic: [UInt8], path: String) throws -> ArraySlice<UInt8> {
        guard bytes.count >= magic.count + 4, Array(bytes.prefix(magic.count)) == magic else {
            throw LambdaError("\(path) is not a speed-layer checkpoint")
        }
        let body = bytes[..<(bytes.count - 4)]
        let stored = bytes[(bytes.count - 4)...].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        guard body.withUnsafeBytes({ BlockFormat.crc($0) }) == stored else { throw LambdaError("\(path) fails its checksum") }
        return body.dropFirst(magic.count)
    }

    /// The manifest, or nil when the speed layer has never checkpointed.
    static func load(_ store: LambdaStore, program: any StreamProgram) throws -> SpeedState? {
        let path = manifestPath(store)
        guard let bytes = try Durable.read(path) else { return nil }
        let body = try checked(bytes, magic: magic, path: path)
        return try body.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            var s = SpeedState(job: try String.decode(from: &r), batchSize: try r.readFixed(), allowedLateness: try r.readFixed(),
                               start: try r.readFixed(), next: try r.readFixed(), appliedBatch: try r.readFixed(),
                               maxEventTime: try r.readFixed(), lateLength: try r.readFixed(), batches: [:])
            for _ in 0..<(try r.readVarint()) {
                let id: Int64 = try r.readFixed()
                let delivered: Int64 = try r.readFixed()
                let late: Int64 = try r.readFixed()
                let b = SpeedBatch(id: id, table: try r.readByte() == 0 ? try program.decodeTable(from: &r) : nil)
                b.delivered = delivered
                b.late = late
                s.batches[id] = b
            }
            return s
        }
    }

    /// A sealed batch's aggregates.
    static func loadSealed(_ store: LambdaStore, _ id: Int64, program: any StreamProgram) throws -> AggregateTable {
        let path = sealedPath(store, id)
        guard let bytes = try Durable.read(path) else { throw SealedStateVanished() }
        let body = try checked(bytes, magic: sealedMagic, path: path)
        return try body.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            guard try r.readFixed(Int64.self) == id else { throw LambdaError("\(path) holds another batch") }
            return try program.decodeTable(from: &r)
        }
    }

    static func writeSealed(_ store: LambdaStore, _ id: Int64, _ table: AggregateTable, program: any StreamProgram) throws {
        var w = ByteWriter(capacity: 1 << 16)
        w.write(contentsOf: sealedMagic)
        w.writeFixed(id)
        program.encode(table, to: &w)
        let crc = w.bytes.withUnsafeBytes { BlockFormat.crc($0) }
        w.writeFixed(crc)
        try Durable.writeAtomically(sealedPath(store, id), w.bytes)
    }
}

/// How the speed layer runs.
public struct SpeedOptions: Sendable {
    /// Keep following the log as it grows (until killed); otherwise stop at its end.
    public var follow = false
    /// Checkpoint after this many events …
    public var checkpointEvery = 1_000_000
    /// … or this many seconds, whichever comes first (and whenever it has caught up).
    public var checkpointInterval: Double = 1
    /// Seconds between looks at the log's end when following.
    public var pollInterval: Double = 0.02
    /// Stop before this offset.
    public var until: Int64?
    /// Receives one line per notable event (a batch view applied, a checkpoint).
    public var log: (@Sendable (String) -> Void)?
    /// Asked between reads (of up to 65 536 events): true stops the run with `CancellationError`,
    /// without a checkpoint.
    public var isCancelled: (@Sendable () -> Bool)?

    public init() {}
}

/// What one run of the speed layer did.
public struct SpeedSummary: Sendable {
    /// The offsets read this run.
    public var from: Int64
    public var to: Int64
    public var events: Int
    public var lateEvents: Int
    public var checkpoints: Int
    /// Seconds spent reading, aggregating and checkpointing (waiting for appends not included).
    public var busySeconds: Double
    /// CPU seconds the process used during the run (the speed layer is one thread).
    public var cpuSeconds: Double
    public var eventsPerSecond: Double { busySeconds > 0 ? Double(events) / busySeconds : 0 }
    /// Events per CPU second: the throughput of one core, whatever else runs on the machine.
    public var eventsPerCPUSecond: Double { cpuSeconds > 0 ? Double(events) / cpuSeconds : 0 }
}

/// The CPU time the process has used, in seconds.
func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

/// The speed layer: aggregates the events after the newest batch view's cut, one table per
/// batch (state keyed by key and batch), and checkpoints the tables together with the next
/// offset and the watermark, atomically — so a `kill -9` at any point and a restart neither
/// lose nor double-count an event. When a newer batch view lands, the state of the batches it
/// covers is dropped.
public final class SpeedLayer {
    let log: EventLog
    let store: LambdaStore
    let program: any StreamProgram
    private var state: SpeedState
    private var pendingDeletes: [Int64] = []
    private var lateBuffer = ByteWriter(capacity: 1 << 12)
    private let lateFD: Int32
    private let lock: FileLock

    /// Loads the checkpoint (or starts at the newest batch view's cut) and truncates the side
    /// output to what the checkpoint accounts for.
    public init(job: StreamJob, log path: String, store: LambdaStore, batchSize: Int64? = nil, allowedLateness: Int64? = nil) throws {
        log = try EventLog(path: path)
        self.store = store
        let lateness = try allowedLateness ?? store.config()?.allowedLateness ?? job.allowedLateness
        let config = try store.configure(job: job.name, batchSize: batchSize, allowedLateness: lateness)
        program = try job.program(log: log)
        try Durable.makeFolder(store.speedFolder)
        lock = try FileLock(path: store.speedFolder + "/.lock", busy: { pid in LambdaError("another speed layer is running on \(store.folder)\(pid.map { " (pid \($0))" } ?? "")") })
        let view = try store.newestView()
        let saved = try SpeedState.load(store, program: program)
        try store.checkHeld(byLog: path, end: try log.endOffset(), view: view, speed: saved)
        if let saved {
            guard saved.job == job.name, saved.batchSize == config.batchSize, saved.allowedLateness == lateness else {
                throw LambdaError("the speed checkpoint in \(store.speedFolder) does not match \(store.configPath)")
            }
            state = saved
        } else {
            let batch = view?.batchId ?? 0
            let cut = batch * config.batchSize
            let before = try log.timeRange(before: cut)
            state = SpeedState(job: job.name, batchSize: config.batchSize, allowedLateness: lateness,
                               start: cut, next: cut, appliedBatch: batch, maxEventTime: before.isEmpty ? .min : before.max,
                               lateLength: 0, batches: [:])
        }
        // Files the manifest does not name are leftovers of a crash between two writes.
        let sealed = Set(state.batches.values.filter(\.sealed).map { "batch-\(LogFormat.name($0.id)).state" })
        for name in Durable.list(store.speedFolder) where (name.hasPrefix("batch-") && !sealed.contains(name)) || name.contains(".tmp-") {
            unlink("\(store.speedFolder)/\(name)")
        }
        let late = SpeedState.latePath(store)
        lateFD = open(late, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard lateFD >= 0 else { throw SystemError("cannot open \(late)") }
        guard ftruncate(lateFD, off_t(state.lateLength)) == 0, lseek(lateFD, off_t(state.lateLength), SEEK_SET) >= 0 else {
            throw SystemError("cannot truncate \(late)")
        }
    }

    deinit { close(lateFD) }

    /// Applies the newest batch view if it is newer than the one applied: drops the batches it
    /// covers and, when the view is ahead, jumps to its cut. True when something changed.
    private func applyNewestView(_ note: (@Sendable (String) -> Void)?) throws -> Bool {
        guard let view = try store.newestView(), view.batchId > state.appliedBatch else { return false }
        guard view.batchSize == state.batchSize else {
            throw LambdaError("batch view \(view.path) uses batches of \(view.batchSize) events, the speed layer \(state.batchSize)")
        }
        state.appliedBatch = view.batchId
        for (id, b) in state.batches where id < view.batchId {
            if b.sealed { pendingDeletes.append(id) }
            state.batches[id] = nil
        }
        if state.next < view.cut {
            state.next = view.cut
            if let t = view.maxEventTime { state.maxEventTime = max(state.maxEventTime, t) }
        }
        state.start = max(state.start, view.cut)
        note?("batch view \(view.batchId) landed (cut \(view.cut)): speed state below it dropped")
        return true
    }

    /// Writes the side output, seals finished batches and writes the manifest.
    private func checkpoint() throws {
        if lateBuffer.count > 0 {
            try lateBuffer.bytes.withUnsafeBytes { try Durable.writeAll(lateFD, $0, path: SpeedState.latePath(store)) }
            guard fsync(lateFD) == 0 else { throw SystemError("cannot fsync \(SpeedState.latePath(store))") }
            state.lateLength += Int64(lateBuffer.count)
            lateBuffer.removeAll()
        }
        for b in state.batches.values where !b.sealed && (b.id + 1) * state.batchSize <= state.next {
            try SpeedState.writeSealed(store, b.id, b.table!, program: program)
            b.table = nil
        }
        try Durable.writeAtomically(SpeedState.manifestPath(store), state.encode(program: program))
        for id in pendingDeletes { unlink(SpeedState.sealedPath(store, id)) }
        pendingDeletes = []
    }

    /// Reads and aggregates events until the log's end (or `until`), or for ever with `follow`.
    @discardableResult
    public func run(_ options: SpeedOptions = SpeedOptions()) throws -> SpeedSummary {
        let note = options.log
        let from = state.next
        let cpuStart = processCPUSeconds()
        let started = monotonicMicros()
        var idle: Int64 = 0
        var summary = SpeedSummary(from: from, to: from, events: 0, lateEvents: 0, checkpoints: 0, busySeconds: 0, cpuSeconds: 0)
        var dirty = try applyNewestView(note) || !Durable.exists(SpeedState.manifestPath(store))
        var cursor = try log.cursor(from: state.next)
        var sinceCheckpoint = 0
        var lastCheckpoint = monotonicMicros()
        let program = self.program
        let read = SpeedRead(batches: state.batches, batchSize: state.batchSize,
                             watermark: Watermark(allowedLateness: state.allowedLateness, maxEventTime: state.maxEventTime),
                             next: state.next, makeTable: program.makeTable)
        while true {
            if options.isCancelled?() == true { throw CancellationError() }
            if let until = options.until, state.next >= until {
                if dirty { try checkpoint(); summary.checkpoints += 1 }
                break
            }
            let lateBefore = read.late
            let limit = max(1, min(1 << 16, options.checkpointEvery - sinceCheckpoint))
            let n = try program.speedRead(cursor, limit: limit, end: options.until ?? .max, read)
            state.batches = read.batches
            state.next = read.next
            state.maxEventTime = read.watermark.maxEventTime
            if read.lateBuffer.count > 0 {
                lateBuffer.write(contentsOf: read.lateBuffer.bytes)
                read.lateBuffer.removeAll()
            }
            summary.events += n
            summary.lateEvents += read.late - lateBefore
            sinceCheckpoint += n
            if n > 0 { dirty = true }
            let caughtUp = n < limit
            let now = monotonicMicros()
            if dirty && (caughtUp || sinceCheckpoint >= options.checkpointEvery
                         || Double(now - lastCheckpoint) / 1e6 >= options.checkpointInterval) {
                try checkpoint()
                summary.checkpoints += 1
                dirty = false
                sinceCheckpoint = 0
                lastCheckpoint = now
            }
            if try applyNewestView(note) {
                dirty = true
                read.batches = state.batches
                read.next = state.next
                read.watermark.advance(to: state.maxEventTime)
                if cursor.nextOffset != state.next { cursor = try log.cursor(from: state.next) }
                continue
            }
            if caughtUp {
                if !options.follow { break }
                let slept = monotonicMicros()
                usleep(UInt32(options.pollInterval * 1e6))
                idle += monotonicMicros() - slept
            }
        }
        summary.to = state.next
        summary.cpuSeconds = processCPUSeconds() - cpuStart
        summary.busySeconds = Double(monotonicMicros() - started - idle) / 1e6
        return summary
    }
}
