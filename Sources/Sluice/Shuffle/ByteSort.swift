#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys

/// One record in a `ByteRecordSorter`'s sort buffer: the key's first eight bytes as a
/// big-endian integer (complemented for a descending sort), so most comparisons are one
/// integer compare, and where the key starts in the arena. 16 bytes: the sort moves these,
/// never the records.
@usableFromInline struct SortEntry {
    @usableFromInline var prefix: UInt64
    @usableFromInline var offset: UInt32
    /// The key's length, and in the top bit the record's side (0 or 1; a join's two inputs).
    @usableFromInline var length: UInt32

    @inlinable var keyLength: Int { Int(length & 0x7FFF_FFFF) }
    @inlinable var side: Int { Int(length >> 31) }

    @inlinable init(prefix: UInt64, offset: UInt32, length: UInt32) {
        self.prefix = prefix
        self.offset = offset
        self.length = length
    }

    /// The normalised prefix of a key: its first eight bytes, big-endian, zero-padded.
    @inlinable @inline(__always) static func prefix(_ base: UnsafeRawPointer, _ count: Int) -> UInt64 {
        if count >= 8 { return UInt64(bigEndian: base.loadUnaligned(as: UInt64.self)) }
        var p: UInt64 = 0
        for i in 0..<count { p |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << (56 - 8 * UInt64(i)) }
        return p
    }
}

/// Records in the sort shuffle's wire format: `varint keyLength, key, varint valueLength,
/// value`. The value's length travels with it so a reducer can index records without
/// decoding them.
@usableFromInline enum SortRecord {
    /// Appends a record to `w`: the key bytes, then the value encoded by `encode`.
    @inlinable @inline(__always) static func write(key: UnsafeRawBufferPointer, to w: inout ByteWriter,
                                                     value encode: (inout ByteWriter) -> Void) {
        w.writeVarint(UInt64(key.count))
        w.write(raw: key)
        writeValue(to: &w, encode)
    }

    /// Appends a value encoded by `encode`, preceded by its length.
    @inlinable @inline(__always) static func writeValue(to w: inout ByteWriter, _ encode: (inout ByteWriter) -> Void) {
        let mark = w.count
        w.write(0)
        encode(&w)
        let n = w.count - mark - 1
        if n < 0x80 {
            w.bytes[mark] = UInt8(n)
        } else {
            // Rare (values of 128 bytes or more): widen the length in place.
            var len = ByteWriter(capacity: 10)
            len.writeVarint(UInt64(n))
            w.bytes.replaceSubrange(mark..<(mark + 1), with: len.bytes)
        }
    }

