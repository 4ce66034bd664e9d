import Sluice

/// Jobs that exercise every operator on generated data, for the oracle tests (they compare
/// each against the reference executor) and as API examples. Hidden from `sluice jobs`
/// unless `--all` is given.
public enum ConformanceJobs {
    public static var all: [Job] { [narrow, aggregate, joins, byteJoins, viewJoins, sort, byteSort, lineSort, actions, json, slowRecords] }

    /// One JSON Lines record of `test-json`.
    struct KeyValue: Decodable {
        let key: String
        let value: Int
    }

    static let json = Job("test-json", summary: "JSON Lines {\"key\":…,\"value\":…} → key<TAB>sum of value",
                          hidden: true) { ctx in
        ctx.jsonLines(ctx.inputs, as: KeyValue.self)
            .map { ($0.key, $0.value) }
            .reduceByKey(+)
            .write(to: try ctx.output)
    }

    static let common = [
        JobParameter("n", help: "records to generate", default: "5000"),
        JobParameter("keys", help: "distinct keys", default: "300"),
        JobParameter("seed", help: "generator seed", default: "1"),
        JobParameter("skew", help: "share of records on key 0 (0 to 1)", default: "0"),
    ]

    /// Deterministic (key, value) records: `skew` of them on key 0, the rest spread.
    static func pairs(_ ctx: JobContext, salt: UInt64 = 0) throws -> [(Int, Int)] {
        let n = try ctx.intParameter("n", atLeast: 0), keys = try ctx.intParameter("keys", atLeast: 1)
        let skew = Double(try ctx.parameter("skew")) ?? 0
        var rng = UInt64(try ctx.intParameter("seed", atLeast: 0)) &+ salt &* 0x9E37_79B9
        func next() -> UInt64 {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return rng >> 17
        }
        return (0..<n).map { _ in
            let hot = Double(next() % 10_000) / 10_000 < skew
            return (hot ? 0 : Int(next() % UInt64(max(1, keys))), Int(next() % 1000) - 500)
        }
    }

    static let narrow = Job("test-narrow", summary: "map, filter, flatMap, mapPartitions, keyBy, mapValues, union",
                            parameters: common, hidden: true) { ctx in
        let data = ctx.parallelize(try pairs(ctx).map(\.1), partitions: 5)
        let other = ctx.parallelize(try pairs(ctx, salt: 7).map(\.1), partitions: 3)
        data.map { $0 * 3 }
            .filter { $0 % 2 == 0 }
            .flatMap { [$0, $0 + 1] }
            .union(other)
            .mapPartitions(setup: { _ in 0 }, process: { seen, x, emit in
                seen += 1
                try emit(x &+ 1)
            })
            .keyBy { $0 % 7 }
            .mapValues { String($0) }
            .write(to: try ctx.output)
    }

    static let aggregate = Job("test-aggregate", summary: "reduceByKey, aggregateByKey, groupByKey, distinct, countByKey, count",
                               parameters: common + [JobParameter("group-skew", help: "groupByKey's skew hint: auto, off or split:N",
                                                                  default: "auto")],
                               hidden: true) { ctx in
        let out = try ctx.output
        let data = ctx.parallelize(try pairs(ctx), partitions: 4)
        data.reduceByKey(+).write(to: out + "/reduce")
        data.aggregateByKey(Pair(0, 0), { acc, v in Pair(acc.first + v, acc.second + 1) },
                            { a, b in Pair(a.first + b.first, a.second + b.second) })
            .write(to: out + "/aggregate")
        let hint: SkewHint
        switch try ctx.parameter("group-skew") {
        case "off": hint = .off
        case let s where s.hasPrefix("split:"): hint = .split(Int(s.dropFirst(6)) ?? 2)
        default: hint = .auto
        }
        data.groupByKey(skew: hint).mapValues { $0.sorted() }.write(to: out + "/group")
        data.map { $0.1 % 50 }.distinct().write(to: out + "/distinct")
        data.countByKey()
        data.filter { $0.1 > 0 }.count()
        // A grouping whose output feeds another shuffle: its stage is a map stage.
        data.groupByKey(skew: hint).map { ($0.1.count % 7, 1) }.reduceByKey(+).write(to: out + "/group-sizes")
    }

