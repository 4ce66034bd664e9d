#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The run's event log: one JSON object per line, format version 1, written as the run goes
/// (stage and task start/end with worker, attempt, split, records, bytes, spills and failure
/// reasons). `sluice report` turns it into an HTML page. Every object has `event` and `time`
/// (milliseconds since the Unix epoch); see `docs/event-log.md` for every field.
final class RunEventLog {
    static let version = 1
    let path: String
    private let fd: Int32
    /// The first write that failed (a full disk): later events are dropped, the run goes on.
    private(set) var writeError: String?

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("cannot create the event log \(path)") }
    }

    deinit { close(fd) }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Appends one event; `fields` must be JSON-serialisable (strings, numbers, arrays, dictionaries).
    func emit(_ event: String, _ fields: [String: Any] = [:]) {
        var object = fields
        object["event"] = event
        object["time"] = RunEventLog.now()
        guard writeError == nil,
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        let line = data + Data("\n".utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written != line.count { writeError = "cannot write the event log \(path): \(String(cString: strerror(errno)))" }
    }

    /// The plan as the report draws it.
    static func describe(_ plan: PhysicalPlan) -> [[String: Any]] {
        plan.stages.map { stage in
            var s: [String: Any] = [
                "id": stage.id, "kind": stage.kindName, "tasks": stage.taskCount,
                "parents": stage.parents.map(\.id),
                "operators": stage.chain.map(plan.chainLabel),
                "reads_shuffles": stage.shuffleInputs.map(\.id),
                "inputs": stage.fileSources.map { $0.paths.joined(separator: " ") },
            ]
            switch stage.kind {
            case .shuffleMap(let dep):
                s["writes_shuffle"] = dep.id
                s["partitions"] = plan.partitions(of: dep)
                s["write"] = dep.writeDescription
            case .sample(let dep): s["samples_shuffle"] = dep.id
            case .result(let action): s["action"] = action.outputPath.map { "\(action.op) \($0)" } ?? action.op
            }
            return s
        }
    }

    /// A task's metrics as event fields.
    static func fields(_ m: TaskMetrics) -> [String: Any] {
        ["records_in": m.recordsRead, "records_out": m.recordsWritten, "bytes_read": m.bytesRead,
         "shuffle_write": m.shuffleBytesWritten, "shuffle_read": m.shuffleBytesRead, "output_bytes": m.outputBytes,
         "spills": m.spills, "spill_bytes": m.spillBytes, "peak_rss_kib": m.peakRSSKiB,
         "bad_records": m.skippedByInput.values.reduce(0, +)]
    }
}
