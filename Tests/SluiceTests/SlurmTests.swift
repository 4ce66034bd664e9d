import Foundation
@testable import Sluice
import SluiceGenerators
import SluiceJobs
import Testing

/// Workers as Slurm job steps, on a real 3-node Slurm cluster on this machine
/// (`scripts/slurm-cluster.sh up`, which `make test` runs): the same output as a local run,
/// workers on every node, and recovery when a step is killed or a node goes down.
@Suite("Slurm: workers as job steps", .serialized,
       .enabled(if: SlurmCluster.available, "no Slurm test cluster (make test brings one up with scripts/slurm-cluster.sh)"))
struct SlurmTests {
    /// Runs `sluice ARGS` inside `salloc -N3 -c2 --no-kill` (two CPUs, so two worker steps,
    /// per node); returns exit status and stderr.
    static func salloc(_ args: [String], tag: String = UUID().uuidString, nodes: Int = 3) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["salloc", "-N\(nodes)", "-c2", "--no-kill", "--quiet", Harness.sluiceBinary] + args
        p.environment = ProcessInfo.processInfo.environment.merging(["SLUICE_TEST_TAG": tag]) { $1 }
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    static func nodes(in eventLog: String) throws -> Set<String> {
        let text = try String(contentsOfFile: eventLog, encoding: .utf8)
        return Set(text.split(separator: "\n").compactMap { line -> String? in
            guard line.contains("\"event\":\"task_start\""), let r = line.range(of: "\"location\":\"node ") else { return nil }
            return String(line[r.upperBound...].prefix { $0 != " " })
        })
    }

    func input(_ dir: String, megabytes: Int = 6) throws -> String {
        let path = dir + "/in.txt"
        try TextGenerator(bytes: Int64(megabytes) << 20, seed: 5, vocabulary: 30_000).write(to: path)
        return path
    }

    func expected(_ job: String, _ input: String) throws -> [String] {
        try ReferenceExecutor.run(Harness.job(job), JobArguments(inputs: [input], output: "/unused"))[0].lines.sorted()
    }

    @Test("wordcount across 3 nodes with 3 and 6 workers: exact output, tasks on every node", arguments: [3, 6])
    func wordcount(workers: Int) throws {
        let dir = Harness.tempDir("slurm")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try input(dir)
        let (status, text) = try Self.salloc(["run", "wordcount", "--launcher", "slurm", "-w", "\(workers)", "-i", input,
                                              "-o", dir + "/out", "--work-dir", dir + "/work", "--split-size", "1m",
                                              "--progress", "off"])
        #expect(status == 0, "\(text)")
        #expect(try Harness.readOutput(dir + "/out").sorted() == expected("wordcount", input))
        #expect(try Self.nodes(in: dir + "/out/_events.jsonl") == ["n1", "n2", "n3"])
        #expect(text.contains("tasks per node: n1 "), "the summary shows the spread over nodes: \(text)")
    }

    @Test("eventsum (CSV, byte-key aggregation) across the cluster: the same output as a local run")
    func eventsum() throws {
        let dir = Harness.tempDir("slurmev")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try EventGenerator(rows: 200_000, seed: 4).write(to: dir + "/ev.csv")
        let (status, text) = try Self.salloc(["run", "eventsum", "--launcher", "slurm", "-w", "3", "-i", dir + "/ev.csv",
                                              "-o", dir + "/out", "--work-dir", dir + "/work", "--split-size", "1m", "-q"])
        #expect(status == 0, "\(text)")
        var local = Harness.options(workers: 2)
        local.splitSize = 1 << 20
        _ = try Coordinator(job: Harness.job("eventsum"), arguments: JobArguments(inputs: [dir + "/ev.csv"], output: dir + "/local"),
                            options: local).run()
        #expect(try Harness.readOutput(dir + "/out").sorted() == Harness.readOutput(dir + "/local").sorted())
        #expect(try Self.nodes(in: dir + "/out/_events.jsonl") == ["n1", "n2", "n3"])
    }

