#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The coordinator–worker protocol: length-prefixed binary frames over the worker's stdin
/// and stdout (stderr stays free for logs). A frame is `u32 length, u8 type, payload`.
/// Only task descriptors, metadata and small results cross; never closures.
enum Message {
    /// Worker → coordinator, first frame: protocol version and process id.
    case hello(version: Int, pid: Int32)
    /// Coordinator → worker: which job to build, with which arguments and plan inputs.
    case setup(Setup)
    /// Worker → coordinator: idle, send a task (pull-based scheduling).
    case ready
    /// Coordinator → worker: run this task.
    case assign(TaskDescriptor)
    /// Worker → coordinator: the task succeeded.
    case done(TaskReport)
    /// Worker → coordinator: the task failed.
    case failed(TaskFailure)
    /// Worker → coordinator: still alive, and how far its task has got (a counter that moves
    /// while the task reads, writes or calls `progress()`; liveness follows it).
    case heartbeat(progress: UInt64)
    /// Coordinator → worker: exit.
    case shutdown
    /// Worker → coordinator, instead of `ready`: it cannot work where it runs (it cannot see
    /// the work folder, which every worker must share).
    case refused(String)

    static let protocolVersion = 2
    static let maxFrame = 1 << 30

    /// Everything a worker needs, in its first frame: nothing comes from the environment of
    /// the process that started it, so a launcher may start it anywhere (`srun`, `ssh`).
    struct Setup {
        /// The worker's id, as the coordinator's logs and event log name it.
        var workerID: Int
        /// Faults to inject (`--inject`), empty for none.
        var inject: String
        /// How often the worker sends a heartbeat.
        var heartbeatMicros: Int64
        var job: String
        var arguments: JobArguments
        var options: PlanOptions
        var splits: [[InputSplit]]
        var workDir: String
        var memoryBudget: Int
        var maxExpandedBytes: Int64
        /// The longest record (a line) a task may hold; longer ones are bad records.
        var maxRecordBytes: Int
        /// Node-local scratch for spills: empty for the work folder's `tmp`, `$TMPDIR` for the
        /// worker's own temporary folder, else a path.
        var localDir: String = ""
        var skipBadRecords: Bool
        var compressOutput: Bool
    }

    struct TaskDescriptor {
        var stage: Int
        var partition: Int
        var attempt: Int
        /// Range bounds for a range shuffle's map task.
        var blob: [UInt8]
        var outputPath: String?
        /// The task's `TaskSpec` after skew planning (encoded); empty for a plain task.
        var spec: [UInt8] = []
    }

    struct TaskReport {
        var stage: Int
        var partition: Int
        var attempt: Int
        var metrics: TaskMetrics
        var mapStats: MapOutputStats?
        var result: [UInt8]
        /// A file the coordinator must commit (a map output or a part file), by rename.
        var file: String?
        var micros: Int64
    }

    /// A task failure that retrying cannot cure.
    enum FatalCause: UInt8 {
        /// The input is malformed (the message names file and line).
        case badInput = 1
        /// The disk or quota is full (the message names the file being written).
        case diskFull = 2
    }

    struct TaskFailure {
        var stage: Int
        var partition: Int
        var attempt: Int
        var message: String
        /// Set when a map output was missing or corrupt (Spark's FetchFailed).
        var lostShuffle: Int?
        var lostMap: Int?
        /// Why retrying cannot help, when it cannot: the job fails at once.
        var fatal: FatalCause? = nil
    }

    var type: UInt8 {
        switch self {
        case .hello: return 1
        case .setup: return 2
        case .ready: return 3
        case .assign: return 4
        case .done: return 5
        case .failed: return 6
        case .heartbeat: return 7
        case .shutdown: return 8
        case .refused: return 9
        }
    }

