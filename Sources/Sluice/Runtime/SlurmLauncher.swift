#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Starts workers as Slurm job steps inside the allocation the coordinator runs in (`sbatch`
/// or `salloc`), the way Spark runs on YARN: no cluster manager of our own. Worker `i` runs on
/// the allocation's nodes in turn, as `srun -u --exact -N1 -n1 -c1 -w NODE -- sluice worker`; the
/// frame protocol runs unchanged over the step's stdin and stdout (`-u`: unbuffered, or srun
/// holds frames back and the run hangs). Bulk data never crosses srun's stdio: map outputs go
/// to the work folder, which every node must see (shared storage).
public struct SlurmLauncher: WorkerLauncher {
    /// The allocation's nodes, in order.
    public let nodes: [String]
    /// Worker slots the allocation holds (its CPUs): the default worker count.
    public let slots: Int
    /// The job the coordinator runs in.
    public let jobID: String
    /// The binary every node runs (on storage the nodes share); it must hold the same jobs.
    public var executable: String
    /// Extra environment for the workers (srun passes the coordinator's own on).
    public var environment: [String: String]

    /// Reads the allocation from the environment Slurm gives the coordinator; fails outside one.
    public init(environment env: [String: String] = ProcessInfo.processInfo.environment,
                executable: String = "/proc/self/exe", workerEnvironment: [String: String] = [:]) throws {
        guard let job = env["SLURM_JOB_ID"], let list = env["SLURM_JOB_NODELIST"] ?? env["SLURM_NODELIST"] else {
            throw JobError.badParameter("--launcher slurm runs inside a Slurm allocation (sbatch or salloc): SLURM_JOB_ID is not set")
        }
        jobID = job
        let names = try SlurmLauncher.hostnames(list)
        guard !names.isEmpty else { throw JobError.badParameter("the Slurm allocation \(job) lists no nodes (\(list))") }
        nodes = names
        slots = SlurmLauncher.cpus(env["SLURM_JOB_CPUS_PER_NODE"], nodes: names.count)
            ?? Int(env["SLURM_CPUS_ON_NODE"] ?? "").map { $0 * names.count } ?? names.count
        self.executable = ProcessLauncher.resolve(executable)
        environment = workerEnvironment
    }

    public func launch(id: Int) throws -> any WorkerHandle {
        let node = nodes[id % nodes.count]
        // -c1: one CPU per worker step, whatever --cpus-per-task the allocation was made with.
        let argv = ["srun", "-u", "--exact", "-N1", "-n1", "-c1", "-w", node, "--job-name", "sluice-worker-\(id)", "--",
                    executable, "worker"]
        return try ProcessLauncher.spawn(id: id, argv: argv, environment: environment, gentle: true) { pid in
            "node \(node) (srun pid \(pid))"
        }
    }

    /// Expands a Slurm host list (`n[1-3],gpu7`) with `scontrol show hostnames`.
    static func hostnames(_ list: String) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["scontrol", "show", "hostnames", list]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch {
            throw JobFailure(description: "--launcher slurm: cannot run scontrol to read the node list \(list): \(error)")
        }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw JobFailure(description: "--launcher slurm: scontrol cannot expand the node list \(list)") }
        return text.split(whereSeparator: \.isNewline).map(String.init)
    }

    /// The CPUs of `SLURM_JOB_CPUS_PER_NODE` (`2(x3),4`), summed.
    static func cpus(_ spec: String?, nodes: Int) -> Int? {
        guard let spec else { return nil }
        var total = 0
        for part in spec.split(separator: ",") {
            let pieces = part.split(separator: "(")
            guard let n = Int(pieces[0]) else { return nil }
            let times = pieces.count > 1 ? Int(pieces[1].dropFirst().dropLast()) ?? 1 : 1
            total += n * times
        }
        return total > 0 ? total : nil
    }
}
