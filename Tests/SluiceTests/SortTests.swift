import Foundation
@testable import Sluice
import SluiceJobs
import Testing

/// The byte sort path (`sortByKey` over `Bytes` and `ByteView` keys) and the bundled `sort`
/// job: against the reference executor and, byte for byte, against GNU `sort` (LC_ALL=C) —
/// in memory, spilling on both sides, over many partitions, and with injected faults.
@Suite("Byte sort and the sort job", .serialized)
struct SortTests {
    static let configurations: [(workers: Int, partitions: Int, memory: Int)] = [
        (1, 1, 64 << 20), (2, 7, 64 << 20), (3, 4, 1 << 16),
    ]

    /// Lines of comma-separated fields that stress the comparison: keys sharing 8- and
    /// 16-byte prefixes, keys ending inside the prefix, zero bytes and bytes over 0x7F, empty
    /// fields and lines, duplicates, and numbers in every form `sort -n` reads.
    static func writeTrickyLines(to path: String, lines: Int, seed: UInt64) throws {
        var rng = TestRandom(seed)
        let words: [[UInt8]] = ["", "a", "ab", "abcdefg", "abcdefgh", "abcdefghi", "abcdefgh\0", "abcdefgh\0\0",
                                "abcdefghijklmnop", "abcdefghijklmnopq", "abcdefghijklmno", "zz", "\u{7F}", "b"]
            .map { Array($0.utf8) } + [[0xFF, 0x41], [0xC3, 0xA9, 0x00], [0x00], [0x00, 0x01], [0x80]]
        let numbers = ["0", "-0", "7", "007", "-7", "1.5", "1.50", "-1.5", "-1.50", ".5", "-.5", "1.", "abc", "", "  12",
                       "\t3", "-", "+3", "1e5", "123456789012345678901234567890", "-123456789012345678901234567890",
                       "0.0001", "-0.0001", "99.99", "100", "-100.5x", "1,000"]
        var bytes: [UInt8] = []
        for _ in 0..<lines {
            if rng.int(40) == 0 {
                bytes.append(0x0A)
                continue
            }
            bytes += words[rng.int(words.count)]
            bytes.append(0x2C)
            bytes += words[rng.int(words.count)] + Array("\(rng.int(50))".utf8)
            bytes.append(0x2C)
            bytes += Array(numbers[rng.int(numbers.count)].utf8)
            if rng.int(3) == 0 { bytes += Array(",tail\(rng.int(1000)) some more words to lengthen the line".utf8) }
            bytes.append(0x0A)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// GNU sort's output for `arguments` over `inputs` (LC_ALL=C).
    static func gnuSort(_ inputs: [String], _ arguments: [String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["LC_ALL=C", "sort"] + arguments + inputs
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return data
    }

    /// The part files of an output folder, concatenated in part order.
    static func concatenatedParts(_ dir: String) throws -> Data {
        let parts = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("part-") }.sorted()
        var data = Data()
        for p in parts { data += try Data(contentsOf: URL(fileURLWithPath: dir + "/" + p)) }
        return data
    }

    /// Runs `sort` with `parameters` and checks it against the reference and GNU sort.
    @discardableResult
    static func checkSort(inputs: [String], parameters: [String: String], gnu: [String], options: RunOptions,
                          sourceLocation: SourceLocation = #_sourceLocation) throws -> JobResult {
        let out = Harness.tempDir("sort") + "/out"
        defer { try? FileManager.default.removeItem(atPath: (out as NSString).deletingLastPathComponent) }
        let result = try Harness.checkAgainstReference("sort", inputs: inputs, parameters: parameters, options: options,
                                                       sourceLocation: sourceLocation)
        _ = try Coordinator(job: Harness.job("sort"), arguments: JobArguments(inputs: inputs, output: out, parameters: parameters),
                            options: options).run()
        let got = try concatenatedParts(out), want = try gnuSort(inputs, gnu)
        #expect(got.count == want.count, "\(got.count) bytes, GNU sort wrote \(want.count)", sourceLocation: sourceLocation)
        #expect(got == want, "sort \(parameters) differs from GNU sort \(gnu)", sourceLocation: sourceLocation)
        return result
    }

    @Test("sort job equals GNU sort bytewise, by a text field and by a numeric field", arguments: [0, 1, 2])
    func sortJob(configuration: Int) throws {
        let c = Self.configurations[configuration]
        let dir = Harness.tempDir("sortin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeTrickyLines(to: dir + "/a.txt", lines: 20_000, seed: 1)
        try Self.writeTrickyLines(to: dir + "/b.txt", lines: 5_000, seed: 2)
        let inputs = [dir + "/a.txt", dir + "/b.txt"]
        let o = Harness.options(workers: c.workers, partitions: c.partitions, memory: c.memory, splitSize: 128 << 10)
        let plain = try Self.checkSort(inputs: inputs, parameters: [:], gnu: [], options: o)
        if c.memory < 1 << 20 {
            #expect(plain.stages.last!.spills > 0, "the tiny budget makes the reducers spill sorted runs")
        }
        try Self.checkSort(inputs: inputs, parameters: ["key-field": "2", "delimiter": ","], gnu: ["-t", ",", "-k2,2"], options: o)
        try Self.checkSort(inputs: inputs, parameters: ["key-field": "3", "delimiter": ",", "numeric": "true"],
                           gnu: ["-t", ",", "-k3,3", "-n"], options: o)
    }

    @Test("sortByKey over Bytes and ByteView keys equals the reference (both directions, stable, spilling)")
    func byteSortJob() throws {
        let dir = Harness.tempDir("bytesort")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeAwkwardTexts(into: dir, seed: 17)
        for c in Self.configurations {
            try Harness.checkAgainstReference("test-bytesort", inputs: [dir],
                                              options: Harness.options(workers: c.workers, partitions: c.partitions,
                                                                       memory: c.memory, splitSize: 64 << 10))
        }
    }

    @Test("empty input: empty, committed parts")
    func emptyInput() throws {
        let dir = Harness.tempDir("sortempty")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data().write(to: URL(fileURLWithPath: dir + "/empty.txt"))
        try Self.checkSort(inputs: [dir + "/empty.txt"], parameters: [:], gnu: [], options: Harness.options(workers: 2, partitions: 3))
    }

    @Test("faults (throws, crashes, corrupt map outputs) leave the sorted output byte-identical")
    func faults() throws {
        let dir = Harness.tempDir("sortfault")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.writeTrickyLines(to: dir + "/a.txt", lines: 20_000, seed: 3)
        var o = Harness.options(workers: 3, partitions: 4, memory: 1 << 16, splitSize: 64 << 10)
        o.inject = try FaultInjection("throw@random:0.2:5:after=random,crash@random:0.1:6:after=random,corrupt@random:0.3:7")
        o.maxAttempts = 8
        let result = try Self.checkSort(inputs: [dir + "/a.txt"], parameters: [:], gnu: [], options: o)
        #expect(result.retries + result.mapTasksRerun > 0, "faults were injected")
    }

    /// With 80 000 records the second segment passes 1 MiB and is mapped into the sort buffer
    /// rather than read (from an offset that is not a page's start); the first is read.
    @Test("the sorter alone: radix and tie runs, descending, spilled runs merged, segments read and mapped",
          arguments: [5_000, 80_000])
    func sorterUnit(records: Int) throws {
        var rng = TestRandom(11)
        let keys: [[UInt8]] = (0..<records).map { _ in
            let stem: [UInt8] = Array("abcdefghijklmnopqrstuvwxyz".utf8.prefix(rng.int(20)))
            return stem + (0..<rng.int(3)).map { _ in UInt8(rng.int(3)) }
        }
        for (ascending, budget) in [(true, 64 << 20), (false, 64 << 20), (true, 1 << 16), (false, 1 << 16)] {
            let metrics = TaskMetrics()
            let dir = Harness.tempDir("sorter")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // The records as a shuffle file of one partition, as a map task writes them.
            // Two partitions: the first 333 records, then the rest.
            let writer = PartitionedWriter(partitions: 2, budget: 1 << 30, spillPrefix: dir + "/w", metrics: metrics)
            for (i, k) in keys.enumerated() {
                try writer.add(partition: i < 333 ? 0 : 1) { w in
                    k.withUnsafeBytes { SortRecord.write(key: $0, to: &w) { Int(i).encode(to: &$0) } }
                }
            }
            _ = try writer.commit(to: dir + "/map.out")
            let reader = try BlockFileReader(path: dir + "/map.out")
            let offsets = try reader.readIndex(expectedPartitions: 2)
            let sorter = try ByteRecordSorter.make(budget: budget, spillPrefix: dir + "/s", metrics: metrics, ascending: ascending)
            #expect(try sorter.add(reader, from: offsets[0], to: offsets[1]) + sorter.add(reader, from: offsets[1], to: offsets[2])
                    == keys.count)
            var got: [([UInt8], Int)] = []
            try sorter.finish { k, v, _ in
                var r = ByteReader(v)
                got.append((Array(k), try Int.decode(from: &r)))
            }
            ByteRecordSorter.keep(sorter)
            let want = keys.enumerated().sorted { a, b in
                if a.element != b.element {
                    return ascending ? a.element.lexicographicallyPrecedes(b.element) : b.element.lexicographicallyPrecedes(a.element)
                }
                return a.offset < b.offset
            }
            #expect(got.map(\.0) == want.map(\.element) && got.map(\.1) == want.map(\.offset), "ascending \(ascending), budget \(budget)")
            #expect((metrics.spills > 0) == (budget < 1 << 20), "spills only under the small budget")
        }
    }

    @Test("a mapped shuffle segment with a damaged block fails its checksum, naming the file and byte")
    func mappedSegmentChecksum() throws {
        let dir = Harness.tempDir("sortermap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let metrics = TaskMetrics()
        let writer = PartitionedWriter(partitions: 1, budget: 1 << 30, spillPrefix: dir + "/w", metrics: metrics)
        for i in 0..<100_000 {
            try writer.add(partition: 0) { w in
                Array("key\(i % 977)".utf8).withUnsafeBytes { SortRecord.write(key: $0, to: &w) { Int(i).encode(to: &$0) } }
            }
        }
        _ = try writer.commit(to: dir + "/map.out")
        let offsets = try BlockFileReader(path: dir + "/map.out").readIndex(expectedPartitions: 1)
        try #require(offsets[1] > 1 << 20, "the segment is large enough to be mapped")
        let fd = open(dir + "/map.out", O_RDWR)
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, off_t(offsets[1] / 2)) == 1)
        byte ^= 0x40
        #expect(pwrite(fd, &byte, 1, off_t(offsets[1] / 2)) == 1)
        close(fd)
        let sorter = try ByteRecordSorter.make(budget: 64 << 20, spillPrefix: dir + "/s", metrics: metrics, ascending: true)
        defer { ByteRecordSorter.keep(sorter) }
        #expect {
            try sorter.add(BlockFileReader(path: dir + "/map.out"), from: offsets[0], to: offsets[1])
        } throws: { error in
            "\(error)".contains("checksum mismatch in block at byte") && "\(error)".contains("map.out")
        }
    }
}