    func encodePayload(to w: inout ByteWriter) {
        switch self {
        case .hello(let version, let pid):
            w.writeVarint(UInt64(version))
            w.writeFixed(pid)
        case .setup(let s):
            w.writeVarint(UInt64(s.workerID))
            s.inject.encode(to: &w)
            w.writeFixed(s.heartbeatMicros)
            s.job.encode(to: &w)
            s.arguments.encode(to: &w)
            w.writeVarint(UInt64(s.options.partitions))
            w.writeFixed(s.options.broadcastThreshold)
            w.writeFixed(s.options.rangeShareBytes)
            w.writeVarint(UInt64(s.splits.count))
            for list in s.splits {
                w.writeVarint(UInt64(list.count))
                for split in list { split.encode(to: &w) }
            }
            s.workDir.encode(to: &w)
            w.writeVarint(UInt64(s.memoryBudget))
            w.writeFixed(s.maxExpandedBytes)
            w.writeVarint(UInt64(s.maxRecordBytes))
            s.localDir.encode(to: &w)
            s.skipBadRecords.encode(to: &w)
            s.compressOutput.encode(to: &w)
        case .assign(let t):
            w.writeVarint(UInt64(t.stage))
            w.writeVarint(UInt64(t.partition))
            w.writeVarint(UInt64(t.attempt))
            w.writeLengthPrefixed(t.blob)
            t.outputPath.encode(to: &w)
            w.writeLengthPrefixed(t.spec)
        case .done(let r):
            w.writeVarint(UInt64(r.stage))
            w.writeVarint(UInt64(r.partition))
            w.writeVarint(UInt64(r.attempt))
            r.metrics.encode(to: &w)
            if let stats = r.mapStats {
                w.write(1)
                stats.records.encode(to: &w)
                stats.bytes.encode(to: &w)
                stats.hotKeys.map(\.0).encode(to: &w)
                stats.hotKeys.map(\.1).encode(to: &w)
                stats.sketched.encode(to: &w)
            } else {
                w.write(0)
            }
            w.writeLengthPrefixed(r.result)
            r.file.encode(to: &w)
            w.writeFixed(r.micros)
        case .failed(let f):
            w.writeVarint(UInt64(f.stage))
            w.writeVarint(UInt64(f.partition))
            w.writeVarint(UInt64(f.attempt))
            f.message.encode(to: &w)
            f.lostShuffle.encode(to: &w)
            f.lostMap.encode(to: &w)
            w.write(f.fatal?.rawValue ?? 0)
        case .heartbeat(let progress):
            w.writeFixed(progress)
        case .refused(let reason):
            reason.encode(to: &w)
        case .ready, .shutdown:
            break
        }
    }

