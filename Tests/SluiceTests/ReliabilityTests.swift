import Foundation
@testable import Sluice
import SluiceGenerators
import SluiceJobs
import Testing

/// What a hostile world does to a run: full disks, concurrent runs, planted work folders,
/// changed inputs, huge records, signals. Nothing committed may be lost, and every failure is
/// one clear line.
@Suite("Reliability: disks, concurrent runs, work folders, records, signals", .serialized)
struct ReliabilityTests {
    func options(_ inject: String? = nil, workDir: String? = nil) throws -> RunOptions {
        var o = Harness.options(workers: 2, partitions: 3)
        o.inject = try inject.map { try FaultInjection($0) }
        o.workDir = workDir
        return o
    }

    func run(_ job: String, inputs: [String] = [], output: String?, parameters: [String: String] = [:],
             options: RunOptions) throws -> JobResult {
        try Coordinator(job: Harness.job(job), arguments: JobArguments(inputs: inputs, output: output, parameters: parameters),
                        options: options).run()
    }

    func failure(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no failure"
        } catch {
            return "\(error)"
        }
    }

    @Test("a full disk fails the run at once with one line naming the file; work and staging folders are removed",
          .enabled(if: getuid() == 0, "mounting a small tmpfs needs root (CI runs as root)"))
    func fullDisk() throws {
        let dir = Harness.tempDir("full")
        let small = dir + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        guard Process.run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", small]) == 0 else {
            Issue.record("cannot mount a tmpfs at \(small)")
            return
        }
        defer {
            _ = Process.run("/bin/umount", [small])
            try? FileManager.default.removeItem(atPath: dir)
        }
        try TextGenerator(bytes: 8 << 20, seed: 3, vocabulary: 400_000).write(to: dir + "/in.txt")
        var o = try options(workDir: small + "/work")
        o.splitSize = 1 << 20
        let message = failure { _ = try run("wordcount", inputs: [dir + "/in.txt"], output: dir + "/out", options: o) }
        #expect(message.contains("no space left on device") && message.contains(small + "/work/"), "\(message)")
        #expect(!message.contains("attempt 2"), "not retried: \(message)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: small).isEmpty, "the work folder is removed")
        let beside = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!beside.contains { $0.hasPrefix(".out.sluice-") }, "no staging folder left: \(beside)")
        #expect(beside.contains("out.events.jsonl") && !beside.contains("out"))
    }

    @Test("two runs to one output folder: the first to commit wins, the other fails and replaces nothing")
    func concurrentCommits() throws {
        let dir = Harness.tempDir("race")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = ["n": "3000"]
        // The slow run's reduce task waits 5 s; the fast one starts later and commits first.
        let slow = Thread.detached { [self] in
            failure { _ = try run("test-actions", output: dir + "/out", parameters: args,
                                  options: try options("slow@1.0.0", workDir: dir + "/work-slow")) }
        }
        usleep(300_000)
        let fast = try run("test-actions", output: dir + "/out", parameters: args, options: try options(workDir: dir + "/work-fast"))
        let slowResult = slow.join()
        #expect(slowResult.contains("output folder \(dir)/out already exists: another run committed it"), "\(slowResult)")
        #expect(FileManager.default.fileExists(atPath: dir + "/out/_SUCCESS"))
        let log = try String(contentsOfFile: fast.eventLog, encoding: .utf8)
        #expect(!log.contains("slow@"), "the output holds the fast run's files")
        let beside = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!beside.contains { $0.hasPrefix(".out.sluice-") }, "\(beside)")
    }

    @Test("a work folder belongs to one live run: a second run of the same command is refused, naming the first")
    func oneRunPerWorkFolder() throws {
        let dir = Harness.tempDir("lock")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = Thread.detached { [self] in
            failure { _ = try run("test-actions", output: dir + "/out1", parameters: ["n": "500"],
                                  options: try options("slow@1.0.0", workDir: dir + "/work")) }
        }
        usleep(500_000)
        let second = failure { _ = try run("test-actions", output: dir + "/out2", parameters: ["n": "500"], options: try options(workDir: dir + "/work")) }
        #expect(second.contains("work folder \(dir)/work is in use by another run (pid \(getpid()))"), "\(second)")
        #expect(first.join() == "no failure", "the first run is not disturbed")
        #expect(FileManager.default.fileExists(atPath: dir + "/out1/_SUCCESS"))
    }

    @Test("work folders that are not private are refused: a symlink, a folder open to others, another user's")
    func unsafeWorkFolders() throws {
        let dir = Harness.tempDir("unsafe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/elsewhere")
        #expect(failure { try WorkFolder.takePrivateFolder(dir + "/link", strict: true) }.contains("is a symbolic link"))
        let message = failure { _ = try run("test-actions", output: dir + "/out", options: try options(workDir: dir + "/link")) }
        #expect(message.contains("work folder \(dir)/link is not safe to use: it is a symbolic link"), "\(message)")
        #expect(try fm.contentsOfDirectory(atPath: dir + "/elsewhere").isEmpty, "nothing written through the link")
        try fm.createDirectory(atPath: dir + "/open", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        #expect(failure { try WorkFolder.takePrivateFolder(dir + "/open", strict: true) }.contains("other users may open it (mode 755)"))
        try Data().write(to: URL(fileURLWithPath: dir + "/file"))
        #expect(failure { try WorkFolder.takePrivateFolder(dir + "/file", strict: true) }.contains("is not a folder"))
        if getuid() == 0 {
            try fm.createDirectory(atPath: dir + "/theirs", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            chown(dir + "/theirs", 65534, 65534)
            #expect(failure { try WorkFolder.takePrivateFolder(dir + "/theirs", strict: true) }.contains("belongs to user 65534"))
        }
        try WorkFolder.takePrivateFolder(dir + "/fresh", strict: true)
        #expect(try fm.attributesOfItem(atPath: dir + "/fresh")[.posixPermissions] as? Int == 0o700)
    }

    @Test("work files are private (0600 in 0700 folders); part files are not")
    func fileModes() throws {
        let dir = Harness.tempDir("modes")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = try options(workDir: dir + "/work")
        o.keepWork = true
        _ = try run("test-aggregate", output: dir + "/out", parameters: ["n": "500"], options: o)
        let fm = FileManager.default
        func mode(_ p: String) throws -> Int { try fm.attributesOfItem(atPath: p)[.posixPermissions] as! Int }
        #expect(try mode(dir + "/work") == 0o700)
        #expect(try mode(dir + "/work/shuffle-0") == 0o700)
        let maps = try fm.contentsOfDirectory(atPath: dir + "/work/shuffle-0")
        #expect(!maps.isEmpty)
        for m in maps { #expect(try mode(dir + "/work/shuffle-0/" + m) == 0o600, "\(m)") }
        #expect(try mode(dir + "/work/_events.jsonl") == 0o600)
        let part = try fm.contentsOfDirectory(atPath: dir + "/out/reduce").first { $0.hasPrefix("part-") }!
        #expect(try mode(dir + "/out/reduce/" + part) & 0o044 != 0, "output stays readable as the umask allows")
    }

    @Test("--resume reuses map outputs only while every input is unchanged (size, time, inode)")
    func resumeAfterInputChange() throws {
        let dir = Harness.tempDir("stale")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = dir + "/in.txt"
        try Data("alpha beta gamma\nbeta gamma\ngamma\n".utf8).write(to: URL(fileURLWithPath: input))
        var o = try options(workDir: dir + "/work")
        o.keepWork = true
        o.resume = true
        o.overwrite = true
        _ = try run("wordcount", inputs: [input], output: dir + "/out", options: o)
        let same = try run("wordcount", inputs: [input], output: dir + "/out", options: o)
        #expect(same.reusedMapTasks > 0, "unchanged input: reused")
        usleep(10_000)
        try Data("alpha delta gamma\nbeta gamma\ngamma\n".utf8).write(to: URL(fileURLWithPath: input)) // same size
        let changed = try run("wordcount", inputs: [input], output: dir + "/out", options: o)
        #expect(changed.reusedMapTasks == 0, "changed input: nothing reused")
        #expect(try Harness.readOutput(dir + "/out").sorted() == ["alpha\t1", "beta\t1", "delta\t1", "gamma\t3"])
    }

    @Test("lost workers count against their task's attempts, not against the whole job")
    func workerLossesPerTask() throws {
        var o = try options("exit@*.*.0")
        o.maxAttempts = 2
        let result = try Harness.checkAgainstReference("test-join", parameters: ["n": "2000"], options: o)
        #expect(result.workersReplaced > o.maxAttempts * o.workers, "every first attempt lost its worker: \(result.workersReplaced)")
    }

    @Test("a line longer than the record limit is a bad record: an error naming file and line, or skipped and counted")
    func hugeLine() throws {
        let dir = Harness.tempDir("huge")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var text = Data("one two\nthree\n".utf8)
        text.append(Data(repeating: 0x61, count: 3 << 20))
        text.append(Data("\nfour two\n".utf8))
        try text.write(to: URL(fileURLWithPath: dir + "/in.txt"))
        var o = try options()
        o.maxRecordBytes = 1 << 20
        var capped = o
        capped.maxRecordBytes = 1 << 30
        capped.memoryPerTask = 64 << 20
        #expect(capped.effectiveMaxRecordBytes == 32 << 20, "never more than half the task's budget")
        let message = failure { _ = try run("wordcount", inputs: [dir + "/in.txt"], output: dir + "/out", options: o) }
        #expect(message.contains("\(dir)/in.txt:3: line (at byte 14) longer than the record limit of 1.0 MiB"), "\(message)")
        o.skipBadRecords = true
        let result = try run("wordcount", inputs: [dir + "/in.txt"], output: dir + "/out", options: o)
        #expect(result.skippedByInput == [dir + "/in.txt": 1])
        #expect(try Harness.readOutput(dir + "/out").sorted() == ["four\t1", "one\t1", "three\t1", "two\t2"])
    }

    @Test("SIGTERM stops a run cleanly: exit 143, one line, no workers, no staging or work folder left")
    func terminated() throws {
        let dir = Harness.tempDir("term")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 1 << 20, seed: 2, vocabulary: 5_000).write(to: dir + "/in.txt")
        let tag = UUID().uuidString
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
        p.arguments = ["run", "wordcount", "-i", dir + "/in.txt", "-o", dir + "/out", "-w", "2", "--work-dir", dir + "/work",
                       "--inject", "hang@1.*.*", "-q"]
        p.environment = ProcessInfo.processInfo.environment.merging(["SLUICE_TEST_TAG": tag]) { $1 }
        let errors = Pipe()
        p.standardError = errors
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let log = (try? String(contentsOfFile: dir + "/work/_events.jsonl", encoding: .utf8)) ?? ""
            if log.contains("\"event\":\"stage_completed\"") { break }
            usleep(50_000)
        }
        kill(p.processIdentifier, SIGTERM)
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 143, "\(text)")
        #expect(text.contains("error: job wordcount interrupted by SIGTERM"), "\(text)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!left.contains { $0.hasPrefix(".out.sluice-") } && !left.contains("work") && !left.contains("out"), "\(left)")
        usleep(200_000)
        #expect(RecoveryTests.workers(tagged: tag).isEmpty, "no worker outlives the coordinator")
    }

    @Test("--local-dir takes the spills that never leave a task; the work folder keeps only shuffle data")
    func localScratch() throws {
        let dir = Harness.tempDir("scratch")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 4 << 20, seed: 8, vocabulary: 200_000).write(to: dir + "/in.txt")
        try FileManager.default.createDirectory(atPath: dir + "/local", withIntermediateDirectories: true)
        var o = try options(workDir: dir + "/work")
        o.memoryPerTask = 256 << 10
        o.localDir = dir + "/local"
        o.keepWork = true
        // Watch the local folder while the job runs: spill files must show up there.
        let seen = Thread.detached { () -> Int in
            var most = 0
            for _ in 0..<2000 {
                let fm = FileManager.default
                let scratch = (try? fm.contentsOfDirectory(atPath: dir + "/local")) ?? []
                let files = scratch.reduce(0) { $0 + ((try? fm.contentsOfDirectory(atPath: dir + "/local/" + $1))?.count ?? 0) }
                most = max(most, files)
                if fm.fileExists(atPath: dir + "/done") { break }
                usleep(2_000)
            }
            return most
        }
        let result = try Harness.checkAgainstReference("wordcount", inputs: [dir + "/in.txt"], options: o)
        FileManager.default.createFile(atPath: dir + "/done", contents: nil)
        #expect(seen.join() > 0, "spill files appeared in --local-dir")
        #expect(result.stages.reduce(0) { $0 + $1.spills } > 0, "the tiny budget forces spills")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/work/tmp").isEmpty, "no spill in the work folder")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/local").isEmpty, "scratch removed when the workers end")
    }

    @Test("--local-dir scratch of killed workers is removed at the job's end; a live worker's (locked) is kept")
    func killedWorkersScratch() throws {
        let dir = Harness.tempDir("scratchkill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try TextGenerator(bytes: 2 << 20, seed: 9, vocabulary: 100_000).write(to: dir + "/in.txt")
        let local = dir + "/local"
        let fm = FileManager.default
        // A dead worker's folder with spills in it, and a live one's, locked as a worker locks it.
        try fm.createDirectory(atPath: local + "/sluice-scratch-99999999", withIntermediateDirectories: true)
        fm.createFile(atPath: local + "/sluice-scratch-99999999/s0-p0-a0.spill", contents: Data(count: 10))
        try fm.createDirectory(atPath: local + "/sluice-scratch-1", withIntermediateDirectories: true)
        let held = open(local + "/sluice-scratch-1", O_RDONLY | O_DIRECTORY)
        defer { close(held) }
        #expect(flock(held, LOCK_EX | LOCK_NB) == 0)
        // Both map tasks' workers die by SIGKILL mid-task, after spilling.
        var o = try options("crash@0.0.0:after=20000,crash@0.1.0:after=20000", workDir: dir + "/work")
        o.memoryPerTask = 256 << 10
        o.localDir = local
        let result = try Harness.checkAgainstReference("wordcount", inputs: [dir + "/in.txt"], options: o)
        #expect(result.stages.reduce(0) { $0 + $1.spills } > 0, "the tiny budget forces spills")
        #expect(try fm.contentsOfDirectory(atPath: local) == ["sluice-scratch-1"])
    }

    @Test("staging folders of runs that died are removed by the next run to the same output; a live run's are kept")
    func abandonedStaging() throws {
        let dir = Harness.tempDir("stage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/.out.sluice-99999999-1/_attempts", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/.out.sluice-1-1", withIntermediateDirectories: true) // pid 1 lives
        _ = try run("test-actions", output: dir + "/out", parameters: ["n": "100"], options: try options())
        let left = try fm.contentsOfDirectory(atPath: dir).sorted()
        #expect(left == [".out.sluice-1-1", "out"], "\(left)")
    }
}

extension Process {
    /// Runs a command to its end; returns its exit status.
    static func run(_ path: String, _ arguments: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}

extension Thread {
    /// Runs `body` on a new thread; `join` waits for its result.
    static func detached<T: Sendable>(_ body: @escaping @Sendable () -> T) -> Joinable<T> {
        let joinable = Joinable<T>()
        Thread { joinable.finish(body()) }.start()
        return joinable
    }

    /// A result another thread will set.
    final class Joinable<T: Sendable>: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var value: T?
        func finish(_ v: T) {
            value = v
            done.signal()
        }
        func join() -> T {
            done.wait()
            return value!
        }
    }
}