    @Test("joins (shuffled, inner, left and cogroup) across the cluster match the reference executor")
    func joins() throws {
        let dir = Harness.tempDir("slurmjoin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, text) = try Self.salloc(["run", "test-join", "--launcher", "slurm", "-w", "3", "--n", "20000",
                                              "--broadcast-threshold", "0", "-o", dir + "/out", "--work-dir", dir + "/work", "-q"])
        #expect(status == 0, "\(text)")
        let expected = try ReferenceExecutor.run(Harness.job("test-join"),
                                                 JobArguments(output: dir + "/out", parameters: ["n": "20000"]))
        for action in expected {
            #expect(try Harness.readOutput(action.outputPath!).sorted() == action.lines.sorted(), "\(action.outputPath!)")
        }
    }

    @Test("a worker step killed mid-task: its task runs again elsewhere, exact output")
    func killedStep() throws {
        let dir = Harness.tempDir("slurmkill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try input(dir, megabytes: 16)
        let tag = UUID().uuidString
        let killer = Thread {
            for _ in 0..<200 {
                usleep(50_000)
                let log = (try? String(contentsOfFile: dir + "/work/_events.jsonl", encoding: .utf8)) ?? ""
                guard log.contains("\"event\":\"task_start\"") else { continue }
                if let victim = RecoveryTests.workers(tagged: tag).first(where: { Self.isWorker($0) }) {
                    kill(victim, SIGKILL)
                    return
                }
            }
        }
        killer.start()
        let (status, text) = try Self.salloc(["run", "wordcount", "--launcher", "slurm", "-w", "3", "-i", input, "-o", dir + "/out",
                                              "--work-dir", dir + "/work", "--split-size", "1m", "--memory-per-task", "8m", "-q"], tag: tag)
        #expect(status == 0, "\(text)")
        #expect(try Harness.readOutput(dir + "/out").sorted() == expected("wordcount", input))
        let log = try String(contentsOfFile: dir + "/out/_events.jsonl", encoding: .utf8)
        #expect(log.contains("\"event\":\"worker_lost\""), "a worker step was killed")
    }

    @Test("the coordinator killed with -9: no worker step outlives it for long, hung and stalled ones included")
    func coordinatorKilled() throws {
        let dir = Harness.tempDir("slurmcoord")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tag = UUID().uuidString
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["salloc", "-N3", "-c2", "--no-kill", "--quiet", Harness.sluiceBinary, "run", "wordcount", "--launcher", "slurm",
                       "-i", "datasets/texts", "-o", dir + "/out", "--work-dir", dir + "/work", "--inject", "hang@1.*.*,stall@1.1.0", "-q"]
        p.environment = ProcessInfo.processInfo.environment.merging(["SLUICE_TEST_TAG": tag]) { $1 }
        p.standardError = FileHandle.nullDevice
        try p.run()
        var coordinator: Int32?
        for _ in 0..<200 where coordinator == nil {
            usleep(50_000)
            let log = (try? String(contentsOfFile: dir + "/work/_events.jsonl", encoding: .utf8)) ?? ""
            guard log.contains("\"stage\":1") && log.contains("\"event\":\"task_start\"") else { continue }
            coordinator = RecoveryTests.workers(tagged: tag).first { pid in
                let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
                let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                return args.count > 2 && args[0] == Harness.sluiceBinary && args[1] == "run" // not salloc
            }
        }
        guard let coordinator else {
            Issue.record("the run did not reach its reduce stage")
            return
        }
        #expect(!RecoveryTests.workers(tagged: tag).filter(Self.isWorker).isEmpty)
        kill(coordinator, SIGKILL)
        var left: [Int32] = []
        for _ in 0..<100 {
            usleep(100_000)
            left = RecoveryTests.workers(tagged: tag).filter(Self.isWorker)
            if left.isEmpty { break }
        }
        #expect(left.isEmpty, "workers still alive 10 s after their coordinator died: \(left)")
        p.waitUntilExit()
    }

    /// A `sluice worker` process (not srun, not the coordinator).
    static func isWorker(_ pid: Int32) -> Bool {
        guard let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.count == 2 && args[1] == "worker"
    }

    @Test("a node set DOWN mid-job: the job finishes on the other nodes with exact output")
    func nodeDown() throws {
        let dir = Harness.tempDir("slurmdown")
        defer {
            _ = SlurmCluster.scontrol(["update", "nodename=n2", "state=resume"])
            try? FileManager.default.removeItem(atPath: dir)
        }
        let input = try input(dir, megabytes: 16)
        let downer = Thread {
            for _ in 0..<200 {
                usleep(50_000)
                let log = (try? String(contentsOfFile: dir + "/work/_events.jsonl", encoding: .utf8)) ?? ""
                if log.contains("\"location\":\"node n2") && log.contains("\"event\":\"task_start\"") {
                    _ = SlurmCluster.scontrol(["update", "nodename=n2", "state=down", "reason=sluice-test"])
                    return
                }
            }
        }
        downer.start()
        let (status, text) = try Self.salloc(["run", "wordcount", "--launcher", "slurm", "-w", "3", "-i", input, "-o", dir + "/out",
                                              "--work-dir", dir + "/work", "--split-size", "1m", "--memory-per-task", "8m", "-q"])
        #expect(status == 0, "\(text)")
        #expect(try Harness.readOutput(dir + "/out").sorted() == expected("wordcount", input))
        let log = try String(contentsOfFile: dir + "/out/_events.jsonl", encoding: .utf8)
        #expect(log.contains("\"event\":\"worker_lost\""), "the steps on n2 were lost")
    }

    @Test("--launcher slurm outside an allocation fails at once with a clear message (exit 64)")
    func outsideAllocation() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
        p.arguments = ["run", "wordcount", "--launcher", "slurm", "-o", Harness.tempDir("noalloc") + "/out"]
        var env = ProcessInfo.processInfo.environment
        env["SLURM_JOB_ID"] = nil
        env["SLURM_JOB_NODELIST"] = nil
        env["SLURM_NODELIST"] = nil
        p.environment = env
        let errors = Pipe()
        p.standardError = errors
        try p.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 64)
        #expect(text.contains("runs inside a Slurm allocation"), "\(text)")
    }
}

