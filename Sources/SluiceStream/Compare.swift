#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Sluice
import Synchronization

/// A known reason why a view differs from the reference for a key.
public enum CauseKind: String, Codable, Sendable {
    /// The key's late events, dropped by the watermark, make up the difference exactly.
    case late
    /// The key's events in a range neither the batch view nor the speed layer covers do.
    case missingRange = "missing-range"
    /// The view counted some events twice: adding them to the reference gives the view.
    case duplicate = "duplicate-delivery"
    /// An approximate monoid's estimate (see `Cause.withinBound`).
    case approximate
    /// Late events and a missing range together.
    case several
    /// None of the above.
    case unknown

    /// The cause for people.
    public var label: String {
        switch self {
        case .late: return "late event dropped by the watermark"
        case .missingRange: return "missing batch range"
        case .duplicate: return "duplicate delivery"
        case .approximate: return "approximate monoid"
        case .several: return "late events and a missing batch range"
        case .unknown: return "unexplained"
        }
    }
}

/// Why one side differs from the reference for one key.
public struct Cause: Codable, Sendable, Equatable {
    public var kind: CauseKind
    /// The events that account for the difference (the key's late events …).
    public var events: Int
    /// For an approximate monoid, whether the estimate is within its error bound.
    public var withinBound: Bool?
    public var detail: String

    /// Whether the difference is acceptable (an approximation within its bound).
    public var isAgreement: Bool { kind == .approximate && withinBound == true }
}

/// One (key, window) compared across lambda, kappa and the reference.
public struct KeyComparison: Codable, Sendable {
    public var key: String
    public var window: String
    public var windowStart: Int64?
    public var reference: String
    public var lambda: String
    public var kappa: String
    /// Nil when lambda equals the reference.
    public var lambdaCause: Cause?
    /// Nil when kappa equals the reference.
    public var kappaCause: Cause?

    public var isEqual: Bool { lambdaCause == nil && kappaCause == nil }
}

/// Events that may explain differences: their aggregates and counts per (key, window).
@usableFromInline struct Explanation {
    var kind: CauseKind
    var values: AggregateTable
    var counts: AggregateTable
    var detail: String
}

/// The tables `StreamProgram.compare` compares.
@usableFromInline struct ComparisonInput {
    @usableFromInline var lambda: AggregateTable
    @usableFromInline var kappa: AggregateTable
    /// The exact reference (every event, the exact variant of an approximate monoid).
    @usableFromInline var reference: AggregateTable
    /// The reference with the monoid itself (the same as `reference` for exact monoids).
    @usableFromInline var referenceSame: AggregateTable
    var lambdaExplanations: [Explanation]
    var kappaExplanations: [Explanation]
}

/// How many keys (and events) one cause accounts for.
public struct CauseSummary: Codable, Sendable, Equatable {
    public var keys: Int
    public var events: Int
    public init(keys: Int, events: Int) {
        self.keys = keys
        self.events = events
    }
}

/// The result of `sluice compare`.
public struct CompareReport: Codable, Sendable {
    public var job: String
    public var log: String
    /// `fresh`: a batch view and speed layer run for the comparison; `served`: the lambda
    /// state in the store as served.
    public var mode: String
    public var aggregation: String
    /// Offsets compared: `[0, end)`.
    public var end: Int64
    /// The batch view's cut; the speed layer covers `speedRange`.
    public var cut: Int64
    public var speedRange: [Int64]
    public var batchSize: Int64
    public var allowedLateness: Int64
    /// Whether the reference is kappa's own run: the same engine job over the same events when
    /// kappa's watermark dropped none (an approximate monoid's exact reference still runs).
    public var referenceIsKappaRun: Bool
    public var lambdaLateEvents: Int
    public var kappaLateEvents: Int
    public var missingRanges: [[Int64]]
    public var duplicateBatches: [Int64]
    public var keysCompared: Int
    public var keysEqual: Int
    public var keysDifferent: Int
    /// Per cause: keys where lambda differs from the reference, and their events.
    public var lambdaCauses: [String: CauseSummary]
    /// Per cause: keys where kappa differs from the reference, and their events.
    public var kappaCauses: [String: CauseSummary]
    /// Keys whose difference has no known cause (or an approximation outside its bound).
    public var unexplained: Int
    /// Whether lambda, kappa and the reference agree (approximations within their bound count as agreement).
    public var agree: Bool
    public var differences: [KeyComparison]

