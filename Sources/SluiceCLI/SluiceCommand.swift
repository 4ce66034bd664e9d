import ArgumentParser
import Foundation
import Logging
import Sluice
import SluiceStream

/// The jobs this binary knows. Set once by `SluiceMain.main(jobs:)` before parsing.
final class JobRegistry: @unchecked Sendable {
    static let shared = JobRegistry()
    private let lock = NSLock()
    private var _jobs: [Job] = []

    var jobs: [Job] {
        get { lock.withLock { _jobs } }
        set { lock.withLock { _jobs = newValue } }
    }

    func job(named name: String) throws -> Job {
        guard let job = jobs.first(where: { $0.name == name }) else {
            let names = jobs.map(\.name).joined(separator: ", ")
            throw ValidationError("no job named '\(name)'. Known jobs: \(names) (see `sluice jobs`)")
        }
        return job
    }
}

/// Entry point for `sluice` and for users' own executables:
/// ```swift
/// import SluiceCLI
/// SluiceMain.main(jobs: [myJob, otherJob])
/// ```
public enum SluiceMain {
    /// `streamJobs` are served by `sluice log|lambda|kappa|compare`; their batch layers'
    /// engine jobs are registered with `jobs`.
    public static func main(jobs: [Job], streamJobs: [StreamJob] = []) -> Never {
        JobRegistry.shared.jobs = jobs + streamJobs.map(\.engineJob)
        StreamJobRegistry.shared.jobs = streamJobs
        // `sluice run JOB --help` also shows the job's own parameters.
        let args = Array(CommandLine.arguments.dropFirst())
        if args.count >= 2, args[0] == "run", args.contains("--help") || args.contains("-h"),
           let job = jobs.first(where: { $0.name == args[1] }) {
            print(Run.helpMessage())
            print("\nJOB \(job.name.uppercased()): \(job.summary)")
            if !job.defaultInputs.isEmpty { print("  default inputs: \(job.defaultInputs.joined(separator: " "))") }
            for p in job.parameters {
                print("  --\(p.name) VALUE".padding(toLength: 28, withPad: " ", startingAt: 0) + p.help
                      + (p.defaultValue.map { " (default: \($0.isEmpty ? "none" : $0))" } ?? ""))
            }
            exit(0)
        }
        SluiceCommand.main()
        exit(0)
    }
}

struct SluiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Batch jobs written as Swift closures, run as a fused, shuffled DAG over worker processes.",
        discussion: """
        Typical use:
          sluice jobs                                  list the jobs in this binary
          sluice explain wordcount                     show the stages of a job's plan
          sluice run wordcount --input DIR --output OUT --workers 2
          sluice gen text --size 100m --output words.txt

        Exit codes: 0 success, 1 the job failed (nothing committed), 64 bad command line or job parameters,
        128+N stopped by signal N (130 SIGINT, 143 SIGTERM).
        """,
        subcommands: [ListJobs.self, Describe.self, Explain.self, Run.self, Report.self, Generate.self, LogCommand.self,
                      LambdaCommand.self, KappaCommand.self, CompareCommand.self, WorkerMode.self]
    )
}

/// `sluice jobs`
struct ListJobs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List the jobs compiled into this binary.")
    @Flag(help: "Also list the hidden test jobs.") var all = false

    func run() throws {
        let jobs = JobRegistry.shared.jobs.filter { all || !$0.hidden }
        let width = (jobs.map(\.name.count).max() ?? 0) + 2
        for job in jobs {
            print(job.name.padding(toLength: width, withPad: " ", startingAt: 0) + job.summary)
            for p in job.parameters {
                let d = p.defaultValue.map { " (default \($0))" } ?? ""
                print(String(repeating: " ", count: width) + "--param \(p.name)=…  \(p.help)\(d)")
            }
        }
        let streamJobs = StreamJobRegistry.shared.jobs.filter { all || !$0.hidden }
        guard !streamJobs.isEmpty else { return }
        print("\nStream jobs, over an event log (sluice kappa|lambda|compare JOB --log LOG; see sluice describe JOB):")
        let streamWidth = (streamJobs.map(\.name.count).max() ?? 0) + 2
        for job in streamJobs {
            print(job.name.padding(toLength: streamWidth, withPad: " ", startingAt: 0) + job.summary)
        }
    }
}