    /// Reads a varint at `p[i]`, advancing `i`; nil when it runs past `end` or is too long.
    @inlinable @inline(__always) static func varint(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Int? {
        var result = 0, shift = 0
        while i < end && shift < 35 {
            let b = p[i]
            i += 1
            result |= Int(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }
}

/// Sorts byte-keyed records by key, bytewise (memcmp order; shorter first on a tie), stably
/// (equal keys keep their arrival order), spilling sorted runs when the budget fills and
/// merging them with a heap.
///
/// The layout follows Spark's `UnsafeExternalSorter` and DuckDB's sort: records are copied
/// into one large arena as they arrive (whole shuffle blocks at a time, never an allocation
/// per record), and the sort moves 16-byte `SortEntry`s holding a normalised key prefix and
/// the key's offset. The entries are radix-sorted on the prefix (LSD, eight bits per pass,
/// passes where every entry has the same byte skipped; stable, so arrival order survives),
/// and only runs of equal prefixes are compared on their full keys.
@usableFromInline final class ByteRecordSorter {
    private var budget: Int
    private var spillPrefix: String
    private var metrics: TaskMetrics
    private var ascending: Bool
    private var arena: UnsafeMutableRawPointer
    private var arenaCapacity: Int
    private var arenaUsed = 0
    private var entries: UnsafeMutablePointer<SortEntry>
    private var entryCapacity: Int
    private var entryCount = 0
    /// The radix sort's second entry array, of `entryCapacity`: kept, like the arena, so that
    /// each sort does not map and fault in tens of MiB afresh.
    private var scratch: UnsafeMutablePointer<SortEntry>?
    private var runs: [String] = []
    /// Arena pages where shuffle segments are mapped (`addMapped`): made anonymous again
    /// whenever the arena is emptied.
    private var mapped: [Range<Int>] = []

    /// Arena offsets are 32-bit: a sort buffer spills before it reaches 4 GiB.
    private static let maxArena = Int(UInt32.max)
    /// Huge pages: the arena is touched once, sequentially, and a 4 KiB page fault per
    /// 4 KiB of records cost a tenth of the sort's CPU time.
    private static let hugePage = 2 << 20

    private init(budget: Int, spillPrefix: String, metrics: TaskMetrics, ascending: Bool) throws {
        self.budget = max(budget, 1 << 16)
        self.spillPrefix = spillPrefix
        self.metrics = metrics
        self.ascending = ascending
        // Reserved whole at once (up to 1 GiB): the pages cost nothing until touched, and
        // the arena never has to be copied to grow.
        arenaCapacity = min(self.budget, 1 << 30)
        arena = try ByteRecordSorter.allocateArena(arenaCapacity)
        entryCapacity = 1 << 14
        entries = .allocate(capacity: entryCapacity)
    }

    /// The arena is mapped here rather than allocated, so that shuffle segments can be mapped
    /// into it.
    private static func allocateArena(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw SystemError("cannot map a sort buffer of \(bytes) bytes")
        }
        #if os(Linux)
        if bytes >= hugePage { _ = madvise(p, bytes, MADV_HUGEPAGE) }
        #endif
        return p
    }

    /// Empties the arena, turning mapped segments back into anonymous pages.
    private func emptyArena() throws {
        while let range = mapped.last {
            guard mmap(arena + range.lowerBound, range.count, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED else {
                throw SystemError("cannot remap \(range.count) bytes of a sort buffer")
            }
            mapped.removeLast()
        }
        arenaUsed = 0
        entryCount = 0
    }

    /// A sorter for a task: the one the worker's previous task of this stage kept (its
    /// buffers already faulted in), or a new one.
    @usableFromInline static func make(budget: Int, spillPrefix: String, metrics: TaskMetrics,
                                       ascending: Bool) throws -> ByteRecordSorter {
        guard let kept = BytesTableShelf.takeObject(ByteRecordSorter.self), kept.budget == max(budget, 1 << 16) else {
            return try ByteRecordSorter(budget: budget, spillPrefix: spillPrefix, metrics: metrics, ascending: ascending)
        }
        kept.spillPrefix = spillPrefix
        kept.metrics = metrics
        kept.ascending = ascending
        return kept
    }

    /// Keeps `sorter`, emptied, for the worker's next task of the stage (unless its arena
    /// could not be emptied: then it is dropped).
    @usableFromInline static func keep(_ sorter: ByteRecordSorter) {
        sorter.discardRuns()
        guard (try? sorter.emptyArena()) != nil else { return }
        BytesTableShelf.putObject(sorter)
    }

    deinit {
        munmap(arena, arenaCapacity)
        entries.deallocate()
        scratch?.deallocate()
        discardRuns()
    }

    private func discardRuns() {
        for r in runs { unlink(r) }
        runs.removeAll()
    }

    /// Bytes the buffer holds now: arena, entries and the radix sort's scratch copy of them.
    private var memory: Int { arenaUsed + entryCount * 2 * MemoryLayout<SortEntry>.stride }

    /// Reads the blocks of `[start, end)` of a shuffle file (records in `SortRecord` format)
    /// straight into the arena — each read also fetches the next block's header — checks
    /// their checksums and indexes their records; returns how many it added.
    @usableFromInline func add(_ reader: BlockFileReader, from start: Int64, to end: Int64, side: Int = 0) throws -> Int {
        guard start < end else { return 0 }
        if end - start >= ByteRecordSorter.mapAtLeast, let added = try addMapped(reader, from: start, to: end, side: side) {
            return added
        }
        let h = BlockFormat.headerSize
        var header = [UInt8](repeating: 0, count: h)
        guard end - start >= Int64(h) else { throw reader.fail("truncated block header at byte \(start)") }
        try header.withUnsafeMutableBytes { try reader.readExactly($0, at: start) }
        var offset = start + Int64(h)
        var added = 0
        while true {
            let (length, count, crc) = header.withUnsafeBytes { ByteRecordSorter.blockHeader($0.baseAddress!) }
            guard Int64(length) <= end - offset else {
                throw reader.fail("block at byte \(offset) runs past its segment (truncated or corrupt)")
            }
            let rest = end - offset - Int64(length)
            guard rest == 0 || rest >= Int64(h) else { throw reader.fail("truncated block header at byte \(offset + Int64(length))") }
            let more = rest > 0 ? h : 0
            if entryCount > 0 && (memory + length + count * 2 * MemoryLayout<SortEntry>.stride > budget
                                  || arenaUsed + length + more > ByteRecordSorter.maxArena) {
                try spillRun()
            }
            try reserveArena(length + more)
            let payload = UnsafeMutableRawBufferPointer(start: arena + arenaUsed, count: length + more)
            try reader.readExactly(payload, at: offset)
            try indexChecked(reader, at: arenaUsed, length: length, count: count, crc: crc, blockAt: offset - Int64(h), side: side)
            if more > 0 { header.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[length...])) } }
            arenaUsed += length
            added += count
            offset += Int64(length + more)
            if more == 0 { return added }
        }
    }

