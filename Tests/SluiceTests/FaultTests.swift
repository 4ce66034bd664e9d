import Foundation
import Sluice
import SluiceJobs
import Testing

/// Failures never lose or double a record: retried tasks, crashed workers, corrupt map
/// outputs; and a task that always fails stops the job cleanly with nothing committed.
@Suite("Faults and commit protocol", .serialized)
struct FaultTests {
    func options(_ inject: String?, maxAttempts: Int = 4, timeout: Double = 120) throws -> RunOptions {
        var o = Harness.options(workers: 2, partitions: 3, maxAttempts: maxAttempts)
        o.inject = try inject.map { try FaultInjection($0) }
        o.injectSpec = inject
        o.taskTimeout = timeout
        return o
    }

    @Test("injected faults give the fault-free result", arguments: [
        "throw@0.0.0", "crash@0.1.0", "exit@1.*.0", "corrupt@0.*.0", "throw@random:0.3:11",
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