    static let joins = Job("test-join", summary: "join, leftOuterJoin, cogroup (keys on one side only included)",
                           parameters: common, hidden: true) { ctx in
        let out = try ctx.output
        let left = ctx.parallelize(try pairs(ctx), partitions: 8)
        // At most two right rows per key (a dimension-like side), none for keys ≡ 1 mod 3.
        var perKey: [Int: Int] = [:]
        let rightRows = try pairs(ctx, salt: 3).filter { kv in
            perKey[kv.0, default: 0] += 1
            return kv.0 % 3 != 1 && perKey[kv.0]! <= 2
        }
        let right = ctx.parallelize(rightRows.map { ($0.0, String($0.1)) }, partitions: 2)
        left.join(right).map { ($0.0, Pair($0.1.0, $0.1.1)) }.write(to: out + "/join")
        left.leftOuterJoin(right).map { ($0.0, Pair($0.1.0, $0.1.1 ?? "-")) }.write(to: out + "/left")
        left.cogroup(right).map { ($0.0, Pair($0.1.0.sorted(), $0.1.1.sorted())) }.write(to: out + "/cogroup")
    }

    static let sort = Job("test-sort", summary: "sortByKey ascending over text tokens and descending over integers",
                          parameters: common, hidden: true) { ctx in
        let out = try ctx.output
        ctx.textFiles(ctx.inputs)
            .flatMap(emitting: { line, emit in try line.forEachToken(emit) })
            .distinct()
            .map { ($0, $0.count) }
            .sortByKey()
            .write(to: out + "/tokens")
        ctx.parallelize(try pairs(ctx).map { ($0.1 * 1000 + $0.0, $0.0) }, partitions: 4)
            .reduceByKey(+)
            .sortByKey(ascending: false)
            .write(to: out + "/numbers")
    }

    /// `test-join` over byte keys: the byte join (a sort-merge join on the byte sort path) and
    /// the cogroup of byte-keyed shuffles; keys with zero bytes and a shared 8-byte prefix.
    static let byteJoins = Job("test-bytejoin", summary: "join, leftOuterJoin, cogroup over Bytes keys",
                               parameters: common, hidden: true) { ctx in
        let out = try ctx.output
        var perKey: [Int: Int] = [:]
        let rightRows = try pairs(ctx, salt: 3).filter { kv in
            perKey[kv.0, default: 0] += 1
            return kv.0 % 3 != 1 && perKey[kv.0]! <= 2
        }
        let byteKey = { (k: Int) in Bytes(Array("key-\(k % 3)-\(k)".utf8) + (k % 5 == 0 ? [0] : [])) }
        let left = ctx.parallelize(try pairs(ctx).map { (byteKey($0.0), $0.1) }, partitions: 8)
        let right = ctx.parallelize(rightRows.map { (byteKey($0.0), Bytes(String($0.1))) }, partitions: 2)
        left.join(right).map { ($0.0, Pair($0.1.0, $0.1.1)) }.write(to: out + "/join")
        left.leftOuterJoin(right).map { ($0.0, Pair($0.1.0, $0.1.1 ?? "-")) }.write(to: out + "/left")
        left.cogroup(right).map { ($0.0, Pair($0.1.0.sorted(), $0.1.1.sorted())) }.write(to: out + "/cogroup")
        // The hot key on the right: its values outgrow a small budget's group limit.
        right.join(left).map { ($0.0, Pair($0.1.0, $0.1.1)) }.write(to: out + "/join-hot-right")
    }

