#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CArchive

/// One entry (member) of an archive, as described by its header.
public struct ArchiveEntry: Sendable, Hashable {
    /// The name inside the archive, exactly as stored. Names such as `../x` or `/abs/x` are
    /// kept as plain strings: entries are only ever streamed, never extracted to disk.
    public let path: String
    /// The uncompressed size declared by the header, when the format records one.
    public let size: Int64?
    /// `true` for regular files with data of their own; `false` for directories, symbolic
    /// links, devices, FIFOs and hard links (whose data belongs to an earlier entry).
    public let isRegularFile: Bool
    /// 0-based ordinal among *all* entries of the archive, regular or not. Stable from run
    /// to run, so it can be used to split one archive's entries across several tasks.
    public let index: Int
}

/// Reads the entries of a tar (ustar, GNU, pax; plain or compressed with gzip, bzip2, xz,
/// lzma, zstd or compress) or zip archive, one after the other, streaming each entry's
/// data through libarchive. Nothing is ever written to disk.
///
/// Usage:
/// ```
/// let reader = try ArchiveReader(path: "logs.tar.gz")
/// while let entry = try reader.nextEntry() {
///     let source = reader.entrySource()   // name: "logs.tar.gz!2024/app.log"
///     ... read source until it returns 0 (or stop early) ...
/// }
/// ```
///
/// - `nextEntry()` skips non-regular entries itself (directories, symlinks, hard links, ...)
///   unless the reader was created with `includeNonRegular: true`; their `index` still
///   counts, so indices are the same either way.
/// - Moving to the next entry without reading (all of) the current one's data is fine:
///   libarchive skips the rest (seeking in plain tar and zip files; compressed tars must
///   still be decompressed, but nothing is copied out). To process only the entries with
///   `index` in `[from, to)`, call `skip(to: from)` and stop once `entry.index >= to`.
/// - Errors (not an archive, corrupt or truncated data, unreadable file) are `InputError`s
///   whose `source` is the archive path, or `archive!entry` for errors in an entry's data,
///   with libarchive's message in the reason. Once an error is thrown, the reader is done.
/// - An entry whose data expands beyond `maxEntryBytes` throws (decompression bomb guard).
/// - Gzip-compressed archives (recognised by their magic bytes) are decompressed by
///   `GzipSource` rather than libarchive, whose gzip filter does not check the CRC: corrupt
///   data is then detected. Corruption that only the CRC reveals shows up at the end of the
///   stream: the `nextEntry()` that reaches the end of the archive reads the rest of the
///   gzip stream and throws. (bzip2 and xz data are checked by their libraries as they go.)
///
/// Not thread-safe: use one reader from one task at a time (several readers may read the
/// same archive concurrently).
public final class ArchiveReader {
    /// The default cap on one entry's uncompressed size: 64 GiB.
    public static let defaultMaxEntryBytes: Int64 = 64 << 30
    /// Block size used to read the archive file.
    static let blockSize = 1 << 20

    /// The archive file.
    public let archivePath: String
    /// Reading more than this many bytes from one entry throws; `Int64.max` means no limit.
    public let maxEntryBytes: Int64
    /// Whether `nextEntry()` also returns directories, symlinks and other non-regular entries.
    public let includeNonRegular: Bool
    /// The entry whose data `entrySource()` reads; `nil` before the first `nextEntry()` and
    /// after the end of the archive.
    public private(set) var currentEntry: ArchiveEntry?

    private let archive: OpaquePointer
    /// The gzip layer of a `.tar.gz`, feeding libarchive through a read callback.
    private let gzipFeed: GzipFeed?
    /// A thread-local `C.UTF-8` locale set around libarchive calls that convert entry names
    /// (zip stores UTF-8 names, which libarchive cannot convert to the default "C" locale).
    private let nameLocale: NameLocale
    private var nextIndex = 0
    private var generation = 0
    private var entryBytes: Int64 = 0
    private var entryDone = false
    private var atEnd = false
    private var failure: InputError?

    /// Opens the archive at `path` and recognises its format; throws an `InputError` if the
    /// file cannot be opened or is not a supported archive.
    public init(path: String, maxEntryBytes: Int64 = ArchiveReader.defaultMaxEntryBytes,
                includeNonRegular: Bool = false) throws {
        let nameLocale = NameLocale()
        guard let archive = archive_read_new() else {
            throw InputError(source: path, reason: "cannot allocate libarchive reader")
        }
        // Explicit formats and in-process filters only: no external helper programs, and no
        // exotic formats on untrusted input. (The tar reader covers ustar, GNU tar and pax.)
        archive_read_support_format_tar(archive)
        archive_read_support_format_gnutar(archive)
        archive_read_support_format_zip(archive)
        archive_read_support_filter_gzip(archive)
        archive_read_support_filter_bzip2(archive)
        archive_read_support_filter_xz(archive)
        archive_read_support_filter_lzma(archive)
        archive_read_support_filter_zstd(archive)
        archive_read_support_filter_compress(archive)
        var feed: GzipFeed?
        let opened: Int32
        if GzipSource.looksLikeGzip(path: path) {
            do {
                feed = try GzipFeed(path: path)
            } catch {
                archive_read_free(archive)
                throw error
            }
            let client = Unmanaged.passUnretained(feed!).toOpaque()
            opened = nameLocale.run { archive_read_open(archive, client, nil, gzipFeedRead, nil) }
        } else {
            opened = nameLocale.run { archive_read_open_filename(archive, path, ArchiveReader.blockSize) }
        }
        if opened != ARCHIVE_OK {
            let message = ArchiveReader.message(archive, feed)
            archive_read_free(archive)
            throw InputError(source: path, reason: "cannot open archive: \(message)")
        }
        self.archive = archive
        self.gzipFeed = feed
        self.nameLocale = nameLocale
        self.archivePath = path
        self.maxEntryBytes = max(0, maxEntryBytes)
        self.includeNonRegular = includeNonRegular
    }

