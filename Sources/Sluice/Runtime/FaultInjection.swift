#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Built-in fault injection, for tests and demos of every recovery path. A spec is a
/// comma-separated list of rules `KIND@WHERE[:after=WHEN]`:
///
/// - WHERE is `STAGE.PARTITION.ATTEMPT` — `*` matches any value: `throw@1.*.*` makes every
///   task of stage 1 fail; `crash@0.2.0` kills the worker running the first attempt of task 2
///   of stage 0 — or `random:P:SEED`: each task attempt is hit with probability P, decided by a
///   hash of (seed, stage, partition, attempt) so a run is reproducible.
/// - WHEN is `start` (when the task is assigned), a record count N (once the task has read N
///   records, mid-task), or `random` (at a record between 1 and 10 000 chosen by a hash of the
///   task attempt). A task with fewer records meets its fault when its input ends, before it
///   commits anything, so a matching rule always fires. `stall` defaults to `after=100`, every
///   other kind to `start`.
///
/// Kinds, each behaving like the failure it stands for:
/// - `throw`: the task fails with an error (mid-task: once its input is read, before commit).
/// - `crash`: the worker process dies with SIGKILL, wherever the task is.
/// - `exit`: the worker process exits with code 3, wherever the task is.
/// - `stall`: the task's thread stops where it is, making no more progress, while the process
///   and its heartbeat thread stay alive (a task stuck in a lock or an endless loop).
/// - `hang`: the whole worker stops answering, heartbeats included (a frozen process).
/// - `slow`: the task sleeps 5 s first, heartbeats and progress going on (a straggler).
/// - `corrupt`: a map task's committed output gets a flipped byte, so a reducer's checksum
///   catches it.
///
/// The spec travels to workers in the protocol's setup frame.
public struct FaultInjection: Sendable, Equatable, CustomStringConvertible {
    /// What goes wrong.
    public enum Kind: String, Sendable, CaseIterable { case `throw`, crash, exit, stall, hang, slow, corrupt }

    /// When, in a task attempt, a fault fires.
    enum Trigger: Sendable, Equatable {
        /// When the task is assigned, before it reads anything.
        case start
        /// Once the task has read this many records.
        case records(Int)
        /// At a record chosen by a hash of the attempt (reproducible).
        case random
    }

    struct Rule: Sendable, Equatable {
        var kind: Kind
        var stage: Int?
        var partition: Int?
        var attempt: Int?
        var probability: Double?
        var seed: UInt64 = 0
        var trigger: Trigger
    }

    /// A fault chosen for one task attempt: what, and after how many records (0: at once).
    struct Armed: Sendable, Equatable {
        var kind: Kind
        var afterRecords: Int
    }

    var rules: [Rule]
    /// The spec as the user wrote it.
    public let description: String

    /// Parses a spec; the error names the rule at fault.
    public init(_ spec: String) throws {
        description = spec
        rules = try spec.split(separator: ",").map { try FaultInjection.parse(rule: $0.trimmingCharacters(in: .whitespaces)) }
    }

    private static func parse(rule text: String) throws -> Rule {
        let kinds = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        let pieces = text.split(separator: "@", maxSplits: 1).map(String.init)
        guard pieces.count == 2, let kind = Kind(rawValue: pieces[0]) else {
            throw JobError.badParameter("--inject: '\(text)': expected KIND@STAGE.PARTITION.ATTEMPT or KIND@random:P:SEED, optionally :after=N|random|start; KIND one of \(kinds)")
        }
        var target = pieces[1]
        var trigger: Trigger = kind == .stall ? .records(100) : .start
        if let range = target.range(of: ":after=") {
            let when = String(target[range.upperBound...])
            target = String(target[..<range.lowerBound])
            switch when {
            case "start": trigger = .start
            case "random": trigger = .random
            default:
                guard let n = Int(when), n > 0 else {
                    throw JobError.badParameter("--inject: '\(text)': after= takes a record count above 0, random or start")
                }
                trigger = .records(n)
            }
        }
        if target.hasPrefix("random:") {
            let f = target.split(separator: ":")
            guard f.count == 3, let p = Double(f[1]), (0...1).contains(p), let seed = UInt64(f[2]) else {
                throw JobError.badParameter("--inject: '\(text)': expected KIND@random:PROBABILITY:SEED")
            }
            return Rule(kind: kind, probability: p, seed: seed, trigger: trigger)
        }
        let f = target.split(separator: ".", omittingEmptySubsequences: false)
        func value(_ s: Substring) throws -> Int? {
            if s == "*" { return nil }
            guard let v = Int(s), v >= 0 else { throw JobError.badParameter("--inject: '\(text)': '\(s)' is not a number or *") }
            return v
        }
        guard f.count == 3 else { throw JobError.badParameter("--inject: '\(text)': expected STAGE.PARTITION.ATTEMPT") }
        return Rule(kind: kind, stage: try value(f[0]), partition: try value(f[1]), attempt: try value(f[2]), trigger: trigger)
    }

    /// The fault to inject into this task attempt, if any.
    func fault(stage: Int, partition: Int, attempt: Int) -> Armed? {
        func hash(_ seed: UInt64) -> UInt64 {
            var h = StableHasher(seed: seed)
            h.combine(UInt64(stage))
            h.combine(UInt64(partition))
            h.combine(UInt64(attempt))
            return h.finalize()
        }
        for r in rules {
            if let p = r.probability {
                guard Double(hash(r.seed) % 1_000_000) / 1_000_000 < p else { continue }
            } else if (r.stage ?? stage) != stage || (r.partition ?? partition) != partition || (r.attempt ?? attempt) != attempt {
                continue
            }
            switch r.trigger {
            case .start: return Armed(kind: r.kind, afterRecords: 0)
            case .records(let n): return Armed(kind: r.kind, afterRecords: n)
            case .random: return Armed(kind: r.kind, afterRecords: 1 + Int(hash(r.seed ^ 0x5EED) % 10_000))
            }
        }
        return nil
    }
}

/// Thrown by an injected `throw` fault.
struct InjectedFailure: Error, CustomStringConvertible {
    var description: String { "injected failure (--inject)" }
}

/// Flips one byte in the middle of a file (the `corrupt` fault).
func corruptFile(_ path: String) {
    let fd = open(path, O_RDWR)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    guard st.st_size > 0 else { return }
    let at = off_t(st.st_size / 3)
    var b: UInt8 = 0
    pread(fd, &b, 1, at)
    b ^= 0x5A
    pwrite(fd, &b, 1, at)
}
