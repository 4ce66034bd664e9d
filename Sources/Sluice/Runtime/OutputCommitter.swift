#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys
import Foundation

/// Commits a job's output folders (Hadoop's FileOutputCommitter, with Spark's first-attempt-wins
/// rule): task attempts write part files under a staging folder beside the target; the first
/// successful attempt of each task is renamed to its part name; at the job's end `_SUCCESS`
/// (and `_bad_records`) are written and the staging folder is renamed into place with a
/// no-replace rename, so a run never replaces an output it did not check: two runs to one
/// output folder cannot both commit. A failed run leaves no output folder behind, and staging
/// folders left by a killed run are removed by the next run to the same output.
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
            let parent = url.deletingLastPathComponent().path
            OutputCommitter.removeAbandonedStaging(in: parent, of: url.lastPathComponent)
            targets[action] = Target(final: out, staging: parent + "/.\(url.lastPathComponent).sluice-\(runID)")
        }
    }

    /// Removes `.NAME.sluice-PID-…` staging folders whose run (process PID) is gone.
    static func removeAbandonedStaging(in parent: String, of name: String) {
        let prefix = ".\(name).sluice-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where entry.hasPrefix(prefix) {
            guard let pid = Int32(entry.dropFirst(prefix.count).prefix { $0.isNumber }), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            try? FileManager.default.removeItem(atPath: parent + "/" + entry)
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
                try moveIntoPlace(t)
                outputs.append(t.final)
            } catch let failure as JobFailure {
                throw failure
            } catch {
                throw JobFailure(description: "cannot commit output \(t.final): \(error)")
            }
        }
        return outputs
    }

    /// Renames the staging folder to the output folder, never over an output this run did not
    /// check: with `overwrite` the old output is moved aside first; an output that appeared in
    /// the meantime (another run) is left as it is and this run fails.
    private func moveIntoPlace(_ t: Target) throws {
        let old = t.staging + ".old"
        var st = stat()
        if lstat(t.final, &st) == 0 {
            guard overwrite else {
                throw JobFailure(description: "output folder \(t.final) already exists: another run committed it while this one ran (use --overwrite to replace it)")
            }
            guard sluice_rename_noreplace(t.final, old) == 0 else { throw SystemError("cannot move the old \(t.final) aside") }
        }
        if sluice_rename_noreplace(t.staging, t.final) != 0 {
            let code = errno
            guard code == EINVAL else {
                throw JobFailure(description: code == EEXIST || code == ENOTEMPTY
                    ? "output folder \(t.final) appeared while this run committed (another run?): it was not replaced"
                    : "cannot commit output \(t.final): \(SystemError("rename", errno: code))")
            }
            // A filesystem without RENAME_NOREPLACE: check, then rename (a narrow race).
            guard lstat(t.final, &st) != 0, rename(t.staging, t.final) == 0 else {
                throw JobFailure(description: "output folder \(t.final) appeared while this run committed (another run?): it was not replaced")
            }
        }
        try? FileManager.default.removeItem(atPath: old)
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
