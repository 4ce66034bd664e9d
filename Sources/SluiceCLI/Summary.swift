import Foundation
import Sluice

/// The per-stage table printed after a run.
enum Summary {
    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f", v) + " " + units[u]
    }

    static func seconds(_ us: Int64) -> String { String(format: "%.2fs", Double(us) / 1e6) }

    /// Characters of a hot key shown before it is cut off with `…`.
    static let keyLabelLength = 60

    /// A hot key for one line: quoted, control characters, quotes and backslashes escaped
    /// (`"a\tb"`, `" "`), and cut after `keyLabelLength` characters.
    static func keyLabel(_ key: String) -> String {
        let shown = key.prefix(keyLabelLength)
        var label = "\""
        for scalar in shown.unicodeScalars {
            switch scalar {
            case "\"": label += "\\\""
            case "\\": label += "\\\\"
            case "\t": label += "\\t"
            case "\n": label += "\\n"
            case "\r": label += "\\r"
            case _ where scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format:
                label += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: label.unicodeScalars.append(scalar)
            }
        }
        return label + "\"" + (shown.endIndex < key.endIndex ? "…" : "")
    }

    static func render(_ r: JobResult) -> String {
        var rows: [[String]] = [["stage", "kind", "tasks", "records in", "records out", "shuffle write", "shuffle read",
                                 "spill", "retries", "time", "task max/median", "worker peak RSS", "tasks per worker"]]
        for s in r.stages {
            let perWorker = s.tasksPerWorker.sorted { $0.key < $1.key }.map { "w\($0.key):\($0.value)" }.joined(separator: " ")
            rows.append([String(s.id), s.kind, String(s.tasks), String(s.recordsIn), String(s.recordsOut),
                         bytes(s.shuffleBytesWritten), bytes(s.shuffleBytesRead),
                         s.spills == 0 ? "-" : "\(s.spills)× \(bytes(s.spillBytes))", String(s.retries), seconds(s.wallMicros),
                         "\(seconds(s.maxTaskMicros))/\(seconds(s.medianTaskMicros))", bytes(s.peakWorkerRSSKiB * 1024), perWorker])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max()! }
        var out = "\n"
        for row in rows {
            out += zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") + "\n"
        }
        for s in r.stages {
            out += "  stage \(s.id): \(s.operators)\n"
            if s.skewed {
                out += "    ⚠ skewed: longest task \(seconds(s.maxTaskMicros)) vs median \(seconds(s.medianTaskMicros)); records max \(s.maxTaskRecords) vs median \(s.medianTaskRecords)\n"
            }
            if !s.hotKeys.isEmpty {
                out += "    hot keys: " + s.hotKeys.prefix(5).map { "\(keyLabel($0.key)) (\(Int(($0.share * 100).rounded())) %)" }.joined(separator: ", ") + "\n"
            }
            for note in s.skewNotes { out += "    \(note)\n" }
        }
        for (input, n) in r.skippedByInput.sorted(by: { $0.key < $1.key }) {
            out += "skipped \(n) bad record\(n == 1 ? "" : "s") in \(input) (sample in _bad_records)\n"
        }
        for o in r.outputs { out += "output: \(o)\n" }
        out += "event log: \(r.eventLog)\n"
        // On a cluster: how the tasks spread over the nodes.
        var perNode: [String: Int] = [:]
        for s in r.stages {
            for (worker, n) in s.tasksPerWorker {
                guard let place = r.workerLocations[worker], place.hasPrefix("node ") else { continue }
                perNode[String(place.dropFirst(5).prefix { $0 != " " }), default: 0] += n
            }
        }
        if !perNode.isEmpty {
            out += "tasks per node: " + perNode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        }
        out += "finished in \(seconds(r.wallMicros)) with \(r.workersStarted) worker process(es)"
        out += "; retries \(r.retries), workers replaced \(r.workersReplaced), map tasks re-run \(r.mapTasksRerun)"
        out += ", speculative attempts \(r.speculativeAttempts)"
        out += r.reusedMapTasks > 0 ? ", map tasks reused from the interrupted run \(r.reusedMapTasks)\n" : "\n"
        return out
    }
}
