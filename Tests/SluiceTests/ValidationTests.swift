import Foundation
@testable import Sluice
@testable import SluiceStream
@testable import SluiceCLI
import SluiceGenerators
import SluiceJobs
import Synchronization
import Testing

/// What `sluice` printed and how it ended.
struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the `sluice` binary with `stdin` (nothing by default) and waits for it, at most
/// `timeout` seconds (a run still going then is killed and recorded as an issue).
func sluice(_ args: [String], stdin: String = "", timeout: TimeInterval = 120) throws -> CLIRun {
    let dir = Harness.tempDir("cli")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    _ = FileManager.default.createFile(atPath: dir + "/out", contents: nil)
    _ = FileManager.default.createFile(atPath: dir + "/err", contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
    p.arguments = args
    let input = Pipe()
    p.standardInput = input
    p.standardOutput = FileHandle(forWritingAtPath: dir + "/out")
    p.standardError = FileHandle(forWritingAtPath: dir + "/err")
    try p.run()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try input.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning {
        Issue.record("sluice \(args.joined(separator: " ")) still running after \(Int(timeout)) s")
        kill(p.processIdentifier, SIGKILL)
    }
    p.waitUntilExit()
    return CLIRun(status: p.terminationStatus,
                  stdout: (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? "",
                  stderr: (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? "")
}

/// The `options` of the `job_start` event in an event log.
func jobStartOptions(_ eventLog: String) throws -> [String: Any] {
    let text = try String(contentsOfFile: eventLog, encoding: .utf8)
    let line = try #require(text.split(separator: "\n").first { $0.contains("\"event\":\"job_start\"") })
    let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    return try #require(event["options"] as? [String: Any])
}

/// A launcher that counts the workers it is asked for.
final class CountingLauncher: WorkerLauncher {
    let launched = Mutex(0)
    let inner = ProcessLauncher(executable: Harness.sluiceBinary)
    func launch(id: Int) throws -> any WorkerHandle {
        launched.withLock { $0 += 1 }
        return try inner.launch(id: id)
    }
}

@Suite("Bad parameters and options: exit 64 before any worker starts", .serialized)
struct ParameterValidationTests {
    @Test("a bad job parameter exits 64 naming it, with no worker started and nothing written",
          arguments: [(["topwords", "--k", "-1"], "parameter k"), (["topwords", "--param", "k=abc"], "parameter k"),
                      (["topwords", "--k", "0"], "parameter k"), (["join", "--right", "r.csv", "--on", "id"], "parameter left"),
                      (["join", "--left", "r.csv", "--right", "r.csv", "--on", "id", "--how", "outer"], "--how")])
    func badJobParameter(args: [String], names: String) throws {
        let dir = Harness.tempDir("badparam")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "id,v\n1,2\n".write(toFile: dir + "/r.csv", atomically: true, encoding: .utf8)
        let run = try sluice(["run"] + args.map { $0 == "r.csv" ? dir + "/r.csv" : $0 }
                             + ["-i", dir + "/r.csv", "-o", dir + "/out", "-w", "1", "--log-level", "info"], timeout: 30)
        #expect(run.status == 64, "\(run.stderr)")
        #expect(run.stderr.contains(names), "\(run.stderr)")
        #expect(!run.stderr.contains("worker"), "a worker was started: \(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.events.jsonl"))
    }

    @Test("sluice explain exits 64 for a bad parameter too")
    func explainBadParameter() throws {
        let run = try sluice(["explain", "topwords", "--k", "-3"], timeout: 30)
        #expect(run.status == 64 && run.stderr.contains("parameter k must be at least 1, got -3"), "\(run.stderr)")
    }

    @Test("the coordinator throws JobError.badParameter for a bad parameter and launches no worker")
    func coordinatorLaunchesNoWorker() throws {
        let dir = Harness.tempDir("noworker")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "a b a\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        var options = Harness.options(workers: 2)
        let launcher = CountingLauncher()
        options.launcher = launcher
        let args = JobArguments(inputs: [dir + "/in.txt"], output: dir + "/out", parameters: ["k": "-1"])
        #expect {
            _ = try Coordinator(job: Harness.job("topwords"), arguments: args, options: options).run()
        } throws: { error in
            guard case JobError.badParameter(let reason) = error else { return false }
            return reason.contains("parameter k")
        }
        #expect(launcher.launched.withLock { $0 } == 0)
    }

    @Test("operators reject invalid arguments when the graph is built, whatever job code passes them")
    func operatorArguments() throws {
        func rejection(_ build: @escaping @Sendable (JobContext) throws -> Void) -> String? {
            do {
                _ = try Job("t", summary: "", build: build).graph(JobArguments(output: "/tmp/unused"))
                return nil
            } catch JobError.badParameter(let reason) {
                return reason
            } catch {
                return "\(error)"
            }
        }
        #expect(rejection { $0.parallelize([1, 2, 3]).top(-1).write(to: try $0.output) }?.contains("top(-1)") == true)
        #expect(rejection { $0.parallelize([1, 2, 3]).take(-2) }?.contains("take(-2)") == true)
        #expect(rejection { $0.parallelize([(1, 1)]).reduceByKey(partitions: 0, +).count() }?.contains("reduceByKey") == true)
        #expect(rejection { $0.parallelize([1], partitions: 0).count() }?.contains("parallelize") == true)
        #expect(rejection { $0.parallelize([(1, 1)]).join($0.parallelize([(1, 2)]), partitions: -3).count() }?.contains("join") == true)
        #expect(rejection { $0.parallelize([3, 1, 2]).top(0).write(to: try $0.output) } == nil)
    }

    @Test("--split-size 0, --partitions 0 and --task-timeout 0 or below exit 64 naming the option",
          arguments: [(["--split-size", "0"], "--split-size"), (["--partitions", "0"], "--partitions"),
                      (["--partitions=-2"], "--partitions"), (["--task-timeout", "0"], "--task-timeout"),
                      (["--task-timeout=-5"], "--task-timeout")])
    func badRunOptions(options: [String], names: String) throws {
        let dir = Harness.tempDir("badopt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "a b\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        let run = try sluice(["run", "wordcount", "-i", dir + "/in.txt", "-o", dir + "/out"] + options, timeout: 30)
        #expect(run.status == 64, "\(run.stderr)")
        #expect(run.stderr.contains(names), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
    }

    @Test("--split-size below 64k is raised to 64k with a warning; --workers above 4 × the cores is clamped with a warning")
    func splitSizeFloorAndWorkerCap() throws {
        let dir = Harness.tempDir("floor")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 300 << 10, seed: 4, vocabulary: 500).write(to: dir + "/in.txt")
        let run = try sluice(["run", "wordcount", "-i", dir + "/in.txt", "-o", dir + "/out", "-w", "1", "--split-size", "1", "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("warning: --split-size 1 is below the 64k minimum"), "\(run.stderr)")
        #expect(try jobStartOptions(dir + "/out/_events.jsonl")["split_size"] as? Int == 64 << 10)
        let cap = 4 * ProcessInfo.processInfo.activeProcessorCount
        let many = try sluice(["run", "linecount", "-i", dir + "/in.txt", "-o", dir + "/out2", "--workers", "100000",
                               "--event-log", dir + "/events.jsonl", "-q"])
        #expect(many.status == 0, "\(many.stderr)")
        #expect(many.stderr.contains("--workers 100000 is more than 4 ×"), "\(many.stderr)")
        #expect(try jobStartOptions(dir + "/events.jsonl")["workers"] as? Int == cap)
    }

    @Test("the split planner never cuts a source into millions of splits, whatever the split size")
    func splitCountCap() throws {
        let dir = Harness.tempDir("cap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(repeating: 0x61, count: 1 << 20).write(to: URL(fileURLWithPath: dir + "/f.txt"))
        var planner = SplitPlanner(splitSize: 1)
        #expect(try planner.plan([dir + "/f.txt"]).count <= Int(SplitPlanner.maxSplits))
        planner.splitSize = 0
        #expect(try planner.plan([dir + "/f.txt"]).count <= Int(SplitPlanner.maxSplits))
    }

    @Test("--event-log in a missing or unwritable folder, or naming a folder, exits 64 before the run")
    func unwritableEventLog() throws {
        let dir = Harness.tempDir("evlog")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "a b\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        for log in [dir + "/missing/events.jsonl", dir + "/in.txt/events.jsonl", "/proc/events.jsonl", dir] {
            let run = try sluice(["run", "wordcount", "-i", dir + "/in.txt", "-o", dir + "/out", "--event-log", log], timeout: 30)
            #expect(run.status == 64, "\(log): \(run.stderr)")
            #expect(run.stderr.contains("--event-log \(log)"), "\(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
        }
    }

    @Test("two --inject options are both active")
    func twoInjections() throws {
        let dir = Harness.tempDir("inject")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "a b a\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        let run = try sluice(["run", "wordcount", "-i", dir + "/in.txt", "-o", dir + "/out", "-w", "1",
                              "--inject", "throw@0.0.0", "--inject", "throw@1.0.0", "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        let failed = try String(contentsOfFile: dir + "/out/_events.jsonl", encoding: .utf8).split(separator: "\n")
            .filter { $0.contains("\"event\":\"task_end\"") && $0.contains("injected failure") }
        #expect(failed.contains { $0.contains("\"stage\":0") }, "the first --inject did not fire")
        #expect(failed.contains { $0.contains("\"stage\":1") }, "the second --inject did not fire")
    }

    @Test("sluice run --help documents the exit codes")
    func exitCodesInHelp() throws {
        let help = try sluice(["run", "--help"], timeout: 30).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("Exit codes: 0 success; 1 the job failed"))
        #expect(help.contains("64 bad command line or job parameters"))
    }
}

@Suite("Inputs people name: streams, empty folders, loops, glob characters, overlaps", .serialized)
struct InputPathTests {
    @Test("a FIFO and standard input are refused with an error naming the path, without hanging")
    func streamsRefused() throws {
        let dir = Harness.tempDir("fifo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/pipe", 0o600) == 0)
        #expect(throws: InputError.self) { try SplitPlanner.expand([dir + "/pipe"]) }
        for (input, named) in [(dir + "/pipe", "FIFO"), ("/dev/stdin", "standard input"), ("-", "standard input")] {
            let run = try sluice(["run", "wordcount", "-i", input, "-o", dir + "/out"], stdin: "a b\n", timeout: 30)
            #expect(run.status == 1, "\(input): \(run.stderr)")
            #expect(run.stderr.contains("error: \(input): ") && run.stderr.contains(named), "\(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
        }
    }

    @Test("an empty input folder gives a warning naming it")
    func emptyFolderWarns() throws {
        let dir = Harness.tempDir("emptyin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/in/_hidden", withIntermediateDirectories: true)
        let run = try sluice(["run", "wordcount", "-i", dir + "/in", "-o", dir + "/out", "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("input folder \(dir)/in has no files"), "\(run.stderr)")
    }

    @Test("a path with glob characters that exists is read as that file, not as a pattern")
    func globCharactersInName() throws {
        let dir = Harness.tempDir("globlit")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "literal\n".write(toFile: dir + "/a[1]*.txt", atomically: true, encoding: .utf8)
        try "matched\n".write(toFile: dir + "/a1x.txt", atomically: true, encoding: .utf8)
        #expect(try SplitPlanner.expand([dir + "/a[1]*.txt"]).map(\.path) == [dir + "/a[1]*.txt"])
        #expect(try SplitPlanner.expand([dir + "/a[1]x*.txt"]).map(\.path) == [dir + "/a1x.txt"], "still a glob when no such file")
        let run = try sluice(["run", "wordcount", "-i", dir + "/a[1]*.txt", "-o", dir + "/out", "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Harness.readOutput(dir + "/out") == ["literal\t1"])
    }

    @Test("symbolic-link loops in an input folder are skipped with a warning naming them; other links are followed")
    func symlinkLoops() throws {
        let dir = Harness.tempDir("loop")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/in/sub", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
        try "x y\n".write(toFile: dir + "/in/sub/f.txt", atomically: true, encoding: .utf8)
        try "z\n".write(toFile: dir + "/elsewhere/g.txt", atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(atPath: dir + "/in/sub/up", withDestinationPath: "..")
        try fm.createSymbolicLink(atPath: dir + "/in/self", withDestinationPath: "self")
        try fm.createSymbolicLink(atPath: dir + "/in/other", withDestinationPath: dir + "/elsewhere")
        #expect(try SplitPlanner.expand([dir + "/in"]).map(\.path) == [dir + "/in/other/g.txt", dir + "/in/sub/f.txt"])
        let run = try sluice(["run", "wordcount", "-i", dir + "/in", "-o", dir + "/out", "-q"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("skipping \(dir)/in/sub/up"), "\(run.stderr)")
        #expect(run.stderr.contains("skipping \(dir)/in/self"), "\(run.stderr)")
        #expect(try Harness.readOutput(dir + "/out").sorted() == ["x\t1", "y\t1", "z\t1"])
    }

    @Test("an output folder inside an input folder, or containing an input, exits 64 naming both")
    func outputInsideInput() throws {
        let dir = Harness.tempDir("overlap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        try "a b\n".write(toFile: dir + "/data/in.txt", atomically: true, encoding: .utf8)
        let inside = try sluice(["run", "wordcount", "-i", dir + "/data", "-o", dir + "/data/out"], timeout: 30)
        #expect(inside.status == 64, "\(inside.stderr)")
        #expect(inside.stderr.contains("output folder \(dir)/data/out is inside input folder \(dir)/data"), "\(inside.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/data/out"))
        let pattern = try sluice(["run", "wordcount", "-i", dir + "/data/*", "-o", dir + "/data/out"], timeout: 30)
        #expect(pattern.status == 64 && pattern.stderr.contains("matches input pattern \(dir)/data/*"), "\(pattern.stderr)")
        let containing = try sluice(["run", "wordcount", "-i", dir + "/data/in.txt", "-o", dir + "/data", "--overwrite"], timeout: 30)
        #expect(containing.status == 64, "\(containing.stderr)")
        #expect(containing.stderr.contains("input \(dir)/data/in.txt is inside output folder \(dir)/data"), "\(containing.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/data/in.txt"))
    }
}

@Suite("Hot keys in the run summary")
struct HotKeyLabelTests {
    @Test("hot keys are quoted, escaped and cut after 60 characters")
    func labels() {
        #expect(Summary.keyLabel(" ") == "\" \"")
        #expect(Summary.keyLabel("") == "\"\"")
        #expect(Summary.keyLabel("a\tb\n\u{1B}\"\\") == "\"a\\tb\\n\\u{1B}\\\"\\\\\"")
        #expect(Summary.keyLabel(String(repeating: "x", count: 61)) == "\"" + String(repeating: "x", count: 60) + "\"…")
        #expect(Summary.keyLabel(String(repeating: "é", count: 60)) == "\"" + String(repeating: "é", count: 60) + "\"")
    }

    @Test("a huge hot key and a space key print as short, visible labels in a real run's summary")
    func summaryOfARun() throws {
        let dir = Harness.tempDir("hotlabel")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let huge = String(repeating: "x", count: 20_000)
        var csv = "ts,user,key,value\n"
        for i in 0..<600 {
            let key = i % 5 < 2 ? huge : i % 5 == 2 ? " " : "k\(i)"
            csv += "\(i),u\(i % 7),\(key),1\n"
        }
        try csv.write(toFile: dir + "/events.csv", atomically: true, encoding: .utf8)
        let run = try sluice(["run", "keyusers", "-i", dir + "/events.csv", "-o", dir + "/out", "-w", "2"])
        #expect(run.status == 0, "\(run.stderr)")
        let line = try #require(run.stderr.split(separator: "\n").first { $0.contains("hot keys:") }, "\(run.stderr.prefix(2000))")
        #expect(line.contains("\"" + String(repeating: "x", count: 60) + "\"…"), "\(line.prefix(300))")
        #expect(line.contains("\" \" ("), "\(line.prefix(300))")
        #expect(line.count < 300)
        #expect(run.stderr.count < 10_000, "the summary printed the key whole")
    }
}
