#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys

/// A started worker as its launcher sees it: the coordinator's ends of the worker's stdin,
/// stdout and stderr, and the one way to stop it. The coordinator never signals a worker
/// itself, so a launcher may start workers anywhere (a local process, `srun`, `ssh`).
public protocol WorkerHandle: AnyObject {
    /// The coordinator's number for this worker.
    var id: Int { get }
    /// Where the coordinator writes frames (the worker's stdin).
    var input: Int32 { get }
    /// Where the coordinator reads frames (the worker's stdout).
    var output: Int32 { get }
    /// The worker's stderr (its log lines), or -1; still open after `stop`, for the caller to
    /// drain and close.
    var errors: Int32 { get }
    /// Where the worker runs, for messages (`pid 1234`).
    var location: String { get }
    /// Its process id on this machine, for logs only (nil when it runs elsewhere).
    var processID: Int32? { get }
    /// Stops the worker — at once when `force`, otherwise after it finishes on its own (it was
    /// told to shut down) — closes `input` and `output`, and returns how it ended
    /// (`exit code 3`, `killed by signal 9`).
    func stop(force: Bool) -> String
}

/// Starts workers: the same binary in worker mode, with its stdin and stdout connected to the
/// coordinator. Everything else a worker needs comes in the protocol's first frame.
public protocol WorkerLauncher: Sendable {
    /// Starts worker `id`.
    func launch(id: Int) throws -> any WorkerHandle
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

    public func launch(id: Int) throws -> any WorkerHandle {
        let argv = commandPrefix + [ProcessLauncher.resolve(executable)] + arguments
        return try ProcessLauncher.spawn(id: id, argv: argv, environment: environment) { "pid \($0)" }
    }

    /// `/proc/self/exe` as a real path (in a child started through a prefix command it would
    /// name that command).
    static func resolve(_ executable: String) -> String {
        guard executable == "/proc/self/exe" else { return executable }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : executable
    }

    /// Starts `argv` with its stdin, stdout and stderr on new close-on-exec pipes (1 MiB).
    /// `gentle`: stop it with SIGTERM first (a command such as `srun` that must pass the stop
    /// on), SIGKILL only if it lingers.
    static func spawn(id: Int, argv: [String], environment: [String: String], gentle: Bool = false,
                      location: @escaping (pid_t) -> String) throws -> any WorkerHandle {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        var errChild: [Int32] = [0, 0]
        guard sluice_pipe_cloexec(&toChild) == 0 else { throw SystemError("pipe") }
        guard sluice_pipe_cloexec(&fromChild) == 0 else { throw SystemError("pipe") }
        guard sluice_pipe_cloexec(&errChild) == 0 else { throw SystemError("pipe") }
        _ = sluice_set_pipe_size(toChild[1], 1 << 20)
        _ = sluice_set_pipe_size(fromChild[1], 1 << 20)
        var env = ProcessEnvironment.current
        env["SWIFT_BACKTRACE"] = "enable=no" // a crashing worker must die, not linger in the backtracer
        for (k, v) in environment { env[k] = v }

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
        return LocalWorker(id: id, pid: pid, input: toChild[1], output: fromChild[0], errors: errChild[0],
                           location: location(pid), gentle: gentle)
    }
}

/// A worker started as a child process of the coordinator (the worker itself, or the command
/// that runs it elsewhere, such as `srun`), stopped through that process.
final class LocalWorker: WorkerHandle {
    let id: Int
    let pid: pid_t
    let input: Int32
    let output: Int32
    let errors: Int32
    let location: String
    /// Stop with SIGTERM first (the child passes it on to the real worker).
    let gentle: Bool
    private var ended: String?

    init(id: Int, pid: pid_t, input: Int32, output: Int32, errors: Int32, location: String, gentle: Bool) {
        self.id = id
        self.pid = pid
        self.input = input
        self.output = output
        self.errors = errors
        self.location = location
        self.gentle = gentle
    }

    var processID: Int32? { gentle ? nil : pid }

    func stop(force: Bool) -> String {
        if let ended { return ended }
        if force { kill(pid, gentle ? SIGTERM : SIGKILL) }
        close(input)
        close(output)
        var status: Int32 = 0
        // Give srun up to 5 s to end its step, then make sure.
        var waited = 0
        while gentle && waitpid(pid, &status, WNOHANG) == 0 {
            waited += 1
            if waited > 50 { kill(pid, SIGKILL) }
            usleep(100_000)
        }
        if !gentle { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
        var code: Int32 = 0
        switch sluice_wait_status(status, &code) {
        case 1: ended = "exit code \(code)"
        case 2: ended = "killed by signal \(code)"
        default: ended = "ended"
        }
        return ended!
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