    /// Joins of borrowed byte pairs, as the `join` job makes them: a CSV file's key views and
    /// its fields tab-joined (copied: commas and quotes) with a TSV file's, keyed by its middle
    /// column (the rest copied around it) or by its first (the record's own bytes).
    static let viewJoins = Job("test-viewjoin", summary: "join and leftOuterJoin over ByteView pairs read from CSV and TSV",
                               hidden: true) { ctx in
        guard ctx.inputs.count == 2 else { throw JobError.badParameter("test-viewjoin takes two inputs: a CSV file and a TSV file") }
        let out = try ctx.output
        let left = ctx.csv([ctx.inputs[0]]) { r in (try r.view(0), r.tabJoined()) }
        let byMiddle = ctx.csv([ctx.inputs[1]], delimiter: "\t") { r in (try r.view(1), r.tabJoined(skipping: 1)) }
        let byFirst = ctx.csv([ctx.inputs[1]], delimiter: "\t") { r in (try r.view(0), r.tabJoined(skipping: 0)) }
        func line(_ row: (ByteView, (ByteView, ByteView?)), _ w: inout ByteWriter) {
            w.write(raw: row.0.raw)
            w.write(0x09)
            w.write(raw: row.1.0.raw)
            w.write(0x09)
            if let right = row.1.1 { w.write(raw: right.raw) } else { w.write(contentsOf: "-".utf8) }
        }
        left.join(byMiddle).write(to: out + "/join") { row, w in line((row.0, (row.1.0, row.1.1)), &w) }
        left.leftOuterJoin(byMiddle).write(to: out + "/left", format: line)
        byFirst.join(left).write(to: out + "/join-first") { row, w in line((row.0, (row.1.0, row.1.1)), &w) }
        // The CSV's hot key on the right: its values outgrow a small budget's group limit.
        byMiddle.join(left).write(to: out + "/join-hot-right") { row, w in line((row.0, (row.1.0, row.1.1)), &w) }
    }

    /// The byte sort path (`sortByKey` over `Bytes` and `ByteView` keys) as users write it: lines
    /// as keys; the first token as the key with the line riding along (equal keys keep their
    /// input order), descending; borrowed line views with their lengths, descending.
    static let byteSort = Job("test-bytesort", summary: "sortByKey over Bytes and ByteView keys, both directions",
                              hidden: true) { ctx in
        let out = try ctx.output
        let lines = ctx.textFiles(ctx.inputs)
        lines.map { ($0, Unit()) }.sortByKey().write(to: out + "/lines") { kv, w in kv.0.writeText(to: &w) }
        lines.map { line in (line.tokens().first ?? Bytes([]), line) }
            .sortByKey(ascending: false)
            .write(to: out + "/first-token-desc")
        ctx.textLineViews(ctx.inputs).map { ($0, $0.count) }
            .sortByKey(ascending: false, partitions: 3)
            .write(to: out + "/views-desc") { kv, w in
                w.write(raw: kv.0.raw)
                w.write(0x09)
                kv.1.writeText(to: &w)
            }
    }

    /// A user's sort as the issue writes it (the `linesort` benchmark): the line as the key.
    static let lineSort = Job("test-linesort", summary: "a user's sort: textFiles → map { ($0, Unit()) } → sortByKey → write",
                              hidden: true) { ctx in
        ctx.textFiles(ctx.inputs).map { ($0, Unit()) }.sortByKey().write(to: try ctx.output) { kv, w in kv.0.writeText(to: &w) }
    }

    static let actions = Job("test-actions", summary: "collect, take, count and top", parameters: common, hidden: true) { ctx in
        let data = ctx.parallelize(try pairs(ctx), partitions: 4)
        data.map(\.1).filter { $0 > 400 }.collect()
        data.reduceByKey(+).sortByKey().take(7)
        data.count()
        data.map(\.1).top(5).write(to: try ctx.output)
    }

    /// Long work on each record (a busy loop of `work-ms`), telling the engine it is alive
    /// with `ctx.progress()` when `progress` is on: liveness follows progress, not the clock.
    static let slowRecords = Job("test-slow-records", summary: "long per-record work, with or without ctx.progress()",
                                 parameters: [JobParameter("n", help: "records", default: "4"),
                                              JobParameter("work-ms", help: "milliseconds of work per record", default: "1000"),
                                              JobParameter("progress", help: "on: call ctx.progress() during the work", default: "on")],
                                 hidden: true) { ctx in
        let n = try ctx.intParameter("n", atLeast: 1), work = try ctx.intParameter("work-ms", atLeast: 0)
        let reports = try ctx.parameter("progress") == "on"
        ctx.parallelize(Array(0..<n), partitions: n)
            .map { x -> (Int, Int) in
                let clock = ContinuousClock()
                let end = clock.now.advanced(by: .milliseconds(work))
                var spins = 0
                while clock.now < end {
                    spins &+= 1
                    if reports && spins % 1000 == 0 { ctx.progress() }
                }
                return (x % 2, x)
            }
            .reduceByKey(+)
            .write(to: try ctx.output)
    }
}