    /// JSON for programs (every difference).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The report for people, with the first `limit` differences (0: all).
    public func text(limit: Int = 20) -> String {
        func range(_ a: Int64, _ b: Int64) -> String { "[\(a), \(b))" }
        func causes(_ c: [String: CauseSummary]) -> String {
            c.sorted { $0.key < $1.key }.map { kind, s in
                "\(CauseKind(rawValue: kind)?.label ?? kind): \(s.keys) key\(s.keys == 1 ? "" : "s")"
                    + (s.events > 0 ? " (\(s.events) event\(s.events == 1 ? "" : "s"))" : "")
            }.joined(separator: "; ")
        }
        var out = "compare \(job): log \(log), offsets \(range(0, end)), \(aggregation)\n"
        out += "  lambda     batch view \(range(0, cut)) on the batch engine + speed layer \(range(speedRange[0], speedRange[1]))"
        out += " (\(mode)); \(lambdaLateEvents) late event\(lambdaLateEvents == 1 ? "" : "s") in its side output\n"
        out += "  kappa      one replay of \(range(0, end)); \(kappaLateEvents) late event\(kappaLateEvents == 1 ? "" : "s") in its side output\n"
        out += referenceIsKappaRun
            ? "  reference  every event, no watermark: kappa's own run (its watermark dropped no event)\n"
            : "  reference  every event, no watermark (the same engine job)\n"
        out += "  allowed lateness \(EventTime.describeDuration(allowedLateness)), batches of \(batchSize) events\n"
        for m in missingRanges { out += "  MISSING batch range \(range(m[0], m[1])): no batch view or speed state covers it\n" }
        for b in duplicateBatches { out += "  DUPLICATE delivery in batch \(b) (offsets \(range(b * batchSize, (b + 1) * batchSize)))\n" }
        out += "keys compared   \(keysCompared)  ((key, window) pairs)\n"
        out += "keys equal      \(keysEqual)\n"
        out += "keys different  \(keysDifferent)\n"
        let lambdaKeys = lambdaCauses.values.reduce(0) { $0 + $1.keys }
        let kappaKeys = kappaCauses.values.reduce(0) { $0 + $1.keys }
        if lambdaKeys > 0 { out += "  lambda ≠ reference: \(lambdaKeys) key\(lambdaKeys == 1 ? "" : "s") — \(causes(lambdaCauses))\n" }
        if kappaKeys > 0 { out += "  kappa ≠ reference:  \(kappaKeys) key\(kappaKeys == 1 ? "" : "s") — \(causes(kappaCauses))\n" }
        if !differences.isEmpty {
            let shown = limit > 0 ? differences.prefix(limit) : differences[...]
            out += "differences" + (shown.count < differences.count ? " (first \(shown.count) of \(differences.count); --limit 0 or --json for all)" : "") + ":\n"
            func side(_ value: String, _ cause: Cause?) -> String {
                guard let cause else { return "= reference" }
                let why: String
                switch cause.kind {
                case .approximate: why = cause.withinBound == true ? "approximate, within bound" : "approximate, OUTSIDE bound"
                case .unknown: why = "unexplained"
                default: why = "\(cause.kind.rawValue) ×\(cause.events)"
                }
                return "\(value.replacingOccurrences(of: "\t", with: " "))  [\(why)]"
            }
            var rows = [["key", "window", "reference", "lambda", "kappa"]]
            for d in shown {
                rows.append([d.key, d.window, d.reference.replacingOccurrences(of: "\t", with: " "),
                             side(d.lambda, d.lambdaCause), side(d.kappa, d.kappaCause)])
            }
            let widths = (0..<5).map { c in rows.map { $0[c].count }.max()! }
            for row in rows {
                out += "  " + zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    .trimmingCharacters(in: .whitespaces) + "\n"
            }
        }
        if agree {
            out += "verdict: AGREE — lambda, kappa and the reference are equal"
            out += differences.isEmpty ? "\n" : " (up to approximations within their error bound)\n"
        } else if unexplained == 0 {
            let kinds = Set(lambdaCauses.keys).union(kappaCauses.keys).compactMap { CauseKind(rawValue: $0) }
                .filter { $0 != .approximate }.map(\.label).sorted()
            out += "verdict: DIFFER — every difference is explained (\(kinds.joined(separator: ", ")))\n"
        } else {
            out += "verdict: DIFFER — \(unexplained) key\(unexplained == 1 ? "" : "s") differ without a known cause\n"
        }
        return out
    }
}