/// `sluice describe JOB`
struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "Show a job's summary, parameters and default inputs.",
                                                    discussion: "For a stream job: its allowed lateness, its feed, how to run it and, with --log, what it computes on that log.")
    @Argument(help: "The job (a batch job or a stream job).") var job: String
    @Option(help: "A stream job's event log: also show the aggregation it runs on this log's columns.") var log: String?

    func run() throws {
        if !JobRegistry.shared.jobs.contains(where: { $0.name == self.job }),
           let stream = StreamJobRegistry.shared.jobs.first(where: { $0.name == self.job }) {
            return try describe(stream)
        }
        let job = try JobRegistry.shared.job(named: self.job)
        print("\(job.name): \(job.summary)")
        if !job.defaultInputs.isEmpty { print("default inputs: \(job.defaultInputs.joined(separator: " "))") }
        if job.parameters.isEmpty { print("parameters: none") }
        for p in job.parameters {
            print("  --param \(p.name)=VALUE   \(p.help)" + (p.defaultValue.map { " (default \($0))" } ?? ""))
        }
    }

    private func describe(_ job: StreamJob) throws {
        print("\(job.name) (stream job): \(job.summary)")
        print("allowed lateness: \(EventTime.describeDuration(job.allowedLateness)) (change with --allowed-lateness)")
        if let feed = job.feed {
            print("feed: \(feed.summary)")
            print("  sluice log append --log LOG --feed \(job.name)" + (feed.defaultInputs.isEmpty ? " FILES" : "   (default inputs: \(feed.defaultInputs.joined(separator: " ")))"))
        }
        if let log {
            do {
                print("on \(log): " + (try job.aggregationDescription(schema: try EventLog(path: log).schema)))
            } catch {
                throw ValidationError("stream job \(job.name) cannot run on \(log): \(error)")
            }
        }
        print("run it with:")
        print("  sluice kappa \(job.name) --log LOG --output OUT     one parallel replay of the whole log")
        print("  sluice lambda batch|speed|query \(job.name) --log LOG")
        print("  sluice compare \(job.name) --log LOG")
    }
}

/// Options shared by `run` and `explain`.
struct JobOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Input file, folder or glob (repeatable). Defaults to the job's bundled data.")
    var input: [String] = []
    @Option(name: .shortAndLong, help: "Output folder (receives part-NNNNN files and _SUCCESS).")
    var output: String?
    @Option(name: .customLong("param"), help: "A job parameter, name=value (repeatable).")
    var params: [String] = []
    @Option(help: "Reduce partitions per shuffle, at least 1 (default: 2 × workers; a sort read straight from files gets one per half --memory-per-task of input if that is more).")
    var partitions: Int?
    @Option(name: .customLong("split-size"),
            help: "Target input split size, e.g. 32m, at least 64k (smaller sizes are raised to it); auto: two splits per worker, between 4m and 256m (64m for a job whose shuffles carry every record, such as sort and join, whose map output is as big as its input).")
    var splitSize: String = "auto"
    @Option(name: .customLong("broadcast-threshold"), help: "Broadcast a join side whose input is below this size instead of shuffling it (0: never).")
    var broadcastThreshold: String = "10m"

    /// The smallest `--split-size`: below it, per-task overhead swamps the work.
    static let minimumSplitSize: Int64 = 64 << 10

    func validate() throws {
        if let partitions, partitions < 1 { throw ValidationError("--partitions must be at least 1, got \(partitions)") }
        guard let size = try parsedSplitSize() else { return }
        guard size > 0 else { throw ValidationError("--split-size must be above 0 (at least 64k, or auto)") }
        if size < Self.minimumSplitSize { warn("--split-size \(splitSize) is below the 64k minimum; using 64k") }
    }

    /// The `--split-size` value as given (nil for `auto`), before the minimum is applied.
    private func parsedSplitSize() throws -> Int64? {
        splitSize.lowercased() == "auto" ? nil : try parseSize(splitSize, option: "--split-size")
    }

    /// The split size to plan with: nil for `auto`, else at least `minimumSplitSize`.
    func effectiveSplitSize() throws -> Int64? {
        try parsedSplitSize().map { max($0, Self.minimumSplitSize) }
    }

    func arguments(for job: Job) throws -> JobArguments {
        var parameters: [String: String] = [:]
        for p in params {
            guard let eq = p.firstIndex(of: "=") else { throw ValidationError("--param expects name=value, got '\(p)'") }
            let name = String(p[..<eq])
            guard job.parameters.contains(where: { $0.name == name }) else {
                throw ValidationError("job \(job.name) has no parameter '\(name)' (see `sluice describe \(job.name)`)")
            }
            parameters[name] = String(p[p.index(after: eq)...])
        }
        return JobArguments(inputs: input, output: output, parameters: parameters)
    }
}