    deinit { archive_read_free(archive) }

    /// `true` when the file name has an archive extension (case-insensitive): `.tar`,
    /// `.tar.gz`, `.tgz`, `.tar.bz2`, `.tbz2`, `.tbz`, `.tar.xz`, `.txz`, `.tar.zst`, `.tzst`, `.zip`.
    public static func isArchive(path: String) -> Bool {
        let lower = path.lowercased()
        return archiveSuffixes.contains { lower.hasSuffix($0) }
    }

    private static let archiveSuffixes = [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz",
        ".tar.zst", ".tzst", ".zip",
    ]

    /// Advances to the next entry (the next regular file unless `includeNonRegular`) and
    /// returns it, or `nil` at the end of the archive. Unread data of the previous entry is
    /// skipped; sources from `entrySource()` for earlier entries stop working.
    public func nextEntry() throws -> ArchiveEntry? {
        if let failure { throw failure }
        if atEnd { return nil }
        do {
            while true {
                guard let entry = try readHeader() else {
                    atEnd = true
                    currentEntry = nil
                    generation += 1
                    return nil
                }
                if entry.isRegularFile || includeNonRegular {
                    return entry
                }
            }
        } catch let error as InputError {
            failure = error
            currentEntry = nil
            generation += 1
            throw error
        }
    }

    /// Advances to the first returnable entry whose `index` is at least `index` (see
    /// `nextEntry()`), skipping earlier ones without reading their data; `nil` if there is none.
    public func skip(to index: Int) throws -> ArchiveEntry? {
        while let entry = try nextEntry() {
            if entry.index >= index { return entry }
        }
        return nil
    }

    /// A source streaming the data of the current entry, named `"archive!entry"`. Valid until
    /// the reader moves to another entry; reading it afterwards throws. Several sources for the
    /// same entry share one position.
    public func entrySource() -> ArchiveEntrySource {
        precondition(currentEntry != nil, "ArchiveReader.entrySource() called without a current entry")
        return ArchiveEntrySource(reader: self, entry: currentEntry!, generation: generation)
    }

    /// Lists the entries of the archive at `path` (headers only; data is skipped), e.g. to
    /// count them before splitting them across tasks.
    public static func listEntries(path: String, includeNonRegular: Bool = false) throws -> [ArchiveEntry] {
        let reader = try ArchiveReader(path: path, includeNonRegular: includeNonRegular)
        var entries: [ArchiveEntry] = []
        while let entry = try reader.nextEntry() { entries.append(entry) }
        return entries
    }

    // MARK: - Internals

    private func readHeader() throws -> ArchiveEntry? {
        let previous = currentEntry
        currentEntry = nil
        generation += 1
        entryBytes = 0
        entryDone = false
        var header: OpaquePointer?
        var status = nameLocale.run { archive_read_next_header(archive, &header) }
        var retries = 0
        while status == ARCHIVE_RETRY && retries < 3 {
            retries += 1
            status = nameLocale.run { archive_read_next_header(archive, &header) }
        }
        let after = previous.map { " (after entry '\($0.path)')" } ?? ""
        if status == ARCHIVE_EOF {
            // Read the rest of the gzip stream so that its CRC and length get checked.
            do {
                try gzipFeed?.drain()
            } catch let error as InputError {
                throw InputError(source: archivePath, reason: "at the end of the archive\(after): \(error.reason)")
            }
            return nil
        }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let header else {
            throw InputError(source: archivePath,
                             reason: "cannot read entry #\(nextIndex) header\(after): \(ArchiveReader.message(archive, gzipFeed))")
        }
        let type = UInt32(archive_entry_filetype(header)) & 0o170000
        let entry = ArchiveEntry(
            path: nameLocale.run { ArchiveReader.pathname(header) },
            size: archive_entry_size_is_set(header) != 0 ? archive_entry_size(header) : nil,
            isRegularFile: type == 0o100000 && archive_entry_hardlink(header) == nil,
            index: nextIndex)
        nextIndex += 1
        currentEntry = entry
        return entry
    }