/// How `sluice compare` runs.
public struct CompareOptions: Sendable {
    /// The watermark's allowed lateness for the speed layer and kappa (default: the job's).
    public var allowedLateness: Int64?
    /// The batch view's cut (default: the middle of the log, on a batch boundary).
    public var cut: Int64?
    /// Events per batch (default: the cut, or a quarter of the log).
    public var batchSize: Int64?
    /// Compare the lambda state in this store as served, instead of a fresh batch and speed run.
    public var served: LambdaStore?
    /// How the batch layer runs on the engine.
    public var run = RunOptions()

    public init() {}
}

/// `sluice compare`: lambda (a batch view at a cut plus the speed layer after it), kappa and
/// the reference (every event, no watermark) over the same offsets, compared key by key, each
/// difference attributed to a cause where one is known. The reference is the stream job's
/// engine job; the tests check that job against the independent reference executor and the
/// window oracle.
public enum Compare {
    public static func run(job: StreamJob, log path: String, options: CompareOptions) throws -> CompareReport {
        let log = try EventLog(path: path)
        let program = try job.program(log: log)
        // Every view is compared part by part: a fresh run's batch view, kappa and the reference
        // are made with the same reduce partitions, each holding whole keys, so only one part
        // of each is in memory at a time (a served batch view may be cut otherwise: whole).
        var run = options.run
        let parts = options.served == nil ? comparisonParts(log: log, options: options.run) : 1
        if options.served == nil { run.partitions = parts }
        // A signal stops the comparison between its steps (and within its jobs), its work
        // folder removed, rather than killing it with the folder left behind.
        StopSignals.watch()
        defer { StopSignals.unwatch() }
        let work = NSTemporaryDirectory() + "sluice-compare-\(getpid())-\(monotonicMicros())"
        defer { Durable.remove(work) }
        try Durable.makeFolder(work)

        // Lambda: a fresh batch view and speed layer, or the served state.
        let store: LambdaStore
        var speedRun: BackgroundWork?
        let speedCancelled = Flag()
        let lateness: Int64
        let end: Int64
        if let served = options.served {
            store = served
            let config = try served.requireConfig(job.name)
            lateness = config.allowedLateness ?? options.allowedLateness ?? job.allowedLateness
            if let asked = options.allowedLateness, asked != lateness {
                throw LambdaError("the served speed layer ran with an allowed lateness of \(EventTime.describeDuration(lateness)), not \(EventTime.describeDuration(asked))")
            }
            end = -1
        } else {
            end = try log.endOffset()
            lateness = options.allowedLateness ?? job.allowedLateness
            store = LambdaStore(folder: work + "/lambda")
            speedRun = try startFreshLambda(job: job, log: path, end: end, lateness: lateness, store: store, options: options,
                                            run: run, cancelled: speedCancelled)
        }

        // Kappa, and the reference (every event, no watermark: exact, and with the monoid itself
        // when it is approximate), each run as the stream job's engine job.
        func engineView(_ name: String, to upTo: Int64, lateness: Int64?, exact: Bool) throws -> [LateEvent] {
            let late = lateness == nil ? nil : "\(work)/\(name)-late"
            if let late { try Durable.makeFolder(late) }
            try Kappa.replay(job: job, log: path, to: upTo, lateness: lateness, into: "\(work)/\(name)", late: late,
                             format: .batch, exact: exact, options: run)
            return try late.map { try Kappa.gatherLate($0, into: "\(work)/\(name)-late.tsv") } ?? []
        }
        // A fresh speed layer runs on its own thread while kappa runs on the workers (kappa
        // does not touch the store): the speed layer is one thread, the workers leave room.
        var kappaLate: [LateEvent]?
        if let speedRun {
            do {
                kappaLate = try engineView("kappa", to: end, lateness: lateness, exact: false)
            } catch {
                speedCancelled.value = true
                try? speedRun.wait()
                throw error
            }
            do {
                try speedRun.wait()
            } catch {
                try stopIfSignalled() // cancelled by a signal: say so
                throw error
            }
        }
        try stopIfSignalled()
        var merged = try Serving.merge(job: job, store: store, program: program, whole: false)
        let config = try store.requireConfig(job.name)
        let size = config.batchSize
        let upTo = end >= 0 ? end : merged.coverageEnd
        let cut = merged.batchView?.cut ?? 0

        let lambda = try LambdaSide(merged: merged, store: store, size: size, upTo: upTo, program: program, log: log)
        let kappaLateEvents = try kappaLate ?? engineView("kappa", to: upTo, lateness: lateness, exact: false)
        var kappaExplanations: [Explanation] = []
        if !kappaLateEvents.isEmpty {
            kappaExplanations.append(try explain(.late, offsets: kappaLateEvents.map(\.offset), program: program, log: log,
                                                 detail: "dropped by kappa's watermark"))
        }
        // The reference runs every event without a watermark. When kappa's watermark dropped
        // none, kappa's run was that very job over the same events: its view is the reference
        // (with the monoid itself; an approximate monoid's exact variant still runs).
        let kappaIsReference = kappaLateEvents.isEmpty
        let exactIsKappa = kappaIsReference && program.relativeError == nil
        if !exactIsKappa { _ = try engineView("reference", to: upTo, lateness: nil, exact: true) }
        if program.relativeError != nil && !kappaIsReference {
            _ = try engineView("reference-same", to: upTo, lateness: nil, exact: false)
        }
        let referenceFolder = work + (exactIsKappa ? "/kappa" : "/reference")
        let referenceSameFolder = program.relativeError == nil ? referenceFolder : work + (kappaIsReference ? "/kappa" : "/reference-same")

        try stopIfSignalled()
        var compared = 0
        var differences: [KeyComparison] = []
        let speedParts = program.split(merged.speedTables, partitions: parts)
        merged.speedTables = []
        let views = PartViews(program: program, batchView: merged.batchView.map { $0.path + "/data" }, work: work, parts: parts,
                              reference: referenceFolder, referenceSame: referenceSameFolder,
                              speed: speedParts, lambdaExplanations: lambda.explanations, kappaExplanations: kappaExplanations)
        for result in try views.compareAll(threads: options.run.workers) {
            compared += result.compared
            differences += result.differences.filter { !$0.isEqual }
        }
        differences.sort { ($0.key, $0.windowStart ?? .min, $0.window) < ($1.key, $1.windowStart ?? .min, $1.window) }
        func summarize(_ causes: [Cause]) -> [String: CauseSummary] {
            var out: [String: CauseSummary] = [:]
            for c in causes {
                out[c.kind.rawValue, default: CauseSummary(keys: 0, events: 0)].keys += 1
                out[c.kind.rawValue]!.events += c.events
            }
            return out
        }
        let unexplained = differences.filter { d in
            [d.lambdaCause, d.kappaCause].contains { c in c.map { $0.kind == .unknown || ($0.kind == .approximate && $0.withinBound != true) } ?? false }
        }.count
        let agree = differences.allSatisfy { ($0.lambdaCause?.isAgreement ?? true) && ($0.kappaCause?.isAgreement ?? true) }
        return CompareReport(
            job: job.name, log: path, mode: options.served == nil ? "fresh" : "served",
            aggregation: "\(program.monoidName) per key, \(program.window)", end: upTo, cut: cut,
            speedRange: merged.speed.map { [$0.start, $0.next] } ?? [cut, cut], batchSize: size, allowedLateness: lateness,
            referenceIsKappaRun: exactIsKappa,
            lambdaLateEvents: lambda.late.count, kappaLateEvents: kappaLateEvents.count,
            missingRanges: lambda.missing.map { [$0.lowerBound, $0.upperBound] }, duplicateBatches: lambda.duplicates,
            keysCompared: compared, keysEqual: compared - differences.count, keysDifferent: differences.count,
            lambdaCauses: summarize(differences.compactMap(\.lambdaCause)), kappaCauses: summarize(differences.compactMap(\.kappaCause)),
            unexplained: unexplained, agree: agree, differences: differences)
    }

