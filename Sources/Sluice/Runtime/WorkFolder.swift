import Foundation

/// A run's work folder: shuffle files, spills, temporary files and the live event log. It is
/// named by the job and its arguments, so that running the same command again with `--resume`
/// finds the map outputs a killed coordinator left behind; a manifest records what the map
/// outputs depend on (the plan and its input splits), and a resumed run reuses them only if it
/// matches.
struct WorkFolder {
    let path: String
    /// Committed map outputs of an earlier run of the same plan may be reused.
    let resumable: Bool

    /// The default location: `$TMPDIR/sluice-work/JOB-HASH`.
    static func defaultPath(job: Job, arguments: JobArguments) -> String {
        var hash = StableHasher()
        var encoded = ByteWriter()
        arguments.encode(to: &encoded)
        job.name.encode(to: &encoded)
        encoded.bytes.withUnsafeBytes { hash.combine(bytes: $0) }
        return (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/sluice-work/\(job.name)-" + String(hash.finalize(), radix: 16)
    }

    /// Creates (or, resuming, keeps) the folder with a subfolder per shuffle.
    init(path: String, manifest: [UInt8], resume: Bool, shuffles: [Int], log: (String) -> Void) throws {
        var hash = StableHasher()
        manifest.withUnsafeBytes { hash.combine(bytes: $0) }
        let text = "sluice work folder v2 \(String(hash.finalize(), radix: 16))\n"
        let manifestPath = path + "/manifest"
        let fm = FileManager.default
        self.path = path
        resumable = resume && (try? String(contentsOfFile: manifestPath, encoding: .utf8)) == text
        if resume && !resumable {
            log("nothing to resume in \(path) (missing, or made by a different plan): starting afresh")
        }
        if !resumable { try? fm.removeItem(atPath: path) }
        do {
            try fm.createDirectory(atPath: path + "/tmp", withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: manifestPath))
            for s in shuffles { try fm.createDirectory(atPath: "\(path)/shuffle-\(s)", withIntermediateDirectories: true) }
        } catch {
            throw JobFailure(description: "cannot prepare the work folder \(path): \(error)")
        }
    }

    var eventLogPath: String { path + "/_events.jsonl" }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