/// A worker that cannot see the work folder (here: run in a mount namespace that hides it,
/// as a node without the shared filesystem would) stops the job at once, naming where it ran.
@Suite("Shared work folder probe")
struct SharedFolderProbeTests {
    @Test("a worker that cannot see the work folder refuses, and the job stops naming it",
          .enabled(if: getuid() == 0, "needs unshare -m (root)"))
    func invisibleWorkFolder() throws {
        let dir = Harness.tempDir("probe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = Harness.options(workers: 2, partitions: 2)
        o.workDir = dir + "/work"
        // The worker starts in its own mount namespace with an empty tmpfs over the work folder.
        o.launcher = ProcessLauncher(executable: Harness.sluiceBinary, commandPrefix: [
            "/usr/bin/unshare", "-m", "/bin/sh", "-c", "mount -t tmpfs none \"$0\" && exec \"$@\"", dir + "/work",
        ])
        let job = Harness.job("test-actions")
        do {
            _ = try Coordinator(job: job, arguments: JobArguments(output: dir + "/out", parameters: ["n": "100"]), options: o).run()
            Issue.record("the job should have stopped")
        } catch let failure as JobFailure {
            #expect(failure.description.contains("the work folder \(dir)/work is not visible on host"), "\(failure)")
            #expect(failure.description.contains("--work-dir must be on storage every node shares"))
        }
    }
}

/// The test cluster, if one is up (`SLURM_CONF` set and `sinfo` answers).
enum SlurmCluster {
    static let available: Bool = {
        guard ProcessInfo.processInfo.environment["SLURM_CONF"] != nil else { return false }
        return run(["sinfo", "-h"]) == 0
    }()

    static func scontrol(_ args: [String]) -> Int32 { run(["scontrol"] + args) }

    static func run(_ args: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