    /// Throws when a signal asked the comparison to stop.
    static func stopIfSignalled() throws {
        if let name = StopSignals.caught { throw LambdaError("compare interrupted by \(name): work folder removed") }
    }

    /// A fresh lambda in `store`: the batch view to the cut (the middle of the log by default),
    /// then the speed layer after it, started on a thread of its own.
    static func startFreshLambda(job: StreamJob, log path: String, end: Int64, lateness: Int64, store: LambdaStore,
                                 options: CompareOptions, run: RunOptions, cancelled: Flag) throws -> BackgroundWork {
        let size: Int64
        let cut: Int64
        if let c = options.cut {
            cut = c
            size = options.batchSize ?? (c > 0 ? c : max(1, end))
        } else {
            size = options.batchSize ?? max(1, end / 4)
            cut = end / 2 / size * size
        }
        _ = try store.configure(job: job.name, batchSize: size, allowedLateness: lateness)
        try BatchLayer.run(job: job, log: path, store: store, cut: cut, options: run)
        var speedOptions = SpeedOptions()
        speedOptions.until = end
        // The store is thrown away after the comparison: one checkpoint, at the end, is all
        // the speed layer needs to hand its state to the serving layer.
        speedOptions.checkpointEvery = .max
        speedOptions.checkpointInterval = .infinity
        speedOptions.isCancelled = { cancelled.value || StopSignals.caught != nil }
        let speed = speedOptions
        return BackgroundWork { try SpeedLayer(job: job, log: path, store: store).run(speed) }
    }