    /// Segments this large are mapped rather than read.
    private static let mapAtLeast: Int64 = 1 << 20
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Like `add`, but maps the segment into the arena instead of reading it: no copy, and no
    /// fresh memory to fault in — the pages are the page cache's, which the map task has just
    /// filled (a 10 M-row join spent a tenth of its CPU time zeroing the arena's new pages).
    /// Checks every block's checksum in place. Nil when the segment is better read: it does
    /// not fit the budget or the arena, or the file is shorter than its index says (reading
    /// then reports it, where touching a mapped page past the end would kill the process).
    private func addMapped(_ reader: BlockFileReader, from start: Int64, to end: Int64, side: Int) throws -> Int? {
        let page = ByteRecordSorter.pageSize
        let lead = Int(start % Int64(page)), length = Int(end - start)
        guard end <= reader.size else { return nil }
        // Records are at least 2 bytes; an entry and its radix scratch copy take 32.
        func fits() -> Bool {
            let at = (arenaUsed + page - 1) / page * page
            return at + (lead + length + page - 1) / page * page <= min(arenaCapacity, ByteRecordSorter.maxArena)
                && memory + (at - arenaUsed) + lead + length + length / 16 * 2 * MemoryLayout<SortEntry>.stride <= budget
        }
        if !fits() && entryCount > 0 { try spillRun() }
        guard fits() else { return nil }
        let at = (arenaUsed + page - 1) / page * page
        let mappedBytes = (lead + length + page - 1) / page * page
        guard reader.map(mappedBytes, from: start - Int64(lead), at: arena + at) else { return nil }
        mapped.append(at..<at + mappedBytes)
        let h = BlockFormat.headerSize
        var offset = at + lead
        let limit = at + lead + length
        var added = 0
        while offset < limit {
            guard limit - offset >= h else { throw reader.fail("truncated block header at byte \(start + Int64(offset - at - lead))") }
            let (length, count, crc) = ByteRecordSorter.blockHeader(arena + offset)
            let blockAt = start + Int64(offset - at - lead)
            guard length <= limit - offset - h else {
                throw reader.fail("block at byte \(blockAt + Int64(h)) runs past its segment (truncated or corrupt)")
            }
            try indexChecked(reader, at: offset + h, length: length, count: count, crc: crc, blockAt: blockAt, side: side)
            TaskProgress.advance()
            added += count
            offset += h + length
        }
        // Past the mapping's last page: reads into the arena must not land on mapped pages.
        arenaUsed = at + mappedBytes
        return added
    }

