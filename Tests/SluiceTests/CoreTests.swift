import Foundation
@testable import Sluice
import Testing

/// The building blocks: binary coding, the stable hash, line-aligned splits, block
/// checksums, the frame protocol, and the spilling aggregator and sorter.
@Suite("Core building blocks")
struct CoreTests {
    @Test("block and record checksums are CRC-32 (zlib's polynomial) at every length")
    func checksums() {
        // Bit by bit, from the polynomial's definition.
        func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            return ~crc
        }
        Array("123456789".utf8).withUnsafeBytes { #expect(BlockFormat.crc($0) == 0xCBF4_3926) }
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<5100).map { _ in UInt8.random(in: 0...255, using: &random) }
        bytes.withUnsafeBytes { raw in
            for n in Array(0...80) + [255, 1023, 1024, 1025, 4999] {
                for start in [0, 1, 3] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + n)])
                    #expect(BlockFormat.crc(slice) == crc32(slice), "length \(n) at \(start)")
                }
            }
        }
    }

    @Test("binary coding round-trips every built-in type")
    func coding() throws {
        func roundTrip<T: BinaryCodable & Equatable>(_ value: T) throws {
            var w = ByteWriter()
            value.encode(to: &w)
            try w.bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let decoded = try T.decode(from: &r)
                #expect(decoded == value)
                #expect(r.isAtEnd)
            }
        }
        try roundTrip(Int.min)
        try roundTrip(UInt8(200))
        try roundTrip(-0.0 as Double)
        try roundTrip(Float(3.5))
        try roundTrip("naïve ✓")
        try roundTrip(Bytes([0xFF, 0x00, 0x0A]))
        try roundTrip([Int?.none, 7])
        try roundTrip(Pair("a", [1.5, 2.5]))
        try roundTrip(Triple(true, Unit(), Bytes("x")))
        // Truncated input is an error, not a crash.
        var w = ByteWriter()
        "hello".encode(to: &w)
        try w.bytes.dropLast().withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(throws: CorruptDataError.self) { try String.decode(from: &r) }
        }
    }

    @Test("the stable hash is fixed across processes and runs")
    func stableHash() {
        // Pinned: a change would re-partition every shuffle differently from older binaries.
        #expect(StableHasher.hash("sluice") == 17_280_250_896_873_489_825)
        #expect(StableHasher.hash(42) == 5_342_134_420_972_539_563)
        // Bytes, String and borrowed views of the same bytes hash alike.
        #expect(StableHasher.hash(Bytes("sluice")) == StableHasher.hash("sluice"))
        let view = Array("sluice".utf8).withUnsafeBytes { ByteView($0).stableHash }
        #expect(view == StableHasher.hash("sluice"))
        #expect(StableHasher.hash(0.0) == StableHasher.hash(-0.0))
        #expect(StableHasher.hash(42) != StableHasher.hash(43))
    }

    @Test("splits cover every line exactly once, whatever the split size", arguments: [1, 7, 64, 1000, 1 << 20])
    func splits(splitSize: Int) throws {
        let dir = Harness.tempDir("splits")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = TestRandom(UInt64(splitSize))
        var text: [UInt8] = []
        var lines: [[UInt8]] = []
        for _ in 0..<300 {
            let line = (0..<rng.int(40)).map { _ in UInt8(97 + rng.int(26)) }
            lines.append(line)
            text += line + (rng.int(5) == 0 ? [0x0D, 0x0A] : [0x0A])
        }
        try Data(text).write(to: URL(fileURLWithPath: dir + "/f.txt"))
        let plan = try SplitPlanner(splitSize: Int64(splitSize)).plan([dir + "/f.txt"])
        var seen: [[UInt8]] = []
        for split in plan {
            try SplitLineReader().forEachLine(split, metrics: TaskMetrics()) { _, line in seen.append(Array(line)) }
        }
        #expect(seen == lines)
        if splitSize < text.count { #expect(plan.count > 1) }
    }

    @Test("many small files are packed into few splits")
    func packing() throws {
        let dir = Harness.tempDir("pack")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<300 { try Data("line \(i)\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/f\(i).txt")) }
        let plan = try SplitPlanner(splitSize: 1 << 20).plan([dir])
        #expect(plan.count == 1)
        #expect(plan[0].chunks.count == 300)
        #expect(throws: InputError.self) { try SplitPlanner().plan([dir + "/missing"]) }
    }

    @Test("the automatic split size: two splits per worker, 4 MiB to 256 MiB, a multiple of the workers")
    func automaticSplitSize() {
        let mib: Int64 = 1 << 20
        func pieces(_ total: Int64, _ workers: Int) -> Int64 {
            let size = SplitPlanner.automaticSplitSize(totalBytes: total, workers: workers)
            #expect(size >= 4 * mib && size <= 256 * mib)
            return (total + size - 1) / size
        }
        #expect(pieces(1024, 2) == 1, "a tiny input is one task")
        #expect(pieces(319 * mib, 2) == 4)
        #expect(pieces(1024 * mib, 2) == 4)
        #expect(pieces(4096 * mib, 2) == 16, "capped at 256 MiB")
        #expect(pieces(1100 * mib, 2) % 2 == 0, "no worker gets one task more")
        #expect(pieces(1100 * mib, 3) % 3 == 0)
        #expect(pieces(10 * mib, 4) <= 4, "no split below 4 MiB")
        #expect(SplitPlanner.automaticSplitSize(totalBytes: 1024 * mib, workers: 2, largest: 64 * mib) == 64 * mib,
                "64 MiB where no shuffle combines")
    }

    @Test("jobs whose shuffles carry records whole (sort, join) get splits of at most 64 MiB; combining ones up to 256 MiB")
    func splitCapByShuffle() throws {
        let dir = Harness.tempDir("splitcap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A sparse 1 GiB file: planning reads only its size.
        let path = dir + "/big.txt"
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        #expect(truncate(path, 1 << 30) == 0)
        func splits(_ job: String) throws -> Int {
            let graph = try Harness.job(job).graph(JobArguments(inputs: [path], output: dir + "/out"))
            return try PhysicalPlan.planSplits(graph, splitSize: nil, workers: 2).map(\.count).reduce(0, +)
        }
        #expect(try splits("sort") == 16)
        #expect(try splits("wordcount") == 4)
    }

    @Test("a corrupt or truncated block is detected, never silently read")
    func blockChecksums() throws {
        let dir = Harness.tempDir("blocks")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = PartitionedWriter(partitions: 3, budget: 1 << 20, spillPrefix: dir + "/x", metrics: TaskMetrics())
        for i in 0..<10_000 { try writer.add(partition: i % 3) { w in i.encode(to: &w) } }
        let stats = try writer.commit(to: dir + "/map.out")
        #expect(stats.records == [3334, 3333, 3333])
        func readAll(_ path: String) throws -> Int {
            let reader = try BlockFileReader(path: path)
            let offsets = try reader.readIndex(expectedPartitions: 3)
            var n = 0
            for p in 0..<3 { try reader.forEachRecord(from: offsets[p], to: offsets[p + 1]) { r in _ = try Int.decode(from: &r); n += 1 } }
            return n
        }
        let total = try readAll(dir + "/map.out")
        #expect(total == 10_000)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/map.out"))
        var flipped = bytes
        flipped[bytes.count / 2] ^= 1
        try flipped.write(to: URL(fileURLWithPath: dir + "/flipped.out"))
        #expect(throws: ShuffleDataError.self) { try readAll(dir + "/flipped.out") }
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: dir + "/short.out"))
        #expect(throws: ShuffleDataError.self) { try readAll(dir + "/short.out") }
    }

    @Test("frames round-trip; garbage and oversized frames are errors")
    func frames() throws {
        var w = ByteWriter()
        let setup = Message.Setup(workerID: 7, inject: "stall@0.0.0", heartbeatMicros: 250_000, job: "j",
                                  arguments: JobArguments(inputs: ["a"], output: "o"), options: PlanOptions(partitions: 3),
                                  splits: [], workDir: "/w", memoryBudget: 1 << 20, maxExpandedBytes: 1 << 30, maxRecordBytes: 1 << 20,
                                  skipBadRecords: true, compressOutput: false)
        let messages: [Message] = [.hello(version: 1, pid: 42), .ready, .heartbeat(progress: 99), .shutdown, .setup(setup),
                                   .assign(Message.TaskDescriptor(stage: 3, partition: 9, attempt: 1, blob: [1, 2], outputPath: "/x"))]
        for m in messages {
            var f = ByteWriter()
            f.writeFixed(UInt32(0))
            f.write(m.type)
            m.encodePayload(to: &f)
            f.patchFixed(UInt32(f.count - 5), at: 0)
            w.write(contentsOf: f.bytes)
        }
        var reader = FrameReader()
        w.bytes.withUnsafeBytes { reader.append($0) }
        var types: [UInt8] = []
        while let m = try reader.next() { types.append(m.type) }
        #expect(types == messages.map(\.type))
        // Everything a worker needs is in its setup frame, not in its environment.
        var again = FrameReader()
        w.bytes.withUnsafeBytes { again.append($0) }
        var decoded: Message.Setup?
        var progress: UInt64?
        while let m = try again.next() {
            if case .setup(let s) = m { decoded = s }
            if case .heartbeat(let p) = m { progress = p }
        }
        #expect(decoded?.workerID == 7 && decoded?.inject == "stall@0.0.0" && decoded?.heartbeatMicros == 250_000)
        #expect(progress == 99)
        var bad = FrameReader()
        [UInt8](repeating: 0xFF, count: 16).withUnsafeBytes { bad.append($0) }
        #expect(throws: CorruptDataError.self) { try bad.next() }
        var unknown = FrameReader()
        [1, 0, 0, 0, 99, 0].withUnsafeBytes { unknown.append($0) }
        #expect(throws: CorruptDataError.self) { try unknown.next() }
    }

    @Test("the external aggregator and sorter give exact results while spilling")
    func externalStructures() throws {
        let dir = Harness.tempDir("ext")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let metrics = TaskMetrics()
        let agg = ExternalAggregator<String, Int>(budget: 1 << 16, spillPrefix: dir + "/a", metrics: metrics) { $0 += $1 }
        var expected: [String: Int] = [:]
        var rng = TestRandom(5)
        for _ in 0..<40_000 {
            let k = "key\(rng.int(20_000))"
            expected[k, default: 0] += 1
            try agg.upsert(k, create: { 1 }, update: { $0 += 1 })
        }
        var got: [String: Int] = [:]
        try agg.finish { k, v in
            #expect(got[k] == nil, "key \(k) emitted twice")
            got[k] = v
        }
        #expect(got == expected)
        #expect(metrics.spills > 0)

        let sorter = ExternalSorter<Int, Int>(budget: 1 << 16, spillPrefix: dir + "/s", metrics: metrics)
        let values = (0..<30_000).map { _ in rng.int(1_000_000) }
        for v in values { try sorter.add(v, -v) }
        var sorted: [Int] = []
        try sorter.finish { k, v in
            #expect(v == -k)
            sorted.append(k)
        }
        #expect(sorted == values.sorted())
    }
}
