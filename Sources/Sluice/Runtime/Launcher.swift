#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys

/// A started worker: its process id and the coordinator's ends of its two pipes.
public final class WorkerProcess {
    public let id: Int
    public let pid: pid_t
    /// Coordinator writes frames here (the worker's stdin).
    let toWorker: Int32
    /// Coordinator reads frames here (the worker's stdout).
    let fromWorker: Int32
    /// The worker's stderr (its log lines), or -1 when inherited.
    let errors: Int32

    init(id: Int, pid: pid_t, toWorker: Int32, fromWorker: Int32, errors: Int32 = -1) {
        self.id = id
        self.pid = pid
        self.toWorker = toWorker
        self.fromWorker = fromWorker
        self.errors = errors
    }
}

/// Starts worker processes. Local processes now; the command prefix is where a launcher for
/// other hosts plugs in (`ssh HOST`, Slurm's `srun`), since the worker only needs its
/// stdin and stdout connected to the coordinator.
public protocol WorkerLauncher: Sendable {
    /// Starts worker `id` with `environment` added to its own.
    func launch(id: Int, environment: [String: String]) throws -> WorkerProcess
}

/// Re-executes a binary (by default this one, `/proc/self/exe`) in worker mode.
public struct ProcessLauncher: WorkerLauncher {
    /// The binary; it must contain the same jobs as the coordinator.
    public var executable: String
    /// Arguments that put it in worker mode.
    public var arguments: [String]
    /// Run through this command first, e.g. `["ssh", "node7"]` or `["srun", "-N1"]`.
    public var commandPrefix: [String]
    /// Extra environment for the worker.
    public var environment: [String: String]

    public init(executable: String = "/proc/self/exe", arguments: [String] = ["worker"],
                commandPrefix: [String] = [], environment: [String: String] = [:]) {
        self.executable = executable
        self.arguments = arguments
        self.commandPrefix = commandPrefix
        self.environment = environment
    }

    public func launch(id: Int, environment extra: [String: String]) throws -> WorkerProcess {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        var errChild: [Int32] = [0, 0]
        guard sluice_pipe_cloexec(&toChild) == 0 else { throw SystemError("pipe") }
        guard sluice_pipe_cloexec(&fromChild) == 0 else { throw SystemError("pipe") }
        guard sluice_pipe_cloexec(&errChild) == 0 else { throw SystemError("pipe") }
        _ = sluice_set_pipe_size(toChild[1], 1 << 20)
        _ = sluice_set_pipe_size(fromChild[1], 1 << 20)

        // /proc/self/exe must be resolved here: in the child it would name the prefix command.
        var exe = executable
        if exe == "/proc/self/exe" {
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/exe", &buf, buf.count - 1)
            if n > 0 { exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        let argv = commandPrefix + [exe] + arguments
        var env = ProcessEnvironment.current
        env["SWIFT_BACKTRACE"] = "enable=no" // a crashing worker must die, not linger in the backtracer
        env["SLUICE_WORKER_ID"] = String(id)
        for (k, v) in environment { env[k] = v }
        for (k, v) in extra { env[k] = v }

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = sluice_spawn(&pid, argv[0], cArgv, cEnv, toChild[0], fromChild[1], errChild[1])
        close(toChild[0])
        close(fromChild[1])
        close(errChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            close(errChild[0])
            throw SystemError("cannot start worker \(argv.joined(separator: " "))", errno: rc)
        }
        return WorkerProcess(id: id, pid: pid, toWorker: toChild[1], fromWorker: fromChild[0], errors: errChild[0])
    }
}

/// The process environment as a dictionary.
enum ProcessEnvironment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { result[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return result
    }
}