    /// A block header's fields: payload length, record count, CRC-32.
    private static func blockHeader(_ p: UnsafeRawPointer) -> (length: Int, count: Int, crc: UInt32) {
        (Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
         Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))),
         UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
    }

    /// Checks the block of `length` bytes at arena offset `at` against `crc` and indexes its
    /// `count` records; errors name the file and the block's byte `blockAt`.
    private func indexChecked(_ reader: BlockFileReader, at: Int, length: Int, count: Int, crc: UInt32,
                              blockAt: Int64, side: Int) throws {
        guard BlockFormat.crc(UnsafeRawBufferPointer(start: arena + at, count: length)) == crc else {
            throw reader.fail("checksum mismatch in block at byte \(blockAt)")
        }
        reserveEntries(count)
        do {
            try indexBlock(at: at, length: length, count: count, side: UInt32(side) << 31)
        } catch let e as CorruptDataError {
            throw reader.fail("undecodable record: \(e)")
        }
    }

    /// Indexes the `count` records of the block of `length` bytes at `start` in the arena.
    private func indexBlock(at start: Int, length: Int, count: Int, side: UInt32) throws {
        let p = UnsafePointer((arena + start).assumingMemoryBound(to: UInt8.self))
        var i = 0
        var n = 0
        let flip: UInt64 = ascending ? 0 : ~0
        while i < length {
            guard let klen = SortRecord.varint(p, &i, length), klen <= length - i, klen < 1 << 31 else {
                throw CorruptDataError("bad key length")
            }
            let key = i
            i += klen
            guard let vlen = SortRecord.varint(p, &i, length), vlen <= length - i else { throw CorruptDataError("bad value length") }
            i += vlen
            guard n < count else { throw CorruptDataError("block holds more records than its header says (\(count))") }
            entries[entryCount + n] = SortEntry(prefix: SortEntry.prefix(p + key, klen) ^ flip,
                                                offset: UInt32(start + key), length: UInt32(klen) | side)
            n += 1
        }
        guard n == count else { throw CorruptDataError("block holds \(n) records, its header says \(count)") }
        entryCount += n
    }

    private func reserveArena(_ extra: Int) throws {
        guard arenaUsed + extra > arenaCapacity else { return }
        var cap = arenaCapacity
        while cap < arenaUsed + extra { cap *= 2 }
        let fresh = try ByteRecordSorter.allocateArena(cap)
        fresh.copyMemory(from: arena, byteCount: arenaUsed)
        munmap(arena, arenaCapacity)
        arena = fresh
        arenaCapacity = cap
        mapped.removeAll() // copied: the new arena is anonymous throughout
    }

    private func reserveEntries(_ extra: Int) {
        guard entryCount + extra > entryCapacity else { return }
        var cap = entryCapacity
        while cap < entryCount + extra { cap *= 2 }
        let fresh = UnsafeMutablePointer<SortEntry>.allocate(capacity: cap)
        fresh.moveInitialize(from: entries, count: entryCount)
        entries.deallocate()
        entries = fresh
        entryCapacity = cap
        scratch?.deallocate()
        scratch = nil
    }

    /// Comparison of two entries whose first eight key bytes are equal and whose `prefix`
    /// holds the next eight (`sortEntries`): that prefix, then the key bytes after it, then
    /// the length, then arrival order (stability).
    @inline(__always) private func tieLess(_ a: SortEntry, _ b: SortEntry) -> Bool {
        if a.prefix != b.prefix { return a.prefix < b.prefix }
        let la = a.keyLength, lb = b.keyLength
        let m = min(la, lb)
        let s = min(16, m)
        if m > s {
            let c = memcmp(arena + Int(a.offset) + s, arena + Int(b.offset) + s, m - s)
            if c != 0 { return ascending ? c < 0 : c > 0 }
        }
        if la != lb { return ascending ? la < lb : la > lb }
        return a.offset < b.offset
    }

    /// Sorts the entries: LSD radix on the prefix, then each run of equal prefixes on the keys.
    private func sortEntries() {
        let n = entryCount
        guard n > 1 else { return }
        var src = entries
        if scratch == nil { scratch = .allocate(capacity: entryCapacity) }
        var dst = scratch!
        // All eight byte histograms in one pass.
        var counts = [Int](repeating: 0, count: 8 * 256)
        counts.withUnsafeMutableBufferPointer { c in
            for i in 0..<n {
                let x = src[i].prefix
                for d in 0..<8 { c[d << 8 | Int((x >> (8 * UInt64(d))) & 0xFF)] += 1 }
            }
            for d in 0..<8 {
                let h = c.baseAddress! + d << 8
                let shift = 8 * UInt64(d)
                if h[Int((src[0].prefix >> shift) & 0xFF)] == n { continue } // every entry has this byte
                var sum = 0
                for b in 0..<256 {
                    let k = h[b]
                    h[b] = sum
                    sum += k
                }
                for i in 0..<n {
                    let e = src[i]
                    let b = Int((e.prefix >> shift) & 0xFF)
                    dst[h[b]] = e
                    h[b] += 1
                }
                swap(&src, &dst)
            }
        }
        if src != entries { (entries, scratch) = (src, entries) } // the same capacity
        // Runs of equal prefixes: compare the keys.
        var i = 0
        while i < n {
            var j = i + 1
            let p = entries[i].prefix
            while j < n && entries[j].prefix == p { j += 1 }
            if j - i > 1 {
                // Bring the next eight key bytes into the entries, so most comparisons of the
                // run stay in the entry array rather than reaching into the arena.
                let flip: UInt64 = ascending ? 0 : ~0
                for k in i..<j {
                    let e = entries[k]
                    let rest = e.keyLength - 8
                    entries[k].prefix = rest > 0 ? SortEntry.prefix(arena + Int(e.offset) + 8, rest) ^ flip : flip
                }
                var run = UnsafeMutableBufferPointer(start: entries + i, count: j - i)
                run.sort { tieLess($0, $1) }
            }
            i = j
        }
    }

    /// A sorted record: key, value (its bytes, without their length) and side.
    @usableFromInline typealias Emit = (UnsafeRawBufferPointer, UnsafeRawBufferPointer, Int) throws -> Void

    /// Calls `body` with every record in sorted order.
    private func forEachSorted(_ body: Emit) rethrows {
        let p = UnsafePointer(arena.assumingMemoryBound(to: UInt8.self))
        let ahead = 16
        for k in 0..<entryCount {
            if k + ahead < entryCount { sluice_prefetch(p + Int(entries[k + ahead].offset)) }
            let e = entries[k]
            var i = Int(e.offset) + e.keyLength
            let vlen = SortRecord.varint(p, &i, arenaUsed)!
            try body(UnsafeRawBufferPointer(start: p + Int(e.offset), count: e.keyLength),
                     UnsafeRawBufferPointer(start: p + i, count: vlen), e.side)
        }
    }

    /// Sorts what is buffered and writes it as a run file; empties the buffer.
    private func spillRun() throws {
        sortEntries()
        let path = "\(spillPrefix).sort\(runs.count)"
        let out = try BlockStreamWriter(path: path)
        try forEachSorted { key, value, side in
            try out.add { w in
                w.writeVarint(UInt64(key.count) << 1 | UInt64(side)) // the side rides in the key length
                w.write(raw: key)
                w.writeVarint(UInt64(value.count))
                w.write(raw: value)
            }
        }
        let bytes = try out.finish()
        runs.append(path)
        metrics.spills += 1
        metrics.spillBytes += bytes
        try emptyArena()
    }

    /// Hands out every record in key order, then frees the buffer.
    @usableFromInline func finish(_ emit: Emit) throws {
        if runs.isEmpty {
            sortEntries()
            try forEachSorted(emit)
            try emptyArena()
            return
        }
        if entryCount > 0 { try spillRun() }
        try mergeRuns(emit)
        discardRuns()
    }

    /// A k-way merge of the runs with a binary heap of cursors ordered by (key, run index):
    /// equal keys come out in run order, which is arrival order.
    private func mergeRuns(_ emit: Emit) throws {
        let cursors = try runs.map { try SortRunCursor(path: $0, ascending: ascending) }
        var heap = cursors.indices.filter { cursors[$0].valid }
        func less(_ a: Int, _ b: Int) -> Bool {
            let x = cursors[a], y = cursors[b]
            if x.prefix != y.prefix { return x.prefix < y.prefix }
            let m = min(x.key.count, y.key.count)
            if m > 0 {
                let c = memcmp(x.key.baseAddress!, y.key.baseAddress!, m)
                if c != 0 { return ascending ? c < 0 : c > 0 }
            }
            if x.key.count != y.key.count { return ascending ? x.key.count < y.key.count : x.key.count > y.key.count }
            return a < b
        }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        while let top = heap.first {
            let c = cursors[top]
            try emit(c.key, c.value, c.side)
            try c.advance()
            if !c.valid {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            if !heap.isEmpty { siftDown(0) }
        }
    }
}