    /// The parts a fresh comparison goes through: about 250 000 events each (a (key, window)
    /// pair per event at most), at least the run's reduce partitions.
    static func comparisonParts(log: EventLog, options: RunOptions) -> Int {
        let events = (try? log.endOffset()) ?? 0
        return max(options.partitions ?? 2 * options.workers, Int(min(4096, (events + 249_999) / 250_000)))
    }

    /// The aggregates and per-key counts of the events at `offsets` (ascending).
    static func explain(_ kind: CauseKind, offsets: [Int64], program: any StreamProgram, log: EventLog, detail: String) throws -> Explanation {
        let values = program.makeTable(), counts = program.makeCountTable()
        if let first = offsets.first, let last = offsets.last {
            var i = 0
            try log.read(from: first, to: last + 1) { e in
                while i < offsets.count && offsets[i] < e.offset { i += 1 }
                if i < offsets.count && offsets[i] == e.offset { try program.foldCounting(e, into: values, counts: counts) }
            }
        }
        return Explanation(kind: kind, values: values, counts: counts, detail: detail)
    }

    /// The aggregates and per-key counts of the events in `range`.
    static func explain(_ kind: CauseKind, range: Range<Int64>, program: any StreamProgram, log: EventLog, detail: String) throws -> Explanation {
        let values = program.makeTable(), counts = program.makeCountTable()
        try log.read(from: range.lowerBound, to: range.upperBound) { e in try program.foldCounting(e, into: values, counts: counts) }
        return Explanation(kind: kind, values: values, counts: counts, detail: detail)
    }
}

/// What may explain lambda's differences: the speed layer's late events, the batch ranges no
/// view covers and the batches delivered twice, each with the aggregates of its events.
struct LambdaSide {
    var explanations: [Explanation] = []
    var late: [Int64] = []
    var missing: [Range<Int64>]
    var duplicates: [Int64] = []

    init(merged: MergedView, store: LambdaStore, size: Int64, upTo: Int64, program: any StreamProgram, log: EventLog) throws {
        let cut = merged.batchView?.cut ?? 0
        missing = merged.missing.map { [$0] } ?? []
        if let speed = merged.speed {
            if let bytes = try Durable.read(SpeedState.latePath(store)) {
                for line in bytes.prefix(Int(speed.lateLength)).split(separator: 0x0A) {
                    if let o = Int64(String(decoding: line.prefix { $0 != 0x09 }, as: UTF8.self)), o >= cut, o < upTo {
                        late.append(o)
                    }
                }
            }
            for b in speed.batches.values.sorted(by: { $0.id < $1.id }) where b.id >= (merged.batchView?.batchId ?? 0) {
                let lo = max(b.id * size, speed.start), hi = min((b.id + 1) * size, speed.next)
                let expected = max(0, hi - lo)
                if b.delivered > expected { duplicates.append(b.id) }
                if b.delivered < expected { missing.append(lo..<hi) }
            }
        }
        if !late.isEmpty {
            explanations.append(try Compare.explain(.late, offsets: late.sorted(), program: program, log: log,
                                                    detail: "dropped by the speed layer's watermark"))
        }
        for m in missing {
            explanations.append(try Compare.explain(.missingRange, range: m, program: program, log: log,
                                                    detail: "offsets [\(m.lowerBound), \(m.upperBound)) are not covered"))
        }
        for b in duplicates {
            let r = max(b * size, cut)..<min((b + 1) * size, upTo)
            explanations.append(try Compare.explain(.duplicate, range: r, program: program, log: log,
                                                    detail: "batch \(b) was delivered more than once"))
        }
    }
}