    static func decode(type: UInt8, payload: UnsafeRawBufferPointer) throws -> Message {
        var r = ByteReader(payload)
        func int() throws -> Int { Int(try r.readVarint()) }
        let message: Message
        switch type {
        case 1: message = .hello(version: try int(), pid: try r.readFixed())
        case 2:
            let workerID = try int()
            let inject = try String.decode(from: &r)
            let heartbeat: Int64 = try r.readFixed()
            let job = try String.decode(from: &r)
            let args = try JobArguments.decode(from: &r)
            let options = PlanOptions(partitions: try int(), broadcastThreshold: try r.readFixed(), rangeShareBytes: try r.readFixed())
            var splits: [[InputSplit]] = []
            for _ in 0..<(try int()) {
                var list: [InputSplit] = []
                for _ in 0..<(try int()) { list.append(try InputSplit.decode(from: &r)) }
                splits.append(list)
            }
            message = .setup(Setup(workerID: workerID, inject: inject, heartbeatMicros: heartbeat, job: job, arguments: args, options: options, splits: splits,
                                   workDir: try String.decode(from: &r), memoryBudget: try int(),
                                   maxExpandedBytes: try r.readFixed(), maxRecordBytes: try int(), localDir: try String.decode(from: &r), skipBadRecords: try Bool.decode(from: &r),
                                   compressOutput: try Bool.decode(from: &r)))
        case 3: message = .ready
        case 4:
            message = .assign(TaskDescriptor(stage: try int(), partition: try int(), attempt: try int(),
                                             blob: Array(try r.readLengthPrefixed()), outputPath: try String?.decode(from: &r),
                                             spec: Array(try r.readLengthPrefixed())))
        case 5:
            let stage = try int(), partition = try int(), attempt = try int()
            let metrics = try TaskMetrics.decode(from: &r)
            var stats: MapOutputStats?
            if try r.readByte() == 1 {
                stats = MapOutputStats(records: try [Int].decode(from: &r), bytes: try [Int64].decode(from: &r))
                let labels = try [String].decode(from: &r)
                stats!.hotKeys = Array(zip(labels, try [Int].decode(from: &r)))
                stats!.sketched = try Int.decode(from: &r)
            }
            message = .done(TaskReport(stage: stage, partition: partition, attempt: attempt, metrics: metrics,
                                       mapStats: stats, result: Array(try r.readLengthPrefixed()),
                                       file: try String?.decode(from: &r), micros: try r.readFixed()))
        case 6:
            message = .failed(TaskFailure(stage: try int(), partition: try int(), attempt: try int(),
                                          message: try String.decode(from: &r), lostShuffle: try Int?.decode(from: &r),
                                          lostMap: try Int?.decode(from: &r), fatal: FatalCause(rawValue: try r.readByte())))
        case 7: message = .heartbeat(progress: try r.readFixed())
        case 8: message = .shutdown
        case 9: message = .refused(try String.decode(from: &r))
        default: throw CorruptDataError("unknown frame type \(type)")
        }
        guard r.isAtEnd else { throw CorruptDataError("frame type \(type) has \(r.remaining) trailing bytes") }
        return message
    }
}

/// Writes frames to a descriptor with `write(2)` (no stdio buffering); safe to share
/// between the task thread and the heartbeat thread.
final class FrameWriter: Sendable {
    let fd: Int32
    private let lock = Mutex(())

    init(fd: Int32) { self.fd = fd }

    func send(_ message: Message) throws {
        var w = ByteWriter(capacity: 64)
        w.writeFixed(UInt32(0))
        w.write(message.type)
        message.encodePayload(to: &w)
        w.patchFixed(UInt32(w.count - 5), at: 0)
        try lock.withLock { _ in
            try w.bytes.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw SystemError("cannot write to pipe")
                    }
                    done += n
                }
            }
        }
    }
}

/// Accumulates bytes read from a pipe and cuts them into frames. A frame that is too
/// large or does not decode is a protocol error (the peer is treated as failed).
struct FrameReader {
    private var buffer: [UInt8] = []
    private var start = 0

    mutating func append(_ raw: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: raw)
    }

    /// The next complete frame, or nil if more bytes are needed.
    mutating func next() throws -> Message? {
        let available = buffer.count - start
        guard available >= 5 else { return nil }
        let length = buffer.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt32.self))) }
        guard length <= Message.maxFrame else { throw CorruptDataError("frame of \(length) bytes exceeds the limit") }
        guard available >= 5 + length else { return nil }
        let type = buffer[start + 4]
        let message = try buffer.withUnsafeBytes {
            try Message.decode(type: type, payload: UnsafeRawBufferPointer(rebasing: $0[(start + 5)..<(start + 5 + length)]))
        }
        start += 5 + length
        if start > (1 << 20) {
            buffer.removeFirst(start)
            start = 0
        }
        return message
    }

    /// Whether bytes of an incomplete frame are pending (EOF now means a truncated frame).
    var hasPartialFrame: Bool { buffer.count > start }
}

/// Reads from `fd` until the buffer holds a frame; used by the worker's blocking loop.
func readFrame(fd: Int32, into reader: inout FrameReader) throws -> Message? {
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        if let m = try reader.next() { return m }
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemError("cannot read from pipe")
        }
        if n == 0 {
            if reader.hasPartialFrame { throw CorruptDataError("pipe closed in the middle of a frame") }
            return nil
        }
        chunk.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
}

/// Microseconds on the monotonic clock.
package func monotonicMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
}