/// Writes records into checksummed blocks of a single-partition block file (a sorted run),
/// streaming: at most about a megabyte is held.
final class BlockStreamWriter {
    private let file: OutputFile
    private var buffer = BlockBuffer()

    init(path: String) throws { file = try OutputFile(path: path) }

    func add(_ encode: (inout ByteWriter) -> Void) throws {
        buffer.append(encode)
        if buffer.bytes.count >= 1 << 20 { try file.write(buffer.take()) }
    }

    /// Writes the rest and the index (one partition); returns the file's data bytes.
    func finish() throws -> Int64 {
        try file.write(buffer.take())
        let end = file.offset
        try PartitionedWriter.writeFooter(file, offsets: [0, end], partitions: 1)
        try file.finish()
        return end
    }
}

/// Reads a sorted run one record at a time, a block at a time; the current record's key and
/// value point into the cursor's block buffer until the next `advance`.
final class SortRunCursor {
    private let reader: BlockFileReader
    private var offset: Int64
    private let end: Int64
    private var block: UnsafeMutableRawBufferPointer = .allocate(byteCount: BlockFormat.targetSize * 2, alignment: 16)
    private var position = 0
    private var blockLength = 0
    private let flip: UInt64
    private(set) var valid = true
    private(set) var key = UnsafeRawBufferPointer(start: nil, count: 0)
    private(set) var value = UnsafeRawBufferPointer(start: nil, count: 0)
    private(set) var side = 0
    /// The current key's normalised prefix (complemented when descending).
    private(set) var prefix: UInt64 = 0

