#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a map task wrote: per reduce partition, records and bytes (the statistics that
/// skew detection and the run summary read).
@usableFromInline struct MapOutputStats {
    var records: [Int]
    var bytes: [Int64]
    /// The task's most frequent keys: (key as text, estimated records).
    @usableFromInline var hotKeys: [(String, Int)] = []
    /// Records the heavy-hitter sketch saw (before any map-side combine): the base of a hot
    /// key's share.
    @usableFromInline var sketched = 0

    /// Takes the task's most frequent keys from its sketch.
    @inlinable mutating func record<K>(_ sketch: HeavyHitters<K>) {
        hotKeys = sketch.top()
        sketched = sketch.tick
    }
}

/// Buffers a map task's records per reduce partition in binary blocks; when the buffered
/// bytes exceed the memory budget it spills them to a run file and carries on. `commit`
/// writes one partitioned file (Spark's layout) under a temporary name, concatenating the
/// runs' segments partition by partition when it spilled. Nothing is `fsync`'d: an output a
/// machine's crash damaged fails its checksums when read, and its map task runs again.
@usableFromInline final class PartitionedWriter {
    @usableFromInline let partitions: Int
    // Touched per record: no dynamic exclusivity checks (three per record cost 8 % of a
    // spilling wordcount).
    @usableFromInline @exclusivity(unchecked) var buffers: [BlockBuffer]
    @usableFromInline @exclusivity(unchecked) var buffered = 0
    @usableFromInline let budget: Int
    private let spillPrefix: String
    private var runs: [(path: String, offsets: [Int64])] = []
    @usableFromInline @exclusivity(unchecked) var recordCounts: [Int]
    let metrics: TaskMetrics

    @usableFromInline init(partitions: Int, budget: Int, spillPrefix: String, metrics: TaskMetrics) {
        self.partitions = partitions
        self.budget = max(budget, 1 << 16)
        self.spillPrefix = spillPrefix
        self.metrics = metrics
        if let kept = BytesTableShelf.takeObject(KeptBlockBuffers.self), kept.buffers.count == partitions {
            buffers = []
            swap(&buffers, &kept.buffers) // sole owner: appending must not copy
        } else {
            buffers = Array(repeating: BlockBuffer(), count: partitions)
        }
        recordCounts = Array(repeating: 0, count: partitions)
    }

    /// Appends a record to `partition`, encoded by `encode` (inlined with it into the caller's
    /// loop: a spilling wordcount writes tens of millions of records through here).
    @inlinable @inline(__always) func add(partition: Int, _ encode: (inout ByteWriter) -> Void) throws {
        let before = buffers[partition].bytes.count
        buffers[partition].append(encode)
        recordCounts[partition] += 1
        buffered += buffers[partition].bytes.count - before
        if buffered > budget { try spill() }
    }

    /// Bytes held in memory now.
    var bufferedBytes: Int { buffered }

    /// Writes the buffered blocks as one run and frees them.
    @usableFromInline func spill() throws {
        guard buffered > 0 else { return }
        let path = "\(spillPrefix).run\(runs.count)"
        let offsets = try writePartitioned(to: path)
        runs.append((path, offsets))
        metrics.spills += 1
        metrics.spillBytes += offsets.last ?? 0
    }

    private func writePartitioned(to path: String) throws -> [Int64] {
        let file = try OutputFile(path: path)
        var offsets: [Int64] = [0]
        for p in 0..<partitions {
            buffers[p].seal()
            try file.write(buffers[p].bytes.bytes)
            buffers[p].clear()
            offsets.append(file.offset)
        }
        buffered = 0
        try PartitionedWriter.writeFooter(file, offsets: offsets, partitions: partitions)
        try file.finish()
        return offsets
    }

    static func writeFooter(_ file: OutputFile, offsets: [Int64], partitions: Int) throws {
        var index = ByteWriter(capacity: offsets.count * 8 + BlockFormat.footerSize)
        for o in offsets { index.writeFixed(o) }
        let crc = index.bytes.withUnsafeBytes { BlockFormat.crc($0) }
        index.writeFixed(UInt32(partitions))
        index.writeFixed(crc)
        index.writeFixed(BlockFormat.magic)
        try file.write(index.bytes)
    }

    /// Writes the final partitioned file at `path` and returns what went into each partition.
    @usableFromInline func commit(to path: String) throws -> MapOutputStats {
        let offsets: [Int64]
        if runs.isEmpty {
            offsets = try writePartitioned(to: path)
        } else {
            try spill()
            offsets = try mergeRuns(into: path)
        }
        metrics.shuffleBytesWritten += offsets.last ?? 0
        metrics.recordsWritten += recordCounts.reduce(0, +)
        // The emptied buffers, grown to this task's size, serve the worker's next task.
        BytesTableShelf.putObject(KeptBlockBuffers(buffers))
        buffers = []
        return MapOutputStats(records: recordCounts, bytes: (0..<partitions).map { offsets[$0 + 1] - offsets[$0] })
    }

    private func mergeRuns(into path: String) throws -> [Int64] {
        let out = try OutputFile(path: path)
        // Keep at most 128 runs open at once (descriptors are finite); beyond, reopen per use.
        var open: [Int: BlockFileReader] = [:]
        func reader(_ r: Int) throws -> BlockFileReader {
            if let existing = open[r] { return existing }
            let fresh = try BlockFileReader(path: runs[r].path)
            if open.count < 128 { open[r] = fresh }
            return fresh
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        var offsets: [Int64] = [0]
        for p in 0..<partitions {
            for (r, run) in runs.enumerated() {
                var at = run.offsets[p]
                let end = run.offsets[p + 1]
                guard at < end else { continue }
                let source = try reader(r)
                while at < end {
                    let n = Int(min(Int64(chunk.count), end - at))
                    let slice = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<n])
                    try source.readExactly(slice, at: at)
                    try out.write(UnsafeRawBufferPointer(slice))
                    at += Int64(n)
                }
            }
            offsets.append(out.offset)
        }
        try PartitionedWriter.writeFooter(out, offsets: offsets, partitions: partitions)
        try out.finish()
        for run in runs { unlink(run.path) }
        runs.removeAll()
        return offsets
    }

    /// Deletes spill runs (after a failure).
    func discard() {
        for run in runs { unlink(run.path) }
        runs.removeAll()
    }
}

/// A map task's emptied partition buffers, kept for the worker's next task of the stage: a
/// map output of a few hundred MiB grows each buffer by doubling, and fresh memory costs a
/// page fault and a page of zeroes per 4 KiB (a fifth of a sort's CPU time on this path).
final class KeptBlockBuffers {
    var buffers: [BlockBuffer]
    init(_ buffers: [BlockBuffer]) { self.buffers = buffers }
}
