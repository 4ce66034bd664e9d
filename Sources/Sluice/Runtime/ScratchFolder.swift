#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A worker's node-local scratch folder under `--local-dir`: `sluice-scratch-<pid>`, created
/// `0700` and locked (`flock`) for the worker's whole life. A worker that ends removes its own;
/// one that was killed leaves it unlocked, and the next worker on the node or the coordinator
/// at the job's end removes it (`sweep`). A folder whose lock is held is never touched, so
/// concurrent runs sharing a `--local-dir` keep their scratch.
struct ScratchFolder {
    static let prefix = "sluice-scratch-"

    let path: String
    private let lock: Int32

    /// Creates and locks this process's folder under `base`, after sweeping what dead workers
    /// left there. The folder is made under a temporary name and renamed once locked, so a
    /// sweep never sees it unlocked.
    init(base: String) throws {
        ScratchFolder.sweep(base)
        path = base + "/" + ScratchFolder.prefix + "\(getpid())"
        let making = base + "/.making-" + ScratchFolder.prefix + "\(getpid())"
        try? FileManager.default.removeItem(atPath: making) // left by a dead process with this pid
        guard mkdir(making, 0o700) == 0 else { throw SystemError("cannot create the scratch folder \(making)") }
        lock = open(making, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else { throw SystemError("cannot lock the scratch folder \(making)") }
        try? FileManager.default.removeItem(atPath: path)
        guard rename(making, path) == 0 else { throw SystemError("cannot create the scratch folder \(path)") }
    }

    /// Removes the folder and releases its lock (the worker's end).
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
        close(lock)
    }

    /// Removes every scratch folder under `base` whose owner is gone (its lock is free).
    static func sweep(_ base: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for name in names where name.hasPrefix(prefix) {
            let folder = base + "/" + name
            let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { try? FileManager.default.removeItem(atPath: folder) }
            close(fd)
        }
    }

    /// The folder `--local-dir` names for this process: `$TMPDIR` (or `/tmp`) for `$TMPDIR`.
    static func base(_ localDir: String) -> String {
        localDir == "$TMPDIR" ? (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") : localDir
    }
}
