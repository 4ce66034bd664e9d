#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A run's work folder: shuffle files, spills, temporary files and the live event log.
///
/// - Private: by default it lives in a per-user root, `$TMPDIR/sluice-UID`, created `0700` and
///   checked on every run (a folder, not a symlink, owned by this user, closed to others), as
///   Spark and Hadoop keep per-user local folders; the work folder itself is checked the same
///   way and its files are `0600`. Anything else is refused with a clear error.
/// - One live run: a lock file inside it is held for the whole run; a second run of the same
///   command is refused, naming the holder.
/// - Resumable: it is named by the job and its arguments, so running the same command again
///   with `--resume` finds the map outputs a killed coordinator left behind. A manifest records
///   what they depend on (the plan, its input splits, and each input file's size, modification
///   time and inode); a resumed run reuses them only if it matches.
struct WorkFolder {
    let path: String
    /// Committed map outputs of an earlier run of the same plan may be reused.
    let resumable: Bool
    private let lock: FileLock

    /// The per-user root of the default work folders.
    static var defaultRoot: String {
        (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/sluice-\(geteuid())"
    }

    /// The default location: `ROOT/JOB-HASH`.
    static func defaultPath(job: Job, arguments: JobArguments) -> String {
        var hash = StableHasher()
        var encoded = ByteWriter()
        arguments.encode(to: &encoded)
        job.name.encode(to: &encoded)
        encoded.bytes.withUnsafeBytes { hash.combine(bytes: $0) }
        return defaultRoot + "/\(job.name)-" + String(hash.finalize(), radix: 16)
    }

    /// Takes the folder (`path`, or the default when nil) for this run: creates or checks it,
    /// locks it, and empties it unless its map outputs may be resumed.
    init(path explicit: String?, job: Job, arguments: JobArguments, manifest: [UInt8], resume: Bool,
         shuffles: [Int], log: (String) -> Void) throws {
        let path = explicit ?? WorkFolder.defaultPath(job: job, arguments: arguments)
        if explicit == nil {
            try WorkFolder.takePrivateFolder(WorkFolder.defaultRoot, strict: true)
        } else {
            try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true)
        }
        try WorkFolder.takePrivateFolder(path, strict: explicit == nil)
        self.path = path
        lock = try FileLock(path: path + "/lock") { pid in
            JobFailure(description: "work folder \(path) is in use by another run\(pid.map { " (pid \($0))" } ?? "") of the same command; wait for it, or give another --work-dir")
        }
        var hash = StableHasher()
        manifest.withUnsafeBytes { hash.combine(bytes: $0) }
        let text = "sluice work folder v3 \(String(hash.finalize(), radix: 16))\n"
        let manifestPath = path + "/manifest"
        resumable = resume && (try? String(contentsOfFile: manifestPath, encoding: .utf8)) == text
        if resume && !resumable {
            log("nothing to resume in \(path) (missing, or made by a different plan or from inputs that changed since): starting afresh")
        }
        let fm = FileManager.default
        if !resumable {
            for entry in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where entry != "lock" {
                try? fm.removeItem(atPath: path + "/" + entry)
            }
        }
        for sub in ["tmp"] + shuffles.map({ "shuffle-\($0)" }) {
            guard mkdir(path + "/" + sub, 0o700) == 0 || errno == EEXIST else {
                throw JobFailure(description: "cannot prepare the work folder \(path): \(SystemError("cannot create \(sub)"))")
            }
        }
        let fd = open(manifestPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw JobFailure(description: "cannot prepare the work folder \(path): \(SystemError("cannot write its manifest"))")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw JobFailure(description: "cannot prepare the work folder \(path): \(SystemError("cannot write its manifest"))")
        }
    }

    /// Creates `path` (`0700`) or checks it: a folder, not a symlink, owned by this user, and
    /// when `strict` (the shared temporary folder) closed to other users.
    static func takePrivateFolder(_ path: String, strict: Bool) throws {
        var st = stat()
        if lstat(path, &st) != 0 {
            guard errno == ENOENT, mkdir(path, 0o700) == 0 || errno == EEXIST, lstat(path, &st) == 0 else {
                throw JobFailure(description: "cannot create the work folder \(path): \(String(cString: strerror(errno)))")
            }
        }
        let unsafe = "work folder \(path) is not safe to use"
        guard st.st_mode & S_IFMT != S_IFLNK else { throw JobFailure(description: "\(unsafe): it is a symbolic link") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw JobFailure(description: "\(unsafe): it is not a folder") }
        guard st.st_uid == geteuid() else {
            throw JobFailure(description: "\(unsafe): it belongs to user \(st.st_uid), not to you (\(geteuid())); remove it or give --work-dir")
        }
        guard !strict || st.st_mode & 0o077 == 0 else {
            throw JobFailure(description: "\(unsafe): other users may open it (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 700 it or give --work-dir")
        }
    }

    var eventLogPath: String { path + "/_events.jsonl" }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