/// The views of a fresh comparison, part by part: each part holds whole keys of every view,
/// so parts are compared on their own — `threads` at a time, each loading only its part.
final class PartViews: @unchecked Sendable {
    let program: any StreamProgram
    let batchView: String?
    let work: String
    let parts: Int
    /// The folders of the exact reference's view and of the reference with the monoid itself.
    let reference: String
    let referenceSame: String
    /// The speed layer's tables, split by part; a part's table is dropped once compared.
    private var speed: [AggregateTable?]
    let lambdaExplanations: [Explanation]
    let kappaExplanations: [Explanation]
    private let lock = NSLock()
    private var next = 0
    private var results: [(compared: Int, differences: [KeyComparison])?] = []
    private var failure: Error?

    init(program: any StreamProgram, batchView: String?, work: String, parts: Int, reference: String, referenceSame: String,
         speed: [AggregateTable],
         lambdaExplanations: [Explanation], kappaExplanations: [Explanation]) {
        self.program = program
        self.batchView = batchView
        self.work = work
        self.parts = parts
        self.reference = reference
        self.referenceSame = referenceSame
        self.speed = speed
        self.lambdaExplanations = lambdaExplanations
        self.kappaExplanations = kappaExplanations
    }

    /// Every part's comparison, in part order.
    func compareAll(threads: Int) throws -> [(compared: Int, differences: [KeyComparison])] {
        results = Array(repeating: nil, count: parts)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, parts))) { _ in
            while let part = take() {
                do {
                    try Compare.stopIfSignalled()
                    let r = try compare(part)
                    lock.withLock { results[part] = r }
                } catch {
                    lock.withLock { if failure == nil { failure = error } }
                    return
                }
            }
        }
        if let failure = lock.withLock({ failure }) { throw failure }
        return lock.withLock { results.map { $0! } }
    }

    private func take() -> Int? {
        lock.withLock {
            guard next < parts else { return nil }
            defer { next += 1 }
            return next
        }
    }

    private func compare(_ part: Int) throws -> (compared: Int, differences: [KeyComparison]) {
        let only = parts == 1 ? nil : part
        let speedPart = lock.withLock { () -> AggregateTable? in
            defer { speed[part] = nil }
            return speed[part]
        }
        // Through one byte-key table where the program can: typed entries only for the pairs
        // that differ (most parts have none).
        let kappaFolder = work + "/kappa"
        if parts > 1, program.comparesPartsAsBytes {
            func file(_ folder: String) throws -> [UInt8] { try BatchLayer.viewPartBytes(folder, part: part) }
            let kappaLines = try file(kappaFolder)
            let same = reference == kappaFolder
            let quick = try program.comparePart(batchLines: try batchView.map(file), speed: speedPart,
                                                kappaLines: same ? nil : kappaLines,
                                                referenceLines: same ? kappaLines : try file(reference))
            guard quick.differing > 0 else { return (quick.compared, []) }
            let explained = program.compare(ComparisonInput(
                lambda: quick.lambda, kappa: quick.kappa, reference: quick.reference, referenceSame: quick.reference,
                lambdaExplanations: lambdaExplanations, kappaExplanations: kappaExplanations))
            return (quick.compared, explained.differences)
        }
        let lambda = try batchView.map { try BatchLayer.loadViewData($0, program: program, part: only) } ?? program.makeTable()
        if let speedPart { program.merge(speedPart, into: lambda) }
        let kappa = try BatchLayer.loadViewData(kappaFolder, program: program, part: only)
        let exact = reference == kappaFolder ? kappa : try BatchLayer.loadViewData(reference, program: program, part: only)
        let same = referenceSame == reference ? exact
            : referenceSame == kappaFolder ? kappa : try BatchLayer.loadViewData(referenceSame, program: program, part: only)
        return program.compare(ComparisonInput(
            lambda: lambda, kappa: kappa, reference: exact, referenceSame: same,
            lambdaExplanations: lambdaExplanations, kappaExplanations: kappaExplanations))
    }
}

/// Work on a thread of its own while the caller goes on; `wait` returns when it is done and
/// rethrows what it threw.
final class BackgroundWork: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var failure: Error?

    init(_ body: @escaping @Sendable () throws -> Void) {
        let thread = Thread { [self] in
            do { try body() } catch { failure = error }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    func wait() throws {
        done.wait()
        if let failure { throw failure }
    }
}

/// A flag one thread sets and another reads.
final class Flag: Sendable {
    private let state = Mutex(false)
    var value: Bool {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
