import Foundation
import Sluice
import SluiceGenerators
import SluiceJobs
import Testing

/// Failures never lose or double a record: retried tasks, crashed workers, corrupt map
/// outputs; and a task that always fails stops the job cleanly with nothing committed.
@Suite("Faults and commit protocol", .serialized)
struct FaultTests {
    func options(_ inject: String?, maxAttempts: Int = 4, timeout: Double = 120) throws -> RunOptions {
        var o = Harness.options(workers: 2, partitions: 3, maxAttempts: maxAttempts)
        o.inject = try inject.map { try FaultInjection($0) }
        o.taskTimeout = timeout
        return o
    }

    @Test("injected faults give the fault-free result", arguments: [
        "throw@0.0.0", "crash@0.1.0", "exit@1.*.0", "corrupt@0.*.0", "throw@random:0.3:11",
        // Mid-task: after some records, or at a random record.
        "crash@0.*.0:after=200", "exit@1.1.0:after=50", "throw@0.2.0:after=100", "crash@random:0.3:5:after=random",
    ])
    func recovers(spec: String) throws {
        let result = try Harness.checkAgainstReference("test-join", parameters: ["n": "3000"], options: try options(spec))
        #expect(result.retries + result.mapTasksRerun > 0, "the fault \(spec) should have been hit")
        if spec.hasPrefix("corrupt") { #expect(result.mapTasksRerun > 0) }
        if spec.hasPrefix("crash") || spec.hasPrefix("exit") { #expect(result.workersReplaced > 0) }
    }

    @Test("a hung worker is killed after the task timeout and its task retried")
    func hang() throws {
        let result = try Harness.checkAgainstReference("test-aggregate", parameters: ["n": "2000"],
                                                       options: try options("hang@0.0.0", timeout: 3))
        #expect(result.workersReplaced == 1)
    }

    @Test("a task that stops making progress while its worker stays alive is timed out and retried")
    func stall() throws {
        let dir = Harness.tempDir("stall")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 1 << 20, seed: 6, vocabulary: 5_000).write(to: dir + "/in.txt")
        var o = try options("stall@0.0.0", timeout: 2)
        o.eventLogPath = dir + "/events.jsonl"
        let result = try Harness.checkAgainstReference("wordcount", inputs: [dir + "/in.txt"], options: o)
        #expect(result.retries == 1 && result.workersReplaced == 1)
        let log = try String(contentsOfFile: dir + "/events.jsonl", encoding: .utf8)
        let timedOut = log.split(separator: "\n").filter { $0.contains("\"status\":\"timed_out\"") }
        #expect(timedOut.count == 1, "\(timedOut)")
        #expect(timedOut.first?.contains("no progress for") == true)
        #expect(timedOut.first?.contains("\"attempt\":0") == true && timedOut.first?.contains("\"stage\":0") == true)
    }

    @Test("a task stalling on every attempt fails the job naming stage, partition and the missing progress")
    func stallEveryAttempt() throws {
        let dir = Harness.tempDir("stalls")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = JobArguments(output: dir + "/out", parameters: ["n": "2000"])
        do {
            _ = try Coordinator(job: Harness.job("test-aggregate"), arguments: args,
                                options: try options("stall@0.1.*:after=10", maxAttempts: 2, timeout: 1)).run()
            Issue.record("the job should have failed")
        } catch let failure as JobFailure {
            let m = failure.description
            #expect(m.contains("stage 0") && m.contains("partition 1") && m.contains("attempt 2 of 2") && m.contains("no progress for"), "\(m)")
        }
    }

    @Test("long per-record work is alive while it calls ctx.progress(), and hung when it does not")
    func userProgress() throws {
        var o = try options(nil, maxAttempts: 1, timeout: 1)
        o.workers = 2
        try Harness.checkAgainstReference("test-slow-records", parameters: ["n": "2", "work-ms": "2500", "progress": "on"], options: o)
        let dir = Harness.tempDir("silent")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = JobArguments(output: dir + "/out", parameters: ["n": "2", "work-ms": "2500", "progress": "off"])
        #expect(throws: JobFailure.self) { try Coordinator(job: Harness.job("test-slow-records"), arguments: args, options: o).run() }
    }

    @Test("--keep-work keeps the work folder and its event log after a failed run too")
    func keepWorkOnFailure() throws {
        let dir = Harness.tempDir("keep")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = try options("throw@1.*.*", maxAttempts: 1)
        o.keepWork = true
        o.workDir = dir + "/work"
        let args = JobArguments(output: dir + "/out", parameters: ["n": "500"])
        #expect(throws: JobFailure.self) { try Coordinator(job: Harness.job("test-aggregate"), arguments: args, options: o).run() }
        #expect(FileManager.default.fileExists(atPath: dir + "/work/_events.jsonl"))
        #expect(FileManager.default.fileExists(atPath: dir + "/work/shuffle-0"))
        o.keepWork = false
        o.workDir = dir + "/work2"
        #expect(throws: JobFailure.self) { try Coordinator(job: Harness.job("test-aggregate"), arguments: args, options: o).run() }
        #expect(!FileManager.default.fileExists(atPath: dir + "/work2"), "removed without --keep-work")
    }

    @Test("a job without an output folder leaves no event log in the current directory")
    func noOutputNoLog() throws {
        let dir = Harness.tempDir("nolog")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.currentDirectoryPath)
        var o = try options(nil)
        o.workDir = dir + "/work"
        let result = try Coordinator(job: Harness.job("linecount"), arguments: JobArguments(inputs: ["datasets/texts"]),
                                     options: o).run()
        #expect(result.eventLog.isEmpty)
        let after = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.currentDirectoryPath)
        #expect(Set(after).subtracting(before).isEmpty, "new files: \(Set(after).subtracting(before))")
        #expect(!FileManager.default.fileExists(atPath: dir + "/work"))
    }

    @Test("a task that always fails stops the job after max attempts, committing nothing")
    func alwaysFails() throws {
        let dir = Harness.tempDir("fail")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = Harness.job("test-aggregate")
        let args = JobArguments(output: dir + "/out", parameters: ["n": "500"])
        do {
            _ = try Coordinator(job: job, arguments: args, options: try options("throw@1.*.*", maxAttempts: 3)).run()
            Issue.record("the job should have failed")
        } catch let failure as JobFailure {
            let message = failure.description
            #expect(message.contains("stage 1") && message.contains("attempt 3 of 3") && message.contains("injected failure"),
                    "\(message)")
        }
        // Only the failed run's event log is left, beside where the outputs would have gone.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir + "/out")
        #expect(leftovers == ["reduce.events.jsonl"], "nothing committed, found \(leftovers)")
    }

    @Test("an existing output folder is refused unless overwrite is set")
    func existingOutput() throws {
        let dir = Harness.tempDir("exists")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        try Data("old".utf8).write(to: URL(fileURLWithPath: dir + "/out/part-00000"))
        let job = Harness.job("test-actions")
        let args = JobArguments(output: dir + "/out", parameters: ["n": "100"])
        #expect(throws: JobFailure.self) { try Coordinator(job: job, arguments: args, options: try options(nil)).run() }
        var o = try options(nil)
        o.overwrite = true
        _ = try Coordinator(job: job, arguments: args, options: o).run()
        #expect(FileManager.default.fileExists(atPath: dir + "/out/_SUCCESS"))
        #expect(try String(contentsOfFile: dir + "/out/part-00000", encoding: .utf8) != "old")
    }

    @Test("fault specs are parsed and rejected with a clear message")
    func specs() throws {
        #expect(throws: JobError.self) { try FaultInjection("explode@1.2.3") }
        #expect(throws: JobError.self) { try FaultInjection("crash@1.2") }
        #expect(throws: JobError.self) { try FaultInjection("crash@random:2:1") }
        _ = try FaultInjection("crash@0.*.0,throw@random:0.5:3")
    }
}