    init(path: String, ascending: Bool) throws {
        reader = try BlockFileReader(path: path)
        let offsets = try reader.readIndex(expectedPartitions: 1)
        offset = offsets[0]
        end = offsets[1]
        flip = ascending ? 0 : ~0
        try advance()
    }

    deinit { block.deallocate() }

    func advance() throws {
        while position >= blockLength {
            guard offset < end else {
                valid = false
                return
            }
            var consumed: Int64 = 0
            try reader.forEachBlockOnce(at: offset) { payload, _, total in
                if payload.count > block.count {
                    block.deallocate()
                    block = .allocate(byteCount: payload.count, alignment: 16)
                }
                block.baseAddress!.copyMemory(from: payload.baseAddress!, byteCount: payload.count)
                blockLength = payload.count
                consumed = total
            }
            offset += consumed
            position = 0
        }
        let p = UnsafePointer(block.baseAddress!.assumingMemoryBound(to: UInt8.self))
        guard let tagged = SortRecord.varint(p, &position, blockLength), tagged >> 1 <= blockLength - position else {
            throw reader.fail("undecodable record in a sorted run")
        }
        let klen = tagged >> 1
        side = tagged & 1
        key = UnsafeRawBufferPointer(start: p + position, count: klen)
        position += klen
        guard let vlen = SortRecord.varint(p, &position, blockLength), vlen <= blockLength - position else {
            throw reader.fail("undecodable record in a sorted run")
        }
        value = UnsafeRawBufferPointer(start: p + position, count: vlen)
        position += vlen
        prefix = SortEntry.prefix(key.baseAddress ?? UnsafeRawPointer(p), klen) ^ flip
    }
}