/// Job parameters given as options after the job name: `--k 10`, `--left=a.csv`; a parameter
/// whose default is `false` is a flag: `--numeric` alone means `--numeric true`.
func jobOptions(_ words: [String], for job: Job) throws -> [String: String] {
    var result: [String: String] = [:]
    var i = 0
    while i < words.count {
        let word = words[i]
        guard word.hasPrefix("--") else { throw ValidationError("unexpected argument '\(word)'") }
        var name = String(word.dropFirst(2))
        var value: String
        if let eq = name.firstIndex(of: "=") {
            value = String(name[name.index(after: eq)...])
            name = String(name[..<eq])
        } else if job.parameters.contains(where: { $0.name == name && $0.defaultValue == "false" }),
                  i + 1 == words.count || words[i + 1].hasPrefix("--") {
            value = "true"
        } else {
            guard i + 1 < words.count else { throw ValidationError("--\(name) needs a value") }
            i += 1
            value = words[i]
        }
        guard job.parameters.contains(where: { $0.name == name }) else {
            throw ValidationError("unknown option --\(name) for job \(job.name) (its parameters: \(job.parameters.map(\.name).joined(separator: ", ")); see `sluice describe \(job.name)`)")
        }
        result[name] = value
        i += 1
    }
    return result
}

/// Writes `warning: …` to stderr.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

/// Parses `64k`, `256m`, `2g` or plain bytes.
func parseSize(_ s: String, option: String) throws -> Int64 {
    let lower = s.lowercased().trimmingCharacters(in: .whitespaces)
    let units: [(String, Int64)] = [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1 << 10), ("mb", 1 << 20),
                                    ("gb", 1 << 30), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1)]
    for (suffix, factor) in units where lower.hasSuffix(suffix) {
        if let v = Double(lower.dropLast(suffix.count)), v >= 0 { return Int64(v * Double(factor)) }
    }
    if let v = Int64(lower), v >= 0 { return v }
    throw ValidationError("\(option) expects a size like 64k, 256m or 2g, got '\(s)'")
}

/// `sluice explain JOB`
struct Explain_: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "explain", abstract: "Show a job's plan: stages, fused operators, shuffles, partitions.")
    @Argument(help: "The job.") var job: String
    @OptionGroup var options: JobOptions
    @Option(help: "Workers the plan is made for (sets the default partition count).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "text, dot (Graphviz: sluice explain JOB --format dot | dot -Tsvg > plan.svg) or json.")
    var format: Sluice.Explain.Format = .text
    @Argument(parsing: .allUnrecognized, help: "The job's own parameters as options: --NAME VALUE.")
    var jobParameters: [String] = []

    func run() throws {
        let job = try JobRegistry.shared.job(named: self.job)
        var args = try options.arguments(for: job)
        for (k, v) in try jobOptions(jobParameters, for: job) { args.parameters[k] = v }
        if args.output == nil { args.output = "OUTPUT" }
        let plan: String
        do {
            plan = try Sluice.Explain.render(job, args, format: format, partitions: options.partitions ?? max(2, 2 * workers),
                                             splitSize: try options.effectiveSplitSize(), workers: workers,
                                             broadcastThreshold: try parseSize(options.broadcastThreshold, option: "--broadcast-threshold"),
                                             // As `run` plans with the default --memory-per-task.
                                             rangeShareBytes: options.partitions == nil ? RunOptions().planOptions.rangeShareBytes : 0)
        } catch let error as JobError {
            throw badCommandLine(error.description, job: job)
        }
        print(plan, terminator: "")
    }
}
typealias Explain = Explain_
extension Sluice.Explain.Format: ExpressibleByArgument {}

