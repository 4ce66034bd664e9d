import Sluice
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX helpers for files that must survive a crash: whole-file atomic replacement
/// (temporary file, fsync, rename, fsync of the folder) and exact positioned reads and writes.
enum Durable {
    /// Replaces `path` with `bytes` atomically: a reader (or a restart after `kill -9` or a
    /// power cut) sees either the old content or the new, never a mixture.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError("cannot create \(temp)") }
        do {
            try bytes.withUnsafeBytes { try writeAll(fd, $0, path: temp) }
            guard fsync(fd) == 0 else { throw SystemError("cannot fsync \(temp)") }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
        guard rename(temp, path) == 0 else {
            let e = SystemError("cannot rename \(temp) to \(path)")
            unlink(temp)
            throw e
        }
        try syncFolder(of: path)
    }

    /// Fsyncs the folder holding `path`, so that a rename or a new file in it is durable.
    static func syncFolder(of path: String) throws {
        try syncFolder(parent(of: path))
    }

    /// Fsyncs a folder.
    static func syncFolder(_ folder: String) throws {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("cannot open folder \(folder)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemError("cannot fsync folder \(folder)") }
    }

    /// The folder part of a path (`.` when there is none).
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Writes all of `bytes` at the descriptor's current position.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("cannot write \(path)")
            }
            done += n
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file.
    static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + Int64(done)))
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("cannot read \(path)")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// The whole content of a file, or nil when it does not exist.
    static func read(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SystemError("cannot open \(path)")
        }
        defer { close(fd) }
        // Read straight into an array of the file's size (plus room to see that it ended there),
        // growing it only if the file grew meanwhile.
        var st = stat()
        var capacity = (fstat(fd, &st) == 0 ? Int(st.st_size) : 0) + 4096
        var out: [UInt8] = []
        while true {
            let have = out.count
            var failure: Error?
            let grown = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                if have > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: out, byteCount: have) }
                do {
                    count = have + (try readFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[have...]),
                                                  at: Int64(have), path: path))
                } catch {
                    failure = error
                    count = have
                }
            }
            if let failure { throw failure }
            out = grown
            if out.count < capacity { return out }
            capacity *= 2
        }
    }

    /// The size of a file, or nil when it does not exist.
    static func size(_ path: String) -> Int64? {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : nil
    }

    /// Whether `path` exists.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// The names in a folder (without `.` and `..`), unsorted; empty when it does not exist.
    static func list(_ folder: String) -> [String] {
        guard let dir = opendir(folder) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Creates a folder and its parents.
    static func makeFolder(_ path: String) throws {
        if exists(path) { return }
        let parent = parent(of: path)
        if parent != path && parent != "." && parent != "/" { try makeFolder(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw SystemError("cannot create folder \(path)") }
    }

    /// Removes a file or a folder tree; a missing path is not an error.
    static func remove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in list(path) { remove(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// Hexadecimal text for binary values in line-oriented files (batch views).
@usableFromInline enum Hex {
    /// Appends `bytes` as lowercase hex digits.
    @inlinable static func encode(_ bytes: [UInt8], into w: inout ByteWriter) {
        for b in bytes {
            w.write(digit(b >> 4))
            w.write(digit(b & 15))
        }
    }

    @inlinable static func digit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }

    /// Decodes hex digits into `out` (replacing what it held); false when the text is not hex.
    @inlinable static func decode(_ text: ArraySlice<UInt8>, into out: inout [UInt8]) -> Bool {
        guard text.count % 2 == 0 else { return false }
        let n = text.count / 2
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: repeatElement(0, count: n))
        return text.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                // Each digit's value, 0x10 and up for anything that is not one: OR-ing a pair's
                // values then shows a bad digit in the high bits.
                var bad: UInt8 = 0
                for i in 0..<n {
                    let high = value(p[2 * i]), low = value(p[2 * i + 1])
                    bad |= high | low
                    o[i] = high << 4 | (low & 15)
                }
                return bad < 16
            }
        }
    }

    /// A hex digit's value (either case), or 0x10 when `c` is not one.
    @inlinable @inline(__always) static func value(_ c: UInt8) -> UInt8 {
        let digit = c &- 0x30
        if digit < 10 { return digit }
        let letter = (c | 0x20) &- 0x61
        return letter < 6 ? letter + 10 : 0x10
    }
}
