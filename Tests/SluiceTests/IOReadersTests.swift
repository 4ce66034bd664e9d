import Foundation
import Testing
@testable import Sluice

// Tests for GzipSource and ArchiveReader. The fixtures are generated once per test process,
// in a temporary directory, by one python3 run (gzip, tarfile and zipfile modules); tests
// only read them, and write damaged copies into their own temporary directories.

// MARK: - Helpers

/// Makes a fresh directory under the system temporary directory.
private func makeTempDir() throws -> String {
    var base = NSTemporaryDirectory()
    while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
    var template = Array("\(base)/sluice-io-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
    return String(cString: made)
}

/// A fresh temporary directory, removed at the end of `body`.
private func withTempDir<T>(_ body: (String) throws -> T) throws -> T {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// Reads `source` to the end, `chunk` bytes at a time.
private func readAll(_ source: ByteSource, chunk: Int = 64 << 10) throws -> [UInt8] {
    var result: [UInt8] = []
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
    defer { buffer.deallocate() }
    while true {
        let n = try source.read(into: buffer)
        if n == 0 { return result }
        result.append(contentsOf: buffer[0..<n])
    }
}

/// Reads `source` until it throws; returns the bytes read before and the error.
private func readUntilError(_ source: ByteSource, chunk: Int = 64 << 10) -> ([UInt8], Error?) {
    var result: [UInt8] = []
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
    defer { buffer.deallocate() }
    do {
        while true {
            let n = try source.read(into: buffer)
            if n == 0 { return (result, nil) }
            result.append(contentsOf: buffer[0..<n])
        }
    } catch {
        return (result, error)
    }
}

/// Reads every entry of the archive at `path` to the end.
private func readWholeArchive(_ path: String) throws {
    let reader = try ArchiveReader(path: path)
    while try reader.nextEntry() != nil { _ = try readAll(reader.entrySource()) }
}

private func bytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

private func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Expects `body` to throw an `InputError` and returns it.
private func expectInputError(_ body: () throws -> Void,
                             sourceLocation: SourceLocation = #_sourceLocation) -> InputError? {
    do {
        try body()
        Issue.record("expected an InputError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as InputError {
        return error
    } catch {
        Issue.record("expected an InputError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

// MARK: - Fixtures

/// Writes, in the current directory, with `sys.argv[1]` as TAG:
/// - gzip: plain.txt (text); one.gz (plain.txt, one member); multi.gz (plain.txt in 3
///   members plus an empty one); random.bin (2 MiB, incompressible) and bigmulti.gz (it in
///   uneven members straddling the 1 MiB input buffer); zeros.gz (8 MiB of zeros).
/// - archives holding the entries of `archiveEntries`: plain.tar (ustar), gnu.tar, pax.tar,
///   a.tar.gz, a.tgz, a.tar.bz2, a.tar.xz, a.zip (deflated), s.zip (stored); big.bin holds the
///   expected data of the big.bin entry; z.tar.gz holds one 8 MiB entry of zeros.
private let fixtureScript = #"""
import gzip, io, random, shutil, sys, tarfile, zipfile
tag = sys.argv[1]

rnd = random.Random(42)
words = [b'alpha', b'beta', b'gamma', b'delta', b'sluice', b'\xc3\xa9t\xc3\xa9', b'\n']
plain = b' '.join(rnd.choice(words) for _ in range(25000))
open('plain.txt', 'wb').write(plain)
open('one.gz', 'wb').write(gzip.compress(plain, mtime=0))
a, b = len(plain) // 3, 2 * len(plain) // 3
open('multi.gz', 'wb').write(gzip.compress(plain[:a]) + gzip.compress(b'') +
                             gzip.compress(plain[a:b], 1) + gzip.compress(plain[b:], 9))
data = rnd.randbytes(2 * 1024 * 1024 + 12345)
open('random.bin', 'wb').write(data)
cuts = [0, 1, 700000, 1048576 - 20, 1900000, len(data)]
open('bigmulti.gz', 'wb').write(b''.join(gzip.compress(data[x:y], 1) for x, y in zip(cuts, cuts[1:])))
open('zeros.gz', 'wb').write(gzip.compress(bytes(8 * 1024 * 1024), 1))

big = rnd.randbytes(1100 * 1024 + 77)
open('big.bin', 'wb').write(big)
entries = [  # (name, type, data)
    ('dir/', 'dir', b''),
    ('dir/a.txt', 'file', b'alpha\n'),
    ('big.bin', 'file', big),
    ('link', 'symlink', b'dir/a.txt'),
    ('empty.txt', 'file', b''),
    ('../escape-' + tag + '.txt', 'file', b'escaped?\n'),
    ('/abs-' + tag + '/x.txt', 'file', b'absolute?\n'),
    ('na\u00efve-\u65e5\u672c.txt', 'file', 'unicode \u00e9\n'.encode()),
]

def make_zip(out, method):
    with zipfile.ZipFile(out, 'w', method) as z:
        for name, typ, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            info.external_attr = {'dir': (0o40755 << 16) | 0x10, 'symlink': 0o120777 << 16}.get(typ, 0o100644 << 16)
            z.writestr(info, data)

def make_tar(out, mode, fmt, entries, **level):
    with tarfile.open(out, mode, format=fmt, **level) as t:
        for name, typ, data in entries:
            if fmt == tarfile.USTAR_FORMAT and not name.isascii():
                name = 'naive.txt'
            info = tarfile.TarInfo(name)
            if typ == 'dir':
                info.type = tarfile.DIRTYPE; info.mode = 0o755
            elif typ == 'symlink':
                info.type = tarfile.SYMTYPE; info.linkname = data.decode(); data = b''
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))

make_zip('a.zip', zipfile.ZIP_DEFLATED)
make_zip('s.zip', zipfile.ZIP_STORED)
make_tar('plain.tar', 'w', tarfile.USTAR_FORMAT, entries)
make_tar('gnu.tar', 'w', tarfile.GNU_FORMAT, entries)
make_tar('pax.tar', 'w', tarfile.PAX_FORMAT, entries)
make_tar('a.tar.gz', 'w:gz', tarfile.PAX_FORMAT, entries, compresslevel=1)
shutil.copy('a.tar.gz', 'a.tgz')
make_tar('a.tar.bz2', 'w:bz2', tarfile.PAX_FORMAT, entries, compresslevel=1)
make_tar('a.tar.xz', 'w:xz', tarfile.PAX_FORMAT, entries, preset=0)
make_tar('z.tar.gz', 'w:gz', tarfile.PAX_FORMAT, [('zeros.bin', 'file', bytes(8 * 1024 * 1024))], compresslevel=1)
"""#

/// The shared fixture directory and the tag used in the hostile entry names.
private struct Fixtures: Sendable {
    let dir: String
    let tag: String

    func path(_ name: String) -> String { "\(dir)/\(name)" }

    static func make() throws -> Fixtures {
        let dir = try makeTempDir()
        let tag = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", fixtureScript, tag]
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        try process.run()
        process.waitUntilExit()
        atexit {
            if case .success(let fixtures) = sharedFixtures {
                try? FileManager.default.removeItem(atPath: fixtures.dir)
            }
        }
        guard process.terminationStatus == 0 else {
            throw InputError(source: dir, reason: "python3 fixture script failed")
        }
        return Fixtures(dir: dir, tag: tag)
    }
}

/// Made on first use, once per process (lazy global initialisation is thread-safe).
private let sharedFixtures = Result { try Fixtures.make() }

private func fixtures() throws -> Fixtures { try sharedFixtures.get() }

/// The entries of the fixture archives, in order: (name, isRegularFile, data). ustar cannot
/// store the non-ASCII name, so plain.tar has `naive.txt` instead.
private func archiveEntries(_ f: Fixtures, ustar: Bool) throws -> [(String, Bool, [UInt8])] {
    [
        ("dir/", false, []),
        ("dir/a.txt", true, Array("alpha\n".utf8)),
        ("big.bin", true, try bytes(f.path("big.bin"))),
        ("link", false, []),
        ("empty.txt", true, []),
        ("../escape-\(f.tag).txt", true, Array("escaped?\n".utf8)),
        ("/abs-\(f.tag)/x.txt", true, Array("absolute?\n".utf8)),
        (ustar ? "naive.txt" : "naïve-日本.txt", true, Array("unicode é\n".utf8)),
    ]
}

// MARK: - Gzip tests

@Test func gzipSingleMemberEqualsPlainBytes() throws {
    let f = try fixtures()
    let plain = try bytes(f.path("plain.txt"))
    for chunk in [1, 7, 4096, 1 << 20] {
        let source = try GzipSource(path: f.path("one.gz"))
        #expect(source.name == f.path("one.gz"))
        #expect(try readAll(source, chunk: chunk) == plain, "chunk \(chunk)")
        // The end is sticky.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { buffer.deallocate() }
        #expect(try source.read(into: buffer) == 0)
    }
}

@Test func gzipMultiMemberEqualsPlainBytes() throws {
    let f = try fixtures()
    let plain = try bytes(f.path("plain.txt"))
    #expect(try readAll(GzipSource(path: f.path("multi.gz"))) == plain)
    #expect(try readAll(GzipSource(path: f.path("multi.gz")), chunk: 3) == plain)
    // Members straddling the 1 MiB input buffer, through a generic underlying source.
    let random = try bytes(f.path("random.bin"))
    let source = try GzipSource(underlying: FileByteSource(path: f.path("bigmulti.gz")), name: "big")
    #expect(source.name == "big")
    #expect(try readAll(source, chunk: 1 << 20) == random)
    #expect(try readAll(GzipSource(path: f.path("bigmulti.gz")), chunk: 100_003) == random)
}

@Test func gzipTruncatedStreamThrowsNamingTheFile() throws {
    let f = try fixtures()
    let whole = try bytes(f.path("one.gz"))
    let big = try bytes(f.path("bigmulti.gz"))
    let cases: [(String, [UInt8])] = [
        ("half.gz", Array(whole[..<(whole.count / 2)])),
        ("notrailer.gz", Array(whole[..<(whole.count - 4)])),   // CRC and length missing
        ("headeronly.gz", Array(whole[..<5])),
        ("empty.gz", []),
        ("bighalf.gz", Array(big[..<(big.count / 2)])),
    ]
    try withTempDir { dir in
        for (name, content) in cases {
            let path = "\(dir)/\(name)"
            try write(content, to: path)
            let source = try GzipSource(path: path)
            let error = expectInputError { _ = try readAll(source) }
            #expect(error?.source == path)
            #expect(error?.reason.contains("truncated gzip stream") == true, "\(name): \(String(describing: error))")
            #expect(error?.offset != nil)
            // Errors are sticky.
            let again = expectInputError { _ = try readAll(source) }
            #expect(again?.reason == error?.reason)
            // The bytes decoded before the fault come first, then the error.
            let (partial, firstError) = try readUntilError(GzipSource(path: path))
            #expect(firstError is InputError)
            let reference = try bytes(f.path(name.hasPrefix("big") ? "random.bin" : "plain.txt"))
            #expect(reference.starts(with: partial))
            if name == "notrailer.gz" { #expect(partial == reference) }
        }
    }
}

@Test func gzipCorruptDataThrows() throws {
    let f = try fixtures()
    let whole = try bytes(f.path("one.gz"))
    var flipped = whole
    for i in (whole.count / 2)..<(whole.count / 2 + 64) { flipped[i] ^= 0x5a }
    var badCRC = whole
    badCRC[whole.count - 6] ^= 0xff
    let cases: [(String, [UInt8])] = [
        ("flipped.gz", flipped), ("badcrc.gz", badCRC),
        ("garbage.gz", whole + Array("trailing junk".utf8)), ("onebyte.gz", whole + [0x1f]),
        ("plain.gz", Array("just some text, not gzip\n".utf8)),
    ]
    try withTempDir { dir in
        for (name, content) in cases {
            let path = "\(dir)/\(name)"
            try write(content, to: path)
            let error = expectInputError { _ = try readAll(GzipSource(path: path)) }
            #expect(error?.source == path)
            #expect(error?.reason.hasPrefix("corrupt gzip data") == true, "\(name): \(String(describing: error))")
        }
    }
}

@Test func gzipBombGuardThrows() throws {
    let path = try fixtures().path("zeros.gz")
    let size = 8 * 1024 * 1024
    let error = expectInputError { _ = try readAll(GzipSource(path: path, maxExpandedBytes: 1 << 20)) }
    #expect(error?.source == path)
    #expect(error?.skippable == false, "skipping records cannot help")
    #expect(error?.reason.contains("decompression bomb guard: expands beyond 1048576 bytes") == true)
    // Exactly at the limit is fine; one byte less is not.
    #expect(try readAll(GzipSource(path: path, maxExpandedBytes: Int64(size))).count == size)
    #expect(expectInputError { _ = try readAll(GzipSource(path: path, maxExpandedBytes: Int64(size - 1))) } != nil)
    #expect(try readAll(GzipSource(path: path, maxExpandedBytes: .max)).count == size)
}

@Test func gzipPathHelpers() throws {
    #expect(GzipSource.isGzip(path: "a/b.log.gz"))
    #expect(GzipSource.isGzip(path: "B.GZ"))
    #expect(!GzipSource.isGzip(path: "a.tar.gz"))
    #expect(!GzipSource.isGzip(path: "a.txt"))
    let f = try fixtures()
    #expect(GzipSource.looksLikeGzip(path: f.path("one.gz")))
    #expect(!GzipSource.looksLikeGzip(path: f.path("plain.txt")))
    #expect(!GzipSource.looksLikeGzip(path: f.path("missing")))
    #expect(throws: InputError.self) { try GzipSource(path: "/nonexistent/sluice.gz") }
}

// MARK: - Archive tests

@Test(arguments: ["plain.tar", "gnu.tar", "pax.tar", "a.tar.gz", "a.tgz", "a.tar.bz2", "a.tar.xz", "a.zip", "s.zip"])
func archiveYieldsEntryNamesAndBytes(file: String) throws {
    let f = try fixtures()
    let path = f.path(file)
    #expect(ArchiveReader.isArchive(path: path))
    let expected = try archiveEntries(f, ustar: file == "plain.tar")

    // Default: regular files only, indices count every entry.
    let reader = try ArchiveReader(path: path)
    var seen: [(ArchiveEntry, [UInt8])] = []
    while let entry = try reader.nextEntry() {
        let source = reader.entrySource()
        #expect(source.name == "\(path)!\(entry.path)")
        seen.append((entry, try readAll(source, chunk: 100_000)))
    }
    #expect(try reader.nextEntry() == nil)
    let regular = expected.enumerated().filter { $0.element.1 }
    #expect(seen.map(\.0.path) == regular.map(\.element.0))
    #expect(seen.map(\.0.index) == regular.map(\.offset))
    #expect(seen.allSatisfy { $0.0.isRegularFile })
    for ((entry, data), (_, want)) in zip(seen, regular) {
        #expect(data == want.2, "\(entry.path)")
        #expect(entry.size == Int64(want.2.count), "\(entry.path)")
    }

    // With non-regular entries.
    let all = try ArchiveReader.listEntries(path: path, includeNonRegular: true)
    #expect(all.map(\.path) == expected.map(\.0))
    #expect(all.map(\.isRegularFile) == expected.map(\.1))
    #expect(all.map(\.index) == Array(0..<expected.count))
}

@Test func hostileEntryNamesAreReadAsNamesAndNothingIsWritten() throws {
    let f = try fixtures()
    let before = try FileManager.default.contentsOfDirectory(atPath: f.dir).sorted()
    for file in ["pax.tar", "a.tar.gz", "a.zip"] {
        let reader = try ArchiveReader(path: f.path(file))
        var names: [String: [UInt8]] = [:]
        while let entry = try reader.nextEntry() {
            names[entry.path] = try readAll(reader.entrySource())
        }
        #expect(names["../escape-\(f.tag).txt"] == Array("escaped?\n".utf8), "\(file)")
        #expect(names["/abs-\(f.tag)/x.txt"] == Array("absolute?\n".utf8), "\(file)")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: f.dir).sorted() == before)
    let cwd = FileManager.default.currentDirectoryPath
    for candidate in ["\(f.dir)/../escape-\(f.tag).txt", "\(cwd)/../escape-\(f.tag).txt", "\(cwd)/escape-\(f.tag).txt",
                      "/abs-\(f.tag)", "\(cwd)/abs-\(f.tag)", "\(f.dir)/abs-\(f.tag)"] {
        #expect(!FileManager.default.fileExists(atPath: candidate), "\(candidate)")
    }
}

@Test(arguments: ["a.tar.gz", "plain.tar", "a.zip"])
func archiveEntryRangesAndSkipping(file: String) throws {
    let path = try fixtures().path(file)
    let all = try ArchiveReader.listEntries(path: path)
    // Two tasks: entries with index in [0, 3) and [3, 100).
    var union: [ArchiveEntry] = []
    for (from, to) in [(0, 3), (3, 100)] {
        let reader = try ArchiveReader(path: path)
        var entry = try reader.skip(to: from)
        while let current = entry, current.index < to {
            union.append(current)
            entry = try reader.nextEntry()
        }
    }
    #expect(union == all)

    // skip(to:) lands on the first returned entry at or after the index.
    let reader = try ArchiveReader(path: path)
    #expect(try reader.skip(to: 3)?.path == "empty.txt")
    #expect(try reader.skip(to: 100) == nil)
    #expect(reader.currentEntry == nil)

    // Reading part of an entry, then moving on; the old source then refuses to read.
    let partial = try ArchiveReader(path: path)
    #expect(try partial.skip(to: 2)?.path == "big.bin")
    let bigSource = partial.entrySource()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
    defer { buffer.deallocate() }
    #expect(try bigSource.read(into: buffer) > 0)
    #expect(try partial.nextEntry()?.path == "empty.txt")
    #expect(try readAll(partial.entrySource()) == [])
    #expect(throws: InputError.self) { try bigSource.read(into: buffer) }
}

@Test func truncatedArchivesThrowNamingTheArchive() throws {
    let f = try fixtures()
    try withTempDir { dir in
        for (file, keep) in [("a.tar.gz", 0.5), ("plain.tar", 0.5), ("a.tar.xz", 0.6), ("a.tar.bz2", 0.5),
                             ("a.zip", 0.5), ("s.zip", 0.98)] {
            let path = "\(dir)/\(file)"
            let whole = try bytes(f.path(file))
            try write(Array(whole[..<Int(Double(whole.count) * keep)]), to: path)
            let error = expectInputError { try readWholeArchive(path) }
            #expect(error?.source.hasPrefix(path) == true, "\(file): \(String(describing: error))")
        }
        // Mid-entry truncation names the entry.
        let path = "\(dir)/mid.tar"
        try write(Array(try bytes(f.path("pax.tar"))[..<(1 << 20)]), to: path)
        let reader = try ArchiveReader(path: path)
        #expect(try reader.skip(to: 2)?.path == "big.bin")
        let error = expectInputError { _ = try readAll(reader.entrySource()) }
        #expect(error?.source == "\(path)!big.bin")
        #expect(error?.reason.isEmpty == false)
        // The reader is finished after an error.
        #expect(throws: InputError.self) { try reader.nextEntry() }
    }
}

@Test func corruptOrNonArchivesThrowNamingTheArchive() throws {
    let f = try fixtures()
    try withTempDir { dir in
        // Not an archive at all, or missing.
        let notes = "\(dir)/notes.tar"
        try write(Array(String(repeating: "plain text, not a tar file\n", count: 100).utf8), to: notes)
        #expect(expectInputError { _ = try ArchiveReader(path: notes) }?.source == notes)
        #expect(expectInputError { _ = try ArchiveReader(path: "\(dir)/missing.zip") }?.source == "\(dir)/missing.zip")

        // Corrupt data inside big.bin of a zip, and in the middle of compressed tars (the gzip
        // case is mostly stored blocks: only the CRC, checked at the end, reveals it).
        for file in ["a.zip", "a.tar.gz", "a.tar.bz2", "a.tar.xz"] {
            let path = "\(dir)/\(file)"
            var content = try bytes(f.path(file))
            for i in (content.count / 2)..<(content.count / 2 + 200) { content[i] ^= 0xa5 }
            try write(content, to: path)
            let error = expectInputError { try readWholeArchive(path) }
            #expect(error?.source.hasPrefix(path) == true, "\(file): \(String(describing: error))")
            if file == "a.zip" { #expect(error?.source == "\(path)!big.bin") }
            if file == "a.tar.gz" { #expect(error?.reason.contains("corrupt gzip data") == true) }
        }
    }
}

@Test func archiveEntryBombGuardThrows() throws {
    let path = try fixtures().path("z.tar.gz")
    let reader = try ArchiveReader(path: path, maxEntryBytes: 1 << 20)
    #expect(try reader.nextEntry()?.path == "zeros.bin")
    let error = expectInputError { _ = try readAll(reader.entrySource()) }
    #expect(error?.source == "\(path)!zeros.bin")
    #expect(error?.reason.contains("decompression bomb guard") == true)
    // At the limit it reads fine.
    let ok = try ArchiveReader(path: path, maxEntryBytes: 8 << 20)
    _ = try ok.nextEntry()
    #expect(try readAll(ok.entrySource()).count == 8 << 20)
    let unlimited = try ArchiveReader(path: path, maxEntryBytes: .max)
    _ = try unlimited.nextEntry()
    #expect(try readAll(unlimited.entrySource()).count == 8 << 20)
}

@Test func archiveExtensions() {
    for yes in ["a.tar", "a.tar.gz", "a.tgz", "a.tar.bz2", "a.tbz2", "a.tar.xz", "a.txz", "a.zip", "A.ZIP", "x/y.TAR.GZ"] {
        #expect(ArchiveReader.isArchive(path: yes), "\(yes)")
    }
    for no in ["a.gz", "a.txt", "tar", "a.tar.gz.txt", "a.xz"] {
        #expect(!ArchiveReader.isArchive(path: no), "\(no)")
    }
}