/// `sluice run JOB`
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a job with worker processes.",
        discussion: """
        Output is committed atomically: on failure nothing is left in the output folder.

        Exit codes: 0 success; 1 the job failed (bad input, a task that kept failing; nothing is committed); \
        64 bad command line or job parameters (found before any worker starts); 128+N stopped by \
        signal N (130 SIGINT, 143 SIGTERM: workers stopped, nothing committed, temporary folders removed).
        """)
    @Argument(help: "The job (see `sluice jobs`).") var job: String
    @OptionGroup var options: JobOptions
    @Argument(parsing: .allUnrecognized, help: "The job's own parameters as options: --NAME VALUE (see `sluice describe JOB`).")
    var jobParameters: [String] = []
    @Option(name: .shortAndLong, help: "Worker processes: the core count by default (under --launcher slurm, the allocation's CPUs), at most 4 × the cores (more are reduced to that).")
    var workers: Int?
    @Option(help: ArgumentHelp("How workers start: local (child processes) or slurm (job steps in the Slurm allocation the run is in).",
                               discussion: "With slurm, run inside sbatch or salloc; the binary, the inputs and --work-dir must be on storage every node sees."))
    var launcher: LauncherKind = .local
    @Option(name: .customLong("local-dir"), help: ArgumentHelp("Node-local folder for spills and sort runs that never leave a task.",
                                                               discussion: "Default: the work folder (local launcher); each worker's $TMPDIR on its node (slurm launcher). Each worker keeps a locked sluice-scratch-PID folder there; one left by a killed worker is removed by the next worker on its node and by the coordinator at the job's end."))
    var localDir: String?
    @Option(name: .customLong("memory-per-task"), help: "Memory a task may use before spilling to disk, e.g. 256m.")
    var memoryPerTask: String = "256m"
    @Option(name: .customLong("work-dir"), help: "Folder for shuffle and spill files (default: $TMPDIR/sluice-UID/JOB-HASH, private to you, named by job and arguments; one run at a time).")
    var workDir: String?
    @Flag(name: .customLong("keep-work"), help: "Keep the work folder after the run, failed or not (shuffle files, spills, the live event log).")
    var keepWork = false
    @Flag(help: "Replace the output folder if it exists.")
    var overwrite = false
    @Option(name: .customLong("max-attempts"), help: "Attempts per task before the job fails.")
    var maxAttempts = 4
    @Option(name: .customLong("task-timeout"), help: ArgumentHelp("Seconds (above 0) a task may make no progress before it counts as hung and is retried.",
                                                               discussion: "Progress is records or bytes read or written, or a ctx.progress() call from user code; a worker that sends nothing at all for this long is hung too."))
    var taskTimeout: Double = 120
    @Option(name: .customLong("max-expanded"), help: "Largest size one gzip stream or archive entry may expand to.")
    var maxExpanded: String = "64g"
    @Option(name: .customLong("max-record-size"), help: ArgumentHelp("Longest record (line) a task may hold, e.g. 64m; at most half of --memory-per-task (or 4m).",
                                                                     discussion: "A longer line is a bad record: the job fails naming the file and byte, or with --bad-records skip it is skipped and counted."))
    var maxRecordSize: String = "64m"
    @Option(help: "Skew handling: on (split skewed join and aggregation partitions, chosen after the map stage) or off.")
    var skew: Toggle = .on
    @Option(name: .customLong("skew-factor"), help: "A partition is skewed above this many times the median size.")
    var skewFactor: Double = 5
    @Option(name: .customLong("skew-min-size"), help: "…and above this size, e.g. 1m.")
    var skewMinSize: String = "1m"
    @Option(name: .customLong("skew-splits"), help: "Force the number of splits per skewed partition (default: from the skew and the workers).")
    var skewSplits: Int?
    @Option(name: .customLong("hot-key-share"), help: "A key is reported hot above this share of a shuffle's records.")
    var hotKeyShare: Double = 0.05
    @Flag(help: "Reuse the finished map stages of an interrupted run of the same command (its work folder is kept when the coordinator dies).")
    var resume = false
    @Flag(help: "Run speculative copies of straggling tasks (1.5× the median after 75 % of a stage); first to commit wins.")
    var speculation = false
    @Option(help: ArgumentHelp("Inject faults for tests and demos, e.g. crash@0.1.0, stall@0.0.0 or throw@random:0.1:7:after=random (repeatable).",
                               discussion: "Comma-separated rules KIND@STAGE.PARTITION.ATTEMPT (* for any) or KIND@random:PROBABILITY:SEED, each optionally followed by :after=N (fire once the task has read N records), :after=random or :after=start. KIND is throw, crash, exit, stall (the task stops making progress, its process stays alive; default after=100), hang (the whole worker goes silent), slow (5 s straggler) or corrupt (a map output gets a flipped byte)."))
    var inject: [String] = []
    @Option(name: .customLong("bad-records"), help: "fail: a malformed record fails the job; skip: count it, sample it into _bad_records, go on.")
    var badRecords: BadRecords = .fail
    @Option(help: "Compress output part files: none or gzip (part-NNNNN.gz).")
    var compress: Compression = .none
    @Option(name: .customLong("event-log"), help: "Write the run's event log (JSON lines) here, in an existing, writable folder (default: OUTPUT/_events.jsonl).")
    var eventLog: String?
    @Flag(name: .shortAndLong, help: "Print no stage summary.")
    var quiet = false
    @Option(help: "Live progress on stderr: auto (redrawn on a terminal, periodic lines otherwise), on, off.")
    var progress: ProgressPrinter.Mode = .auto
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .notice

    enum BadRecords: String, ExpressibleByArgument { case fail, skip }
    enum LauncherKind: String, ExpressibleByArgument { case local, slurm }
    enum Toggle: String, ExpressibleByArgument { case on, off }
    enum Compression: String, ExpressibleByArgument { case none, gzip }

    /// Most workers per core: beyond this, workers only contend for the cores and memory.
    static let workersPerCore = 4

    mutating func validate() throws {
        if let w = workers {
            guard w >= 1 else { throw ValidationError("--workers must be at least 1") }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            if launcher == .local && w > Self.workersPerCore * cores {
                warn("--workers \(w) is more than \(Self.workersPerCore) × the \(cores) cores; using \(Self.workersPerCore * cores)")
                workers = Self.workersPerCore * cores
            }
        }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard taskTimeout > 0, taskTimeout <= 1e9 else {
            throw ValidationError("--task-timeout must be a number of seconds above 0 (and at most 1e9), got \(taskTimeout)")
        }
        if let eventLog { try Self.checkWritable(eventLog, option: "--event-log") }
        _ = try faultInjection()
    }

    /// Refuses a file path that is a folder, or whose folder is missing or cannot be written
    /// (tried by creating and removing a file in it).
    static func checkWritable(_ path: String, option: String) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw ValidationError("\(option) \(path) is a folder; give a file path")
        }
        let parent = (path as NSString).deletingLastPathComponent
        let folder = parent.isEmpty ? "." : parent
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) else {
            throw ValidationError("\(option) \(path): folder \(folder) does not exist")
        }
        guard isFolder.boolValue else { throw ValidationError("\(option) \(path): \(folder) is not a folder") }
        let probe = folder + "/.sluice-write-check-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw ValidationError("\(option) \(path): cannot write in folder \(folder): \(String(cString: strerror(errno)))")
        }
        close(fd)
        unlink(probe)
        guard access(path, F_OK) != 0 || access(path, W_OK) == 0 else {
            throw ValidationError("\(option) \(path) cannot be written: \(String(cString: strerror(errno)))")
        }
    }

    /// The `--inject` rules, all of them (each option may hold several, comma-separated).
    func faultInjection() throws -> FaultInjection? {
        guard !inject.isEmpty else { return nil }
        do { return try FaultInjection(inject.joined(separator: ",")) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let job = try JobRegistry.shared.job(named: self.job)
        var run = RunOptions()
        switch launcher {
        case .local:
            run.workers = workers ?? ProcessInfo.processInfo.activeProcessorCount
        case .slurm:
            do {
                let slurm = try SlurmLauncher()
                run.launcher = slurm
                run.workers = workers ?? slurm.slots
                run.localDir = "$TMPDIR"
            } catch let error as JobError {
                throw badCommandLine(error.description, job: job)
            }
        }
        run.partitions = options.partitions
        run.memoryPerTask = Int(try parseSize(memoryPerTask, option: "--memory-per-task"))
        run.splitSize = try options.effectiveSplitSize()
        run.broadcastThreshold = try parseSize(options.broadcastThreshold, option: "--broadcast-threshold")
        run.workDir = workDir
        run.keepWork = keepWork
        run.overwrite = overwrite
        run.maxAttempts = maxAttempts
        run.taskTimeout = taskTimeout
        run.maxExpandedBytes = try parseSize(maxExpanded, option: "--max-expanded")
        run.maxRecordBytes = Int(try parseSize(maxRecordSize, option: "--max-record-size"))
        if let localDir { run.localDir = localDir }
        run.skipBadRecords = badRecords == .skip
        run.speculation = speculation
        run.resume = resume
        run.skew.enabled = skew == .on
        run.skew.factor = skewFactor
        run.skew.minBytes = try parseSize(skewMinSize, option: "--skew-min-size")
        run.skew.splits = skewSplits
        run.skew.hotKeyShare = hotKeyShare
        run.eventLogPath = eventLog
        run.compressOutput = compress == .gzip
        run.inject = try faultInjection()
        CLILogging.bootstrap(level: logLevel)
        let logger = Logger(label: "sluice")
        let printer = ProgressPrinter(mode: quiet ? .off : progress)
        run.log = { level, line in
            printer.yieldLines()
            switch level {
            case .info: logger.info("\(line)")
            case .warning: logger.warning("\(line)")
            }
        }
        run.workerLog = { worker, line in
            printer.yieldLines()
            logger.notice("[worker \(worker)] \(line)")
        }
        run.progress = { printer.update($0) }
        SplitPlanner.warningHandler = { line in
            printer.yieldLines()
            logger.warning("\(line)")
        }
        var arguments: JobArguments
        do {
            arguments = try options.arguments(for: job)
            for (k, v) in try jobOptions(jobParameters, for: job) { arguments.parameters[k] = v }
        } catch let error as ValidationError {
            throw badCommandLine(error.message, job: job)
        }
        let coordinator = Coordinator(job: job, arguments: arguments, options: run)
        let result: JobResult
        do {
            result = try coordinator.run()
        } catch let error as JobError {
            throw badCommandLine(error.description, job: job)
        } catch let failure as JobFailure {
            var text = "error: \(failure)\n"
            if let log = failure.eventLog { text += "hint: the run's events are in \(log) (sluice report \(log))\n" }
            FileHandle.standardError.write(Data(text.utf8))
            throw ExitCode(failure.signal.map { 128 + $0 } ?? 1)
        }
        for lines in result.rendered { for line in lines { print(line) } }
        if !quiet {
            FileHandle.standardError.write(Data(Summary.render(result).utf8))
        }
    }
}

/// Reports a bad job parameter or argument found after parsing; the exit code is 64.
func badCommandLine(_ message: String, job: Job) -> ExitCode {
    FileHandle.standardError.write(Data("Error: \(message)\n  See 'sluice run \(job.name) --help' for its options and parameters.\n".utf8))
    return ExitCode.validationFailure
}

/// `sluice worker` — the mode the coordinator starts its own binary in. Not for people.
struct WorkerMode: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run as a worker (started by the coordinator).",
                                                    shouldDisplay: false)
    func run() throws {
        let code = Worker(jobs: JobRegistry.shared.jobs).run()
        if code != 0 { throw ExitCode(code) }
    }
}
