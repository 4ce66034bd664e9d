#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Built-in fault injection, for tests and demos of every recovery path. A spec is a
/// comma-separated list of rules:
///
/// - `KIND@STAGE.PARTITION.ATTEMPT` — `*` matches any value: `throw@1.*.*` makes every task of
///   stage 1 fail; `crash@0.2.0` kills the worker running the first attempt of task 2 of stage 0.
/// - `KIND@random:P:SEED` — each task attempt is hit with probability P, decided by a hash of
///   (seed, stage, partition, attempt) so a run is reproducible.
///
/// Kinds: `throw` (the task fails with an error), `crash` (the worker process dies with
/// SIGKILL), `exit` (the worker exits with code 3), `hang` (the worker stops answering, heartbeats
/// included), `slow` (the task sleeps 5 s first, heartbeats going on: a straggler), `corrupt` (a map task's committed output gets a flipped byte, so a reducer's
/// checksum catches it).
///
/// The coordinator's `--inject SPEC` reaches the workers as `SLUICE_INJECT`.
public struct FaultInjection: Sendable, Equatable {
    public enum Kind: String, Sendable { case `throw`, crash, exit, hang, slow, corrupt }

    struct Rule: Sendable, Equatable {
        var kind: Kind
        var stage: Int?
        var partition: Int?
        var attempt: Int?
        var probability: Double?
        var seed: UInt64 = 0
    }

    var rules: [Rule]

    /// Parses a spec; the error names the rule at fault.
    public init(_ spec: String) throws {
        rules = try spec.split(separator: ",").map { part in
            let text = part.trimmingCharacters(in: .whitespaces)
            let pieces = text.split(separator: "@", maxSplits: 1).map(String.init)
            guard pieces.count == 2, let kind = Kind(rawValue: pieces[0]) else {
                throw JobError.badParameter("--inject: '\(text)': expected KIND@STAGE.PARTITION.ATTEMPT or KIND@random:P:SEED, KIND one of throw, crash, exit, hang, slow, corrupt")
            }
            if pieces[1].hasPrefix("random:") {
                let f = pieces[1].split(separator: ":")
                guard f.count == 3, let p = Double(f[1]), (0...1).contains(p), let seed = UInt64(f[2]) else {
                    throw JobError.badParameter("--inject: '\(text)': expected KIND@random:PROBABILITY:SEED")
                }
                return Rule(kind: kind, probability: p, seed: seed)
            }
            let f = pieces[1].split(separator: ".", omittingEmptySubsequences: false)
            func value(_ s: Substring) throws -> Int? {
                if s == "*" { return nil }
                guard let v = Int(s), v >= 0 else { throw JobError.badParameter("--inject: '\(text)': '\(s)' is not a number or *") }
                return v
            }
            guard f.count == 3 else { throw JobError.badParameter("--inject: '\(text)': expected STAGE.PARTITION.ATTEMPT") }
            return Rule(kind: kind, stage: try value(f[0]), partition: try value(f[1]), attempt: try value(f[2]))
        }
    }

    /// The fault to inject into this task attempt, if any.
    func fault(stage: Int, partition: Int, attempt: Int) -> Kind? {
        for r in rules {
            if let p = r.probability {
                var h = StableHasher(seed: r.seed)
                h.combine(UInt64(stage))
                h.combine(UInt64(partition))
                h.combine(UInt64(attempt))
                if Double(h.finalize() % 1_000_000) / 1_000_000 < p { return r.kind }
                continue
            }
            if (r.stage ?? stage) == stage && (r.partition ?? partition) == partition && (r.attempt ?? attempt) == attempt {
                return r.kind
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
