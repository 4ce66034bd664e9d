import Foundation
import Sluice

/// A run's event log read back (format in `docs/event-log.md`): the plan, every task attempt,
/// the workers and the outcome. Unknown events and fields are ignored; lines that are not JSON
/// objects (the truncated last line of a killed coordinator's log) are counted and skipped.
struct RunLog {
    /// A stage of the plan (from `job_start`) and how it ran.
    struct Stage {
        var id: Int
        var kind: String
        /// Tasks run: the plan's count unless the stage was changed when submitted (skew split).
        var tasks: Int
        var plannedTasks: Int
        var parents: [Int]
        var operators: [String]
        var readsShuffles: [Int]
        var inputs: [String]
        var writesShuffle: Int?
        var partitions: Int?
        var write: String?
        var action: String?
        var samplesShuffle: Int?
        var submitted: Int64?
        var completed: Int64?
        var wallMs: Double?
        var reused = false
        /// What the coordinator changed at run time, e.g. skewed partitions split.
        var notes: [String] = []
    }

    /// One attempt of one task: a `task_start` and, unless the log ends first, its `task_end`.
    struct Attempt {
        var stage: Int
        var partition: Int
        var attempt: Int
        var worker: Int
        var start: Int64
        var speculative: Bool
        var input: String?
        var end: Int64?
        /// `success`, `failed`, `fetch_failed`, `discarded`, `killed`; nil while unfinished.
        var status: String?
        var workerMs: Double?
        var metrics: [String: Int64] = [:]
        var error: String?

        /// The attempt's run time: the worker's own measure when it reported one.
        func ms(logEnd: Int64) -> Double { workerMs ?? Double((end ?? logEnd) - start) }
    }

    /// A worker process, from `worker_start` to `worker_lost` (or the end of the run).
    struct Worker {
        var id: Int
        var pid: Int?
        /// The cluster node it ran on (`location` "node n2 …"), if not this machine.
        var node: String?
        var start: Int64
        var lost: Int64?
        var lostReason: String?
    }

    var version: Int?
    var job = "?"
    var summary = ""
    var runID = ""
    var output = ""
    var inputs: [String] = []
    var parameters: [(String, String)] = []
    var options: [(String, String)] = []
    var stages: [Stage] = []
    var attempts: [Attempt] = []
    var workers: [Worker] = []
    /// `success`, `failed`, or `unfinished` when the log has no `job_end`.
    var status = "unfinished"
    var error: String?
    var outputs: [String] = []
    var start: Int64 = 0
    var end: Int64 = 0
    var durationMs: Double = 0
    var retries = 0
    var workersReplaced = 0
    var mapTasksRerun = 0
    var speculativeAttempts = 0
    var skippedLines = 0

    init(parsing text: String) throws {
        var events: [(name: String, time: Int64, fields: [String: Any])] = []
        var lastTime: Int64 = 0
        for line in text.split(whereSeparator: \.isNewline) where !line.allSatisfy(\.isWhitespace) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let name = object["event"] as? String else {
                skippedLines += 1
                continue
            }
            lastTime = Self.int64(object["time"]) ?? lastTime
            events.append((name, lastTime, object))
        }
        guard let first = events.first else {
            throw JobError.invalid("not a Sluice event log: no line is a JSON object with an \"event\" field")
        }
        start = first.time
        end = events.map(\.time).max() ?? start

