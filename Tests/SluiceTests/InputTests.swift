import Foundation
import Sluice
import SluiceJobs
import Testing

/// Inputs users have: archives, gzip, many small files, CSV and JSON Lines — and bad input
/// answered with a clear error naming the file and line, or skipped and counted.
@Suite("Input formats and bad input", .serialized)
struct InputTests {
    /// Runs python3 to build fixtures (tarfile, zipfile and gzip are in its standard library).
    func python(_ script: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "python fixture script failed")
    }

    func run(_ job: String, inputs: [String], output: String, parameters: [String: String] = [:],
             configure: (inout RunOptions) -> Void = { _ in }) throws -> JobResult {
        var o = Harness.options(workers: 2, partitions: 3, splitSize: 64 << 10)
        configure(&o)
        return try Coordinator(job: Harness.job(job), arguments: JobArguments(inputs: inputs, output: output, parameters: parameters),
                               options: o).run()
    }

    @Test("word counts agree over plain files, tar.gz, tar.bz2, zip and one big .gz")
    func sameDocumentsEveryFormat() throws {
        let dir = Harness.tempDir("formats")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/docs", withIntermediateDirectories: true)
        try writeAwkwardTexts(into: dir + "/docs", seed: 3, files: 6, linesPerFile: 300, longLine: false)
        try python("""
        import tarfile, zipfile, gzip, os
        d = '\(dir)'
        names = sorted(os.listdir(d + '/docs'))
        for mode, ext in (('w:gz', 'tar.gz'), ('w:bz2', 'tar.bz2')):
            with tarfile.open(d + '/docs.' + ext, mode) as t:
                for n in names: t.add(d + '/docs/' + n, arcname='docs/' + n)
        with zipfile.ZipFile(d + '/docs.zip', 'w', zipfile.ZIP_DEFLATED) as z:
            for n in names: z.write(d + '/docs/' + n, 'docs/' + n)
        with gzip.open(d + '/all.gz', 'wb') as g:
            for n in names:
                data = open(d + '/docs/' + n, 'rb').read()
                g.write(data if data.endswith(b'\\n') or not data else data + b'\\n')
        """)
        var outputs: [[String]] = []
        for input in ["docs", "docs.tar.gz", "docs.tar.bz2", "docs.zip", "all.gz"] {
            let result = try Harness.checkAgainstReference("wordcount", inputs: [dir + "/" + input],
                                                           options: Harness.options(workers: 2, partitions: 3, splitSize: 20 << 10))
            let out = try run("wordcount", inputs: [dir + "/" + input], output: dir + "/out-\(outputs.count)")
            outputs.append(try Harness.readOutput(dir + "/out-\(outputs.count)").sorted())
            if input.hasPrefix("docs.") { #expect(result.stages[0].tasks > 1, "archive entries of \(input) spread over tasks") }
            _ = out
        }
        for o in outputs.dropFirst() { #expect(o == outputs[0]) }
        // invertedindex names archive entries as documents.
        try Harness.checkAgainstReference("invertedindex", inputs: [dir + "/docs.tar.gz"], options: Harness.options(workers: 2))
        let index = try run("invertedindex", inputs: [dir + "/docs.zip"], output: dir + "/index")
        _ = index
        let lines = try Harness.readOutput(dir + "/index")
        #expect(lines.contains { $0.contains("docs.zip!docs/doc-0.txt") })
    }

    @Test("ten thousand small files become a handful of tasks")
    func manySmallFiles() throws {
        let dir = Harness.tempDir("small")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<10_000 { FileManager.default.createFile(atPath: "\(dir)/f\(i).txt", contents: Data("w\(i % 7) common\n".utf8)) }
        let result = try run("wordcount", inputs: [dir], output: dir + "/../out-small-\(getpid())") { $0.splitSize = 32 << 20 }
        defer { try? FileManager.default.removeItem(atPath: dir + "/../out-small-\(getpid())") }
        #expect(result.stages[0].tasks == 1)
        let lines = Set(try Harness.readOutput(dir + "/../out-small-\(getpid())"))
        #expect(lines.contains("common\t10000"))
    }

    @Test("truncated gzip, corrupt archive: one clear error naming the file, nothing committed")
    func corruptInputs() throws {
        let dir = Harness.tempDir("corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try python("""
        import gzip, tarfile, io
        d = '\(dir)'
        data = gzip.compress(b'hello world\\n' * 50000)
        open(d + '/cut.gz', 'wb').write(data[: len(data) // 2])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as t:
            info = tarfile.TarInfo('a.txt'); payload = b'x y z\\n' * 2000; info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
        raw = bytearray(buf.getvalue()); raw[100:160] = b'\\xff' * 60
        open(d + '/bad.tar', 'wb').write(bytes(raw[: len(raw) // 2]))
        """)
        for (file, mention) in [("cut.gz", "cut.gz"), ("bad.tar", "bad.tar")] {
            do {
                _ = try run("wordcount", inputs: [dir + "/" + file], output: dir + "/out")
                Issue.record("\(file) should fail")
            } catch let failure as JobFailure {
                #expect(failure.description.contains(mention), "\(failure)")
                #expect(!failure.description.contains("attempt 4"), "bad input is not retried: \(failure)")
                #expect(!failure.description.contains("--bad-records"), "skipping cannot help: \(failure)")
            }
            #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
        }
        // The decompression-bomb guard.
        try python("import gzip; open('\(dir)/bomb.gz','wb').write(gzip.compress(b'\\0' * 5000000))")
        do {
            _ = try run("wordcount", inputs: [dir + "/bomb.gz"], output: dir + "/out") { $0.maxExpandedBytes = 1 << 20 }
            Issue.record("the bomb should be stopped")
        } catch let failure as JobFailure {
            #expect(failure.description.contains("bomb.gz") && failure.description.contains("bomb"), "\(failure)")
            #expect(!failure.description.contains("--bad-records"), "skipping cannot help: \(failure)")
        }
        // The same guard on CSV input, where other errors are skippable.
        try python("import gzip; open('\(dir)/bomb.csv.gz','wb').write(gzip.compress(b'ts,user,key,value\\n' + b'1,u,k,1\\n' * 700000))")
        do {
            _ = try run("eventsum", inputs: [dir + "/bomb.csv.gz"], output: dir + "/out") { $0.maxExpandedBytes = 1 << 20 }
            Issue.record("the CSV bomb should be stopped")
        } catch let failure as JobFailure {
            #expect(failure.description.contains("bomb.csv.gz") && failure.description.contains("decompression bomb guard"), "\(failure)")
            #expect(!failure.description.contains("--bad-records"), "skipping cannot help: \(failure)")
        }
        // A missing input names the path.
        #expect(throws: JobFailure.self) { try run("wordcount", inputs: [dir + "/nope.txt"], output: dir + "/out") }
    }

    @Test("malformed CSV rows fail with file and line, or are skipped and counted exactly")
    func badCSV() throws {
        let dir = Harness.tempDir("csv")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var good = "ts,user,key,value\n"
        var bad = good
        var expected: [String: Int] = [:]
        for i in 0..<3000 {
            let row = "\(i),u\(i % 13),k\(i % 17),\(i % 5)\n"
            good += row
            expected["k\(i % 17)", default: 0] += i % 5
            bad += row
            switch i {
            case 100: bad += "1,u1,k1\n"               // too few fields
            case 200: bad += "2,u2,k2,notanumber\n"    // type error
            case 300: bad += "3,\"u3,k3,4\n"           // unclosed quote: one bad line, not the rest of the file
            default: break
            }
        }
        try Data(bad.utf8).write(to: URL(fileURLWithPath: dir + "/events.csv"))
        do {
            _ = try run("eventsum", inputs: [dir + "/events.csv"], output: dir + "/out") { $0.splitSize = 32 << 20 }
            Issue.record("should fail")
        } catch let failure as JobFailure {
            #expect(failure.description.contains("events.csv:103: expected 4 fields, found 3; use --bad-records skip"), "\(failure)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
        let result = try run("eventsum", inputs: [dir + "/events.csv"], output: dir + "/out") { $0.skipBadRecords = true }
        #expect(result.skippedByInput[dir + "/events.csv"] == 3, "\(result.skippedByInput)")
        let got = Dictionary(uniqueKeysWithValues: try Harness.readOutput(dir + "/out").map { line -> (String, Int) in
            let f = line.split(separator: "\t")
            return (String(f[0]), Int(f[1])!)
        })
        #expect(got == expected)
        let sample = try String(contentsOfFile: dir + "/out/_bad_records", encoding: .utf8)
        #expect(sample.contains("events.csv:103") && sample.contains("not an integer") && sample.contains("unclosed quote"), "\(sample)")
    }

    @Test("JSON Lines: typed decoding, errors with line numbers, skip policy")
    func jsonLines() throws {
        let dir = Harness.tempDir("json")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var text = ""
        for i in 0..<500 { text += "{\"key\": \"k\(i % 9)\", \"value\": \(i)}\n" }
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/ok.jsonl"))
        try Harness.checkAgainstReference("test-json", inputs: [dir + "/ok.jsonl"], options: Harness.options(workers: 2))
        try Data((text + "{\"key\": \"k1\", \"value\": \"x\"}\nnot json\n").utf8).write(to: URL(fileURLWithPath: dir + "/bad.jsonl"))
        do {
            _ = try run("test-json", inputs: [dir + "/bad.jsonl"], output: dir + "/out") { $0.splitSize = 32 << 20 }
            Issue.record("should fail")
        } catch let failure as JobFailure {
            #expect(failure.description.contains("bad.jsonl:501") && failure.description.contains("value"), "\(failure)")
            #expect(failure.description.contains("use --bad-records skip"), "\(failure)")
        }
        let result = try run("test-json", inputs: [dir + "/bad.jsonl"], output: dir + "/out") { $0.skipBadRecords = true }
        #expect(result.skippedByInput.values.reduce(0, +) == 2)
    }

    @Test("--compress gzip writes part-NNNNN.gz with the same lines")
    func compressedOutput() throws {
        let dir = Harness.tempDir("gzout")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        try writeAwkwardTexts(into: dir + "/in", seed: 8, files: 2, linesPerFile: 200, longLine: false)
        _ = try run("wordcount", inputs: [dir + "/in"], output: dir + "/plain")
        _ = try run("wordcount", inputs: [dir + "/in"], output: dir + "/gz") { $0.compressOutput = true }
        let parts = try FileManager.default.contentsOfDirectory(atPath: dir + "/gz").filter { $0.hasPrefix("part-") }
        #expect(!parts.isEmpty && parts.allSatisfy { $0.hasSuffix(".gz") })
        // Read the compressed parts back with our own reader and compare.
        var lines: [String] = []
        for p in parts.sorted() {
            let data = try readAllBytes(GzipSource(path: dir + "/gz/" + p))
            lines += String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        #expect(lines.sorted() == (try Harness.readOutput(dir + "/plain")).sorted())
    }

    func readAllBytes(_ source: ByteSource) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { return out }
            out += chunk[0..<n]
        }
    }
}
