import Foundation
import Sluice
import SluiceJobs
import Testing

/// Shared helpers: run a job on the real engine (worker processes of the built `sluice`
/// binary) and compare it with the reference executor.
enum Harness {
    /// The `sluice` binary next to the test bundle (built by `swift build --build-tests`).
    static var sluiceBinary: String {
        if let env = ProcessInfo.processInfo.environment["SLUICE_BIN"] { return env }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("sluice").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return ".build/debug/sluice"
    }

    static func job(_ name: String) -> Job { SluiceJobs.all.first { $0.name == name }! }

    /// A fresh temporary folder.
    static func tempDir(_ tag: String = "t") -> String {
        let path = NSTemporaryDirectory() + "sluice-test-\(tag)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func options(workers: Int, partitions: Int? = nil, memory: Int = 64 << 20, splitSize: Int64 = 32 << 20,
                        maxAttempts: Int = 4, environment: [String: String] = [:]) -> RunOptions {
        var o = RunOptions()
        o.workers = workers
        o.partitions = partitions
        o.memoryPerTask = memory
        o.splitSize = splitSize
        o.maxAttempts = maxAttempts
        o.launcher = ProcessLauncher(executable: sluiceBinary, environment: environment)
        return o
    }

    /// The lines of every part file of an output folder, in part order.
    static func readOutput(_ dir: String) throws -> [String] {
        let parts = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("part-") }.sorted()
        var lines: [String] = []
        for p in parts {
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + p))
            var text = String(decoding: data, as: UTF8.self)
            if text.hasSuffix("\n") { text.removeLast() }
            if !text.isEmpty || data.count == 1 { lines += text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
        }
        return lines
    }

    /// Runs `job` on the engine and checks every action against the reference executor.
    @discardableResult
    static func checkAgainstReference(_ jobName: String, inputs: [String] = [], parameters: [String: String] = [:],
                                      options: RunOptions, sourceLocation: SourceLocation = #_sourceLocation) throws -> JobResult {
        let out = tempDir("out") + "/result"
        defer { try? FileManager.default.removeItem(atPath: (out as NSString).deletingLastPathComponent) }
        let job = job(jobName)
        let args = JobArguments(inputs: inputs, output: out, parameters: parameters)
        let expected = try ReferenceExecutor.run(job, args)
        let result = try Coordinator(job: job, arguments: args, options: options).run()
        for (i, exp) in expected.enumerated() {
            var got: [String]
            if let path = exp.outputPath {
                #expect(FileManager.default.fileExists(atPath: path + "/_SUCCESS"), "no _SUCCESS in \(path)", sourceLocation: sourceLocation)
                got = try readOutput(path)
            } else {
                got = result.rendered[i]
            }
            var want = exp.lines
            if !exp.ordered {
                got.sort()
                want.sort()
            }
            #expect(got.count == want.count, "\(jobName) action \(i): \(got.count) lines, expected \(want.count)", sourceLocation: sourceLocation)
            if got != want {
                let firstDiff = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
                Issue.record("\(jobName) action \(i) differs from the reference at line \(firstDiff): got \(got.dropFirst(firstDiff).first.map { String($0.prefix(200)) } ?? "nothing"), expected \(want.dropFirst(firstDiff).first.map { String($0.prefix(200)) } ?? "nothing")", sourceLocation: sourceLocation)
            }
        }
        return result
    }
}

/// A small deterministic generator for test data.
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}

/// Writes awkward text files: Zipf-ish words, empty lines, CRLF, tabs, non-UTF-8 bytes,
/// a line of about 1.5 MiB, a file without a final newline and an empty file. Returns the
/// length of the longest line.
@discardableResult
func writeAwkwardTexts(into dir: String, seed: UInt64, files: Int = 4, linesPerFile: Int = 400, longLine: Bool = true) throws -> Int {
    var rng = TestRandom(seed)
    var longest = 0
    let vocabulary: [[UInt8]] = (0..<200).map { i in
        var w = Array("w\(i)".utf8)
        if i % 17 == 0 { w += [0xFF, 0xC3] }          // invalid UTF-8
        if i % 23 == 0 { w = Array("é\(i)".utf8) }    // valid multi-byte UTF-8
        return w
    }
    let separators: [[UInt8]] = [[0x20], [0x20, 0x20], [0x09], [0x0B], [0x0C]]
    for f in 0..<files {
        var bytes: [UInt8] = []
        for l in 0..<linesPerFile {
            if rng.int(10) == 0 { bytes.append(0x0A); continue } // empty line
            for w in 0..<(1 + rng.int(12)) {
                if w > 0 { bytes += separators[rng.int(separators.count)] }
                bytes += vocabulary[min(rng.int(200), rng.int(200))]
            }
            if longLine && f == 1 && l == 7 {
                for i in 0..<400_000 { bytes += Array(" x\(i % 97)".utf8) } // about 1.5 MiB
            }
            bytes += rng.int(8) == 0 ? [0x0D, 0x0A] : [0x0A]
        }
        if f == files - 1 { bytes.removeLast() } // no final newline
        longest = max(longest, bytes.split(separator: 0x0A).map(\.count).max() ?? 0)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/doc-\(f).txt"))
    }
    try Data().write(to: URL(fileURLWithPath: "\(dir)/empty.txt"))
    return longest
}
