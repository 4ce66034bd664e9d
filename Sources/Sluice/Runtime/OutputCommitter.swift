import Foundation

/// Commits a job's output folders (Hadoop's FileOutputCommitter, with Spark's first-attempt-wins
/// rule): task attempts write part files under a staging folder beside the target; the first
/// successful attempt of each task is renamed to its part name; at the job's end `_SUCCESS`
/// (and `_bad_records`) are written and the staging folder is renamed into place. A failed
/// run leaves no output folder behind.
final class OutputCommitter {
    /// One action's output folder.
    struct Target {
        var final: String
        var staging: String
    }

    private(set) var targets: [Int: Target] = [:]
    let overwrite: Bool
    let compressed: Bool
    private var committed = Set<[Int]>()

    /// `outputs`: action index → output folder. Refuses a folder that exists unless `overwrite`.
    init(outputs: [Int: String], runID: String, overwrite: Bool, compressed: Bool) throws {
        self.overwrite = overwrite
        self.compressed = compressed
        for (action, out) in outputs {
            if FileManager.default.fileExists(atPath: out) && !overwrite {
                throw JobFailure(description: "output folder \(out) already exists (use --overwrite to replace it)")
            }
            let url = URL(fileURLWithPath: out)
            targets[action] = Target(final: out, staging: url.deletingLastPathComponent().path + "/.\(url.lastPathComponent).sluice-\(runID)")
        }
    }

    /// The first output folder, by action order (where the event log goes).
    var firstOutput: String? { targets.sorted { $0.key < $1.key }.first?.value.final }

    /// Creates the staging folders.
    func prepare() throws {
        for t in targets.values {
            try FileManager.default.createDirectory(atPath: t.staging + "/_attempts", withIntermediateDirectories: true)
        }
    }

    /// Where an attempt of an action's task writes its part file; nil for actions without output.
    func attemptPath(action: Int, task: Int, attempt: Int) -> String? {
        targets[action].map { "\($0.staging)/_attempts/\(partName(task)).attempt\(attempt)" }
    }

    /// Renames an attempt's part file to part `part`; a second commit of the same part is
    /// refused (its file removed), so exactly one attempt's records reach the output.
    func commitTask(action: Int, part: Int, file: String) throws {
        guard let t = targets[action] else { return }
        guard committed.insert([action, part]).inserted else {
            unlink(file)
            return
        }
        let final = t.staging + "/" + partName(part) + (compressed ? ".gz" : "")
        guard rename(file, final) == 0 else { throw SystemError("cannot commit \(final)") }
    }

    /// Writes the markers and moves every staging folder into place; returns the folders.
    func commitJob(skipped: [String: Int], badSamples: [String]) throws -> [String] {
        let fm = FileManager.default
        var outputs: [String] = []
        for (_, t) in targets.sorted(by: { $0.key < $1.key }) {
            do {
                try? fm.removeItem(atPath: t.staging + "/_attempts")
                if !skipped.isEmpty {
                    var text = "# records skipped by --bad-records skip: input<TAB>count, then a sample (file:line: reason)\n"
                    for (input, n) in skipped.sorted(by: { $0.key < $1.key }) { text += "\(input)\t\(n)\n" }
                    text += badSamples.map { $0 + "\n" }.joined()
                    guard fm.createFile(atPath: t.staging + "/_bad_records", contents: Data(text.utf8)) else {
                        throw SystemError("cannot write _bad_records")
                    }
                }
                guard fm.createFile(atPath: t.staging + "/_SUCCESS", contents: Data()) else { throw SystemError("cannot write _SUCCESS") }
                if fm.fileExists(atPath: t.final) {
                    let old = t.staging + ".old"
                    try fm.moveItem(atPath: t.final, toPath: old)
                    try fm.moveItem(atPath: t.staging, toPath: t.final)
                    try? fm.removeItem(atPath: old)
                } else {
                    try fm.moveItem(atPath: t.staging, toPath: t.final)
                }
                outputs.append(t.final)
            } catch {
                throw JobFailure(description: "cannot commit output \(t.final): \(error)")
            }
        }
        return outputs
    }

    /// Removes every staging folder (a failed run).
    func abort() {
        for t in targets.values { try? FileManager.default.removeItem(atPath: t.staging) }
    }
}

/// `part-00007`.
func partName(_ p: Int) -> String {
    let digits = String(p)
    return "part-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
}
