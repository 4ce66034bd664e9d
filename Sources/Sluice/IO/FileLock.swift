#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive `flock` on a file, held until the object goes away (or the process dies,
/// `kill -9` included): one appender per log, one speed layer per lambda folder, one run per
/// work folder. The holder's process id is written into the file, so a refused process can
/// say who holds it.
package final class FileLock {
    private let fd: Int32

    /// Takes the lock on `path` (created `0600` when missing, never through a symlink); throws
    /// `busy(pid of the holder)` when another process holds it. A lock file that was removed
    /// while we waited for it is not a lock: the attempt is repeated on the new file.
    package init(path: String, busy: (Int32?) -> Error) throws {
        for _ in 0..<3 {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { throw SystemError("cannot open the lock file \(path)") }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                var text = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &text, text.count, 0)
                close(fd)
                throw busy(n > 0 ? Int32(String(decoding: text[..<n], as: UTF8.self).split(separator: "\n").first ?? "") : nil)
            }
            var held = stat(), named = stat()
            guard fstat(fd, &held) == 0, stat(path, &named) == 0, held.st_ino == named.st_ino, held.st_dev == named.st_dev else {
                flock(fd, LOCK_UN)
                close(fd)
                continue
            }
            let pid = Array("\(getpid())\n".utf8)
            _ = ftruncate(fd, 0)
            _ = pwrite(fd, pid, pid.count, 0)
            self.fd = fd
            return
        }
        throw SystemError("cannot take the lock \(path): it keeps being replaced", errno: EAGAIN)
    }

    /// Unlocks before closing: a child process being spawned at this moment holds a copy of
    /// the descriptor until it execs, and the lock belongs to the shared open file, so closing
    /// alone could leave the lock held for a moment (a restart in the same process then saw
    /// "another speed layer is running").
    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