/// Stragglers, killed workers, a killed coordinator, and random chaos over a multi-stage job.
@Suite("Recovery: speculation, kill -9, resume, chaos", .serialized)
struct RecoveryTests {
    @Test("a straggler gets a speculative copy; the first to commit wins")
    func speculation() throws {
        var o = Harness.options(workers: 3, partitions: 4)
        o.speculation = true
        o.inject = try FaultInjection("slow@0.2.0")
        let result = try Harness.checkAgainstReference("test-narrow", parameters: ["n": "20000"], options: o)
        #expect(result.speculativeAttempts >= 1)
        #expect(result.stages[0].maxTaskMicros < 4_000_000, "the copy finished before the 5 s straggler")
    }

    /// Worker processes started with `SLUICE_TEST_TAG=tag` in their environment, from /proc
    /// (other suites run their own workers at the same time).
    static func workers(tagged tag: String) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.compactMap(Int32.init).filter { pid in
            guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environ.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "SLUICE_TEST_TAG=\(tag)" }
        }
    }

    @Test("kill -9 of random workers during a run: output identical to the fault-free run")
    func killWorkers() throws {
        let dir = Harness.tempDir("kill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 6 << 20, seed: 4, vocabulary: 20_000).write(to: dir + "/big.txt")
        let tag = UUID().uuidString
        let options = Harness.options(workers: 2, partitions: 4, splitSize: 512 << 10, environment: ["SLUICE_TEST_TAG": tag])
        let killer = Thread {
            var rng = TestRandom(UInt64(getpid()))
            var kills = 0
            for _ in 0..<40 where kills < 2 {
                usleep(useconds_t(100_000 + rng.int(150_000)))
                let kids = RecoveryTests.workers(tagged: tag)
                if !kids.isEmpty {
                    kill(kids[rng.int(kids.count)], SIGKILL)
                    kills += 1
                }
            }
        }
        killer.start()
        let result = try Harness.checkAgainstReference("wordcount", inputs: [dir + "/big.txt"], options: options)
        #expect(result.workersReplaced >= 1, "the killer should have hit a worker while the job ran")
    }

    @Test("killing the coordinator, then --resume, reuses the finished map stage and gives the same output; map outputs a machine's crash left empty or zeroed (they are not fsync'd) are recomputed",
          arguments: [false, true])
    func resume(damaged: Bool) throws {
        let dir = Harness.tempDir("resume")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 2 << 20, seed: 2, vocabulary: 5_000).write(to: dir + "/in.txt")
        func sluice(_ args: [String]) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
            p.arguments = args
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            return p
        }
        let common = ["run", "wordcount", "-i", dir + "/in.txt", "-o", dir + "/out", "-w", "2", "--split-size", "256k",
                      "--work-dir", dir + "/work"]
        // First run: the reduce stage hangs, so the map stage finishes and the run stalls; then
        // the coordinator is killed.
        let first = try sluice(common + ["--inject", "hang@1.*.*"])
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let log = (try? String(contentsOfFile: dir + "/work/_events.jsonl", encoding: .utf8)) ?? ""
            if log.contains("\"event\":\"stage_completed\"") { break }
            usleep(100_000)
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: dir + "/out/_SUCCESS"))
        if damaged {
            // What a power loss does to renamed files whose data never reached the disk: one
            // map output empty, another with a block of zeros in the middle.
            let outputs = (try FileManager.default.contentsOfDirectory(atPath: dir + "/work/shuffle-0"))
                .filter { $0.hasSuffix(".out") }.sorted().map { dir + "/work/shuffle-0/" + $0 }
            try #require(outputs.count >= 2)
            #expect(truncate(outputs[0], 0) == 0)
            let fd = open(outputs[1], O_WRONLY)
            let size = lseek(fd, 0, SEEK_END)
            let zeros = [UInt8](repeating: 0, count: 4096)
            #expect(pwrite(fd, zeros, zeros.count, off_t(size / 3)) == zeros.count)
            close(fd)
        }
        // Second run with --resume: stage 0 is reused, the job completes.
        let second = Process()
        second.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
        second.arguments = common + ["--resume"]
        let errors = Pipe()
        second.standardError = errors
        try second.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        second.waitUntilExit()
        #expect(second.terminationStatus == 0, "\(text)")
        #expect(text.contains("reused from the interrupted run"), "\(text)")
        if damaged { #expect(text.contains("map output lost, re-running"), "\(text)") }
        let expected = try ReferenceExecutor.run(Harness.job("wordcount"), JobArguments(inputs: [dir + "/in.txt"], output: dir + "/x"))
        #expect(try Harness.readOutput(dir + "/out").sorted() == expected[0].lines.sorted())
    }

    @Test("chaos: random throws, crashes, exits, stalls (mid-task) and corrupt spills over a multi-stage job, byte-identical output",
          arguments: [1, 2, 3])
    func chaos(seed: Int) throws {
        let dir = Harness.tempDir("chaos")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeAwkwardTexts(into: dir, seed: UInt64(seed), files: 3, linesPerFile: 300, longLine: false)
        var o = Harness.options(workers: 3, partitions: 5, splitSize: 16 << 10)
        // Faults at random records in the middle of tasks, as well as at their start.
        let spec = "throw@random:0.1:\(seed):after=random,crash@random:0.05:\(seed + 10):after=random,"
            + "exit@random:0.03:\(seed + 30),stall@random:0.03:\(seed + 40):after=random,corrupt@random:0.15:\(seed + 20)"
        o.inject = try FaultInjection(spec)
        o.maxAttempts = 8
        o.taskTimeout = 2
        let result = try Harness.checkAgainstReference("test-sort", inputs: [dir], options: o)
        #expect(result.retries + result.mapTasksRerun > 0, "faults were injected")
    }
}