        var jobEnd: [String: Any]?
        var open: [String: Int] = [:]  // "stage.partition.attempt" → index in attempts
        var succeeded: Set<[Int]> = []
        var rerunMaps = 0
        for (name, time, f) in events {
            let stageID = Self.int(f["stage"]) ?? -1
            switch name {
            case "job_start" where stages.isEmpty:
                start = time
                version = Self.int(f["version"])
                job = f["job"] as? String ?? job
                summary = f["summary"] as? String ?? ""
                runID = f["run_id"] as? String ?? ""
                output = f["output"] as? String ?? ""
                inputs = f["inputs"] as? [String] ?? []
                parameters = (f["parameters"] as? [String: Any] ?? [:]).map { ($0.key, Self.text($0.value)) }.sorted { $0.0 < $1.0 }
                options = (f["options"] as? [String: Any] ?? [:]).map { ($0.key, Self.text($0.value)) }.sorted { $0.0 < $1.0 }
                stages = (f["stages"] as? [[String: Any]] ?? []).compactMap(Self.stage)
            case "stage_submitted":
                if let i = stages.firstIndex(where: { $0.id == stageID }), stages[i].submitted == nil {
                    stages[i].submitted = time
                    stages[i].tasks = Self.int(f["tasks"]) ?? stages[i].tasks
                    if stages[i].tasks == 0 {  // nothing to run: done at once, without a stage_completed
                        stages[i].completed = time
                        stages[i].wallMs = 0
                    }
                }
            case "stage_completed":
                if let i = stages.firstIndex(where: { $0.id == stageID }) {
                    stages[i].completed = time
                    stages[i].wallMs = Self.double(f["duration_ms"])
                }
            case "skew_split":
                if let i = stages.firstIndex(where: { $0.id == stageID }) {
                    let split = (f["partitions"] as? [Any] ?? []).compactMap(Self.int).map(String.init).joined(separator: ", ")
                    stages[i].notes.append("skew: partition\(split.contains(",") ? "s" : "") \(split) of shuffle \(Self.int(f["shuffle"]) ?? -1) split, "
                                           + "\(Self.int(f["tasks"]) ?? stages[i].tasks) tasks")
                }
            case "stage_reused":
                if let i = stages.firstIndex(where: { $0.id == stageID }) { stages[i].reused = true }
            case "worker_start":
                let id = Self.int(f["worker"]) ?? workers.count
                workers.removeAll { $0.id == id }
                workers.append(Worker(id: id, pid: Self.int(f["pid"]), node: Self.node(f["location"]), start: time))
            case "worker_lost":
                let id = Self.int(f["worker"]) ?? -1
                let i = worker(id, seen: time)
                workers[i].lost = time
                workers[i].lostReason = f["reason"] as? String
            case "task_start":
                let a = Attempt(stage: stageID, partition: Self.int(f["partition"]) ?? -1, attempt: Self.int(f["attempt"]) ?? 0,
                                worker: Self.int(f["worker"]) ?? -1, start: time, speculative: f["speculative"] as? Bool ?? false,
                                input: f["input"] as? String)
                let i = worker(a.worker, seen: time)
                if workers[i].pid == nil { workers[i].pid = Self.int(f["pid"]) }
                if workers[i].node == nil { workers[i].node = Self.node(f["location"]) }
                if stages.first(where: { $0.id == a.stage })?.kind == "map", succeeded.contains([a.stage, a.partition]) {
                    rerunMaps += 1
                }
                if a.speculative { speculativeAttempts += 1 }
                open["\(a.stage).\(a.partition).\(a.attempt)"] = attempts.count
                attempts.append(a)
            case "task_end":
                let partition = Self.int(f["partition"]) ?? -1, attempt = Self.int(f["attempt"]) ?? 0
                let key = "\(stageID).\(partition).\(attempt)"
                let i: Int
                if let o = open.removeValue(forKey: key) {
                    i = o
                } else {  // its task_start is missing: the bar starts where the worker says it did
                    let ms = Self.double(f["duration_ms"]) ?? 0
                    i = attempts.count
                    attempts.append(Attempt(stage: stageID, partition: partition, attempt: attempt,
                                            worker: Self.int(f["worker"]) ?? -1, start: time - Int64(ms), speculative: false))
                    _ = worker(attempts[i].worker, seen: attempts[i].start)
                }
                attempts[i].end = time
                attempts[i].status = f["status"] as? String ?? "unknown"
                attempts[i].workerMs = Self.double(f["duration_ms"])
                attempts[i].error = f["error"] as? String
                for k in Self.metricKeys { if let v = Self.int64(f[k]) { attempts[i].metrics[k] = v } }
                if attempts[i].status == "success" { succeeded.insert([stageID, partition]) }
            case "job_end":
                jobEnd = f
                end = time
            default:
                break  // an event from a newer writer
            }
        }
        workers.sort { $0.id < $1.id }
        let failedAttempts = attempts.filter { $0.status == "failed" || $0.status == "timed_out" }.count
        if let jobEnd {
            status = jobEnd["status"] as? String ?? "unknown"
            error = jobEnd["error"] as? String
            outputs = jobEnd["outputs"] as? [String] ?? []
        }
        durationMs = Self.double(jobEnd?["duration_ms"]) ?? Double(end - start)
        retries = Self.int(jobEnd?["retries"]) ?? failedAttempts
        workersReplaced = Self.int(jobEnd?["workers_replaced"]) ?? workers.filter { $0.lost != nil }.count
        mapTasksRerun = Self.int(jobEnd?["map_tasks_rerun"]) ?? rerunMaps
    }

    /// The metrics `task_end` reports for a finished attempt.
    static let metricKeys = ["records_in", "records_out", "bytes_read", "shuffle_write", "shuffle_read", "output_bytes",
                             "spills", "spill_bytes", "peak_rss_kib", "bad_records"]

    /// The index of worker `id`, adding it if the log never announced it.
    private mutating func worker(_ id: Int, seen time: Int64) -> Int {
        if let i = workers.firstIndex(where: { $0.id == id }) { return i }
        workers.append(Worker(id: id, start: time))
        return workers.count - 1
    }

    private static func stage(_ s: [String: Any]) -> Stage? {
        guard let id = int(s["id"]) else { return nil }
        return Stage(id: id, kind: s["kind"] as? String ?? "?", tasks: int(s["tasks"]) ?? 0, plannedTasks: int(s["tasks"]) ?? 0,
                     parents: (s["parents"] as? [Any] ?? []).compactMap(int), operators: s["operators"] as? [String] ?? [],
                     readsShuffles: (s["reads_shuffles"] as? [Any] ?? []).compactMap(int),
                     inputs: (s["inputs"] as? [String] ?? []).filter { !$0.isEmpty }, writesShuffle: int(s["writes_shuffle"]),
                     partitions: int(s["partitions"]), write: s["write"] as? String, action: s["action"] as? String,
                     samplesShuffle: int(s["samples_shuffle"]))
    }

    /// `n2` from a location `node n2 (srun pid 9)`; nil for a local process.
    static func node(_ value: Any?) -> String? {
        guard let text = value as? String, text.hasPrefix("node ") else { return nil }
        return String(text.dropFirst(5).prefix { $0 != " " })
    }

    static func int(_ v: Any?) -> Int? { (v as? NSNumber).map { Int(truncatingIfNeeded: $0.int64Value) } }
    static func int64(_ v: Any?) -> Int64? { (v as? NSNumber)?.int64Value }
    static func double(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }

    /// A JSON value as one line of text.
    static func text(_ v: Any) -> String {
        if let s = v as? String { return s }
        if let n = v as? NSNumber { return n.stringValue }
        guard let data = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]) else { return "\(v)" }
        return String(decoding: data, as: UTF8.self)
    }
}