    fileprivate func readData(into buffer: UnsafeMutableRawBufferPointer, generation: Int,
                              entry: ArchiveEntry) throws -> Int {
        let name = "\(archivePath)!\(entry.path)"
        guard generation == self.generation else {
            throw failure ?? InputError(source: name, reason: "archive entry read after the reader moved past it")
        }
        if entryDone || buffer.isEmpty { return 0 }
        if let size = entry.size, size > maxEntryBytes {
            throw fail(InputError(source: name, offset: 0,
                                  reason: "decompression bomb guard: entry declares \(size) bytes, beyond \(maxEntryBytes) bytes"))
        }
        // At most one byte past the limit, so that the guard trips exactly.
        let room = min(buffer.count, Int(clamping: min(maxEntryBytes - entryBytes, Int64.max - 1) + 1))
        var retries = 0
        while true {
            let n = archive_read_data(archive, buffer.baseAddress, room)
            if n > 0 {
                entryBytes += Int64(n)
                if entryBytes > maxEntryBytes {
                    throw fail(InputError(source: name, offset: entryBytes - Int64(n),
                                          reason: "decompression bomb guard: expands beyond \(maxEntryBytes) bytes"))
                }
                return n
            }
            if n == 0 {
                entryDone = true
                return 0
            }
            if n == Int(ARCHIVE_RETRY) && retries < 3 {
                retries += 1
                continue
            }
            throw fail(InputError(source: name, offset: entryBytes,
                                  reason: "cannot read archive entry data: \(ArchiveReader.message(archive, gzipFeed))"))
        }
    }

    /// Records `error` as final: the entry and the reader are unusable afterwards.
    private func fail(_ error: InputError) -> InputError {
        failure = error
        currentEntry = nil
        generation += 1
        return error
    }

    /// The reason for a failed libarchive call: the gzip layer's error if it failed, else
    /// libarchive's error string.
    private static func message(_ archive: OpaquePointer, _ feed: GzipFeed?) -> String {
        if let error = feed?.error { return error.reason }
        return archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
    }

    /// The entry name: UTF-8 when libarchive can provide it, else the raw stored bytes
    /// (invalid UTF-8 repaired with U+FFFD).
    private static func pathname(_ header: OpaquePointer) -> String {
        if let utf8 = archive_entry_pathname_utf8(header) { return String(cString: utf8) }
        if let raw = archive_entry_pathname(header) { return String(cString: raw) }
        return ""
    }
}

/// The data of one archive entry as a `ByteSource` named `"archive!entry"`, from
/// `ArchiveReader.entrySource()`. Keeps its reader alive; valid until the reader moves on.
public final class ArchiveEntrySource: ByteSource {
    /// The entry being read.
    public let entry: ArchiveEntry
    public let name: String
    private let reader: ArchiveReader
    private let generation: Int

    fileprivate init(reader: ArchiveReader, entry: ArchiveEntry, generation: Int) {
        self.reader = reader
        self.entry = entry
        self.generation = generation
        name = "\(reader.archivePath)!\(entry.path)"
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try reader.readData(into: buffer, generation: generation, entry: entry)
    }
}

/// Owns a `C.UTF-8` locale and runs code with it as the calling thread's locale
/// (`uselocale` is per thread; the previous locale is restored afterwards).
private final class NameLocale {
    #if canImport(Glibc)
    private let locale: locale_t?

    init() { locale = newlocale(Int32(1) << LC_CTYPE, "C.UTF-8", nil) }

    deinit { if let locale { freelocale(locale) } }

    func run<T>(_ body: () throws -> T) rethrows -> T {
        guard let locale, let previous = uselocale(locale) else { return try body() }
        defer { uselocale(previous) }
        return try body()
    }
    #else
    func run<T>(_ body: () throws -> T) rethrows -> T { try body() }
    #endif
}

/// The decompressed stream of a gzip-compressed archive, handed to libarchive in 1 MiB
/// blocks by `gzipFeedRead`. Remembers the error that made a read fail.
private final class GzipFeed {
    let source: GzipSource
    let buffer: UnsafeMutableRawBufferPointer
    var error: InputError?

    init(path: String) throws {
        source = try GzipSource(path: path)
        buffer = .allocate(byteCount: ArchiveReader.blockSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Reads to the end of the gzip stream (which verifies the CRC of the last member).
    func drain() throws {
        if let error { throw error }
        while try source.read(into: buffer) > 0 {}
    }
}

/// libarchive read callback over a `GzipFeed` passed as the (unretained) client data.
private func gzipFeedRead(_ archive: OpaquePointer?, _ client: UnsafeMutableRawPointer?,
                          _ block: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
    let feed = Unmanaged<GzipFeed>.fromOpaque(client!).takeUnretainedValue()
    do {
        let n = try feed.source.read(into: feed.buffer)
        block?.pointee = UnsafeRawPointer(feed.buffer.baseAddress)
        return n
    } catch let error as InputError {
        feed.error = error
    } catch {
        feed.error = InputError(source: feed.source.name, reason: "\(error)")
    }
    return Int(ARCHIVE_FATAL)
}
