/// A lazy, partitioned collection of records of type `T`: each operator adds a node to the
/// job's graph and nothing runs until the job does. Narrow operators (`map`, `filter`,
/// `flatMap` …) are fused into one pass per task; wide ones (`reduceByKey`, `join`,
/// `sortByKey` …) cut a stage at a shuffle.
public struct Dataset<T> {
    @usableFromInline package let node: Node<T>
    @usableFromInline let graph: JobGraph

    @usableFromInline package init(_ node: Node<T>, _ graph: JobGraph) {
        self.node = node
        self.graph = graph
    }

    /// Names the node in `explain` output.
    public func named(_ label: String) -> Dataset<T> {
        node.userLabel = label
        return self
    }

    // MARK: Narrow operators

    /// One record out per record in.
    @inlinable public func map<U>(_ transform: @escaping (T) throws -> U) -> Dataset<U> {
        mapped(op: "map", transform)
    }

    @inlinable func mapped<U>(op: String, _ transform: @escaping (T) throws -> U) -> Dataset<U> {
        let parent = node
        return Dataset<U>(ClosureNode(op: op, parents: [parent], body: { task, partition, sink in
            try parent.compute(task, partition: partition) { try sink(transform($0)) }
        }, reference: { try $0.records(of: parent).map(transform) }), graph)
    }

    @inlinable func emitting<U>(op: String, _ body: @escaping (T, (U) throws -> Void) throws -> Void) -> Dataset<U> {
        let parent = node
        return Dataset<U>(ClosureNode(op: op, parents: [parent], body: { task, partition, sink in
            try parent.compute(task, partition: partition) { try body($0, sink) }
        }, reference: { ref in
            var out: [U] = []
            for t in try ref.records(of: parent) { try body(t) { out.append($0) } }
            return out
        }), graph)
    }

    /// Keeps the records for which `predicate` is true.
    @inlinable public func filter(_ predicate: @escaping (T) throws -> Bool) -> Dataset<T> {
        let parent = node
        return Dataset(ClosureNode(op: "filter", parents: [parent], body: { task, partition, sink in
            try parent.compute(task, partition: partition) { if try predicate($0) { try sink($0) } }
        }, reference: { try $0.records(of: parent).filter(predicate) }), graph)
    }

    /// Any number of records per record, returned as a sequence.
    @inlinable public func flatMap<S: Sequence>(_ transform: @escaping (T) throws -> S) -> Dataset<S.Element> {
        emitting(op: "flatMap") { t, emit in
            for u in try transform(t) { try emit(u) }
        }
    }

    /// Any number of records per record, pushed with `emit` — no array per record.
    /// ```swift
    /// lines.flatMap(emitting: { line, emit in try line.forEachToken(emit) })
    /// ```
    /// Emitting the final shape here (`forEachToken { try emit(($0, 1)) }`) saves the indirect
    /// call per record that a following `.map` would cost.
    @inlinable public func flatMap<U>(emitting body: @escaping (T, _ emit: (U) throws -> Void) throws -> Void) -> Dataset<U> {
        emitting(op: "flatMap", body)
    }

    /// Per-partition processing with state: `setup` runs once per partition, `process` for
    /// every record, `finish` at the end of the partition; each may emit records.
    /// (The reference executor treats the data as one partition: a job's result must not
    /// depend on how records happen to be partitioned, as in Spark.)
    @inlinable public func mapPartitions<U, State>(
        setup: @escaping (_ partition: Int) throws -> State,
        process: @escaping (inout State, T, _ emit: (U) throws -> Void) throws -> Void,
        finish: @escaping (inout State, _ emit: (U) throws -> Void) throws -> Void = { _, _ in }
    ) -> Dataset<U> {
        let parent = node
        return Dataset<U>(ClosureNode(op: "mapPartitions", parents: [parent], body: { task, partition, sink in
            var state = try setup(partition)
            try parent.compute(task, partition: partition) { try process(&state, $0, sink) }
            try finish(&state, sink)
        }, reference: { ref in
            var out: [U] = []
            var state = try setup(0)
            for t in try ref.records(of: parent) { try process(&state, t) { out.append($0) } }
            try finish(&state) { out.append($0) }
            return out
        }), graph)
    }

    /// Pairs every record with a key.
    @inlinable public func keyBy<K>(_ key: @escaping (T) throws -> K) -> Dataset<(K, T)> {
        mapped(op: "keyBy") { (try key($0), $0) }
    }

    /// The records of both datasets (no data moves; partitions are concatenated).
    @inlinable public func union(_ others: Dataset<T>...) -> Dataset<T> {
        Dataset(UnionNode([node] + others.map(\.node)), graph)
    }

    // MARK: Actions

    /// Writes the records as text lines into `part-NNNNN` files in the folder `path`,
    /// committed atomically with a `_SUCCESS` marker.
    @inlinable public func write(to path: String) where T: TextRepresentable {
        graph.add(WriteAction(node, path: path, ordered: node.isTotallyOrdered) { t, w in t.writeText(to: &w) })
    }

    /// Writes the records as text lines formatted by `format`.
    @inlinable public func write(to path: String, format: @escaping (T, inout ByteWriter) -> Void) {
        graph.add(WriteAction(node, path: path, ordered: node.isTotallyOrdered, format: format))
    }

    /// Counts the records.
    @discardableResult
    @inlinable public func count() -> ResultHandle<Int> {
        let action = CountAction(node)
        graph.add(action)
        return ResultHandle(action: action) { try action.total($0) }
    }

    /// Brings every record back to the coordinator.
    @discardableResult
    @inlinable public func collect() -> ResultHandle<[T]> where T: BinaryCodable & TextRepresentable {
        collect(limit: nil)
    }

    /// Brings the first `n` records (in partition order) back to the coordinator; a negative
    /// `n` is rejected when the graph is built.
    @discardableResult
    @inlinable public func take(_ n: Int) -> ResultHandle<[T]> where T: BinaryCodable & TextRepresentable {
        collect(limit: n)
    }

    @inlinable func collect(limit: Int?) -> ResultHandle<[T]> where T: BinaryCodable & TextRepresentable {
        graph.check(limit: limit)
        let action = CollectAction(node, limit: limit, encode: { t, w in t.encode(to: &w) },
                                   decode: { try T.decode(from: &$0) }, format: { t, w in t.writeText(to: &w) })
        graph.add(action)
        return ResultHandle(action: action) { try action.values($0) }
    }
}

/// A typed handle on an action's result, read from a finished run with `JobResult.value(of:)`.
public struct ResultHandle<R> {
    @usableFromInline let action: Action
    @usableFromInline let decode: ([[UInt8]]) throws -> R
    @usableFromInline init(action: Action, decode: @escaping ([[UInt8]]) throws -> R) {
        self.action = action
        self.decode = decode
    }
}

// MARK: - Operators on key-value pairs

extension Dataset {
    /// Transforms the values, keeping the keys.
    @inlinable public func mapValues<K, V, U>(_ transform: @escaping (V) throws -> U) -> Dataset<(K, U)> where T == (K, V) {
        mapped(op: "mapValues") { kv in (kv.0, try transform(kv.1)) }
    }

    /// Merges the values of each key with an associative function, combining on the map
    /// side before the shuffle.
    @inlinable public func reduceByKey<K: ShuffleKey, V: BinaryCodable>(
        partitions: Int? = nil, skew: SkewHint = .auto, _ combine: @escaping (V, V) throws -> V
    ) -> Dataset<(K, V)> where T == (K, V) {
        graph.check(partitions: partitions, of: "reduceByKey")
        let agg = Aggregator<V, V>(create: { $0 }, mergeValue: { $0 = try combine($0, $1) },
                                   mergeCombiners: { $0 = try combine($0, $1) })
        return Dataset<(K, V)>(combineByKey(node, op: "reduceByKey", aggregator: agg, mapSideCombine: true,
                                            partitions: partitions, skew: skew), graph)
    }

    /// `reduceByKey` over borrowed byte keys (tokens of `textLineViews`): the fastest text
    /// path — no allocation per record, values kept inline in a flat byte-key table (so they
    /// must be plain values: integers, floating point, `BitwiseCopyable` structs); the keys come
    /// out as owned `Bytes`.
    @inlinable public func reduceByKey<V: BinaryCodable & BitwiseCopyable>(
        partitions: Int? = nil, _ combine: @escaping (V, V) throws -> V
    ) -> Dataset<(Bytes, V)> where T == (ByteView, V) {
        graph.check(partitions: partitions, of: "reduceByKey")
        return Dataset<(Bytes, V)>(reduceByteKeys(node, combine: combine, partitions: partitions), graph)
    }

    /// Folds the values of each key into an accumulator starting at `zero`: `seq` adds a
    /// value, `comb` merges two accumulators (both must be associative). A skewed reduce
    /// partition is aggregated in two steps (partials, then a merge with `comb`); `skew`
    /// overrides the run's `--skew` for this operator.
    @inlinable public func aggregateByKey<K: ShuffleKey, V: BinaryCodable, U: BinaryCodable>(
        _ zero: U, partitions: Int? = nil, skew: SkewHint = .auto,
        _ seq: @escaping (U, V) throws -> U, _ comb: @escaping (U, U) throws -> U
    ) -> Dataset<(K, U)> where T == (K, V) {
        graph.check(partitions: partitions, of: "aggregateByKey")
        let agg = Aggregator<V, U>(create: { try seq(zero, $0) }, mergeValue: { $0 = try seq($0, $1) },
                                   mergeCombiners: { $0 = try comb($0, $1) })
        return Dataset<(K, U)>(combineByKey(node, op: "aggregateByKey", aggregator: agg, mapSideCombine: true,
                                            partitions: partitions, skew: skew), graph)
    }

    /// All values of each key, as an array (no map-side combine: it would not shrink the data).
    /// A hot key's partition is grouped in two steps (partial groups, then one merge);
    /// `skew` overrides the run's `--skew` for this operator.
    @inlinable public func groupByKey<K: ShuffleKey, V: BinaryCodable>(
        partitions: Int? = nil, skew: SkewHint = .auto
    ) -> Dataset<(K, [V])> where T == (K, V) {
        graph.check(partitions: partitions, of: "groupByKey")
        let agg = Aggregator<V, [V]>(create: { [$0] }, mergeValue: { $0.append($1) },
                                     mergeCombiners: { $0 += $1 }, growsBy: { $0.estimatedMemory })
        return Dataset<(K, [V])>(combineByKey(node, op: "groupByKey", aggregator: agg, mapSideCombine: false,
                                              partitions: partitions, skew: skew), graph)
    }

    /// For each key on either side, its values from both sides.
    @inlinable public func cogroup<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>(
        _ other: Dataset<(K, W)>, partitions: Int? = nil
    ) -> Dataset<(K, ([V], [W]))> where T == (K, V) {
        graph.check(partitions: partitions, of: "cogroup")
        return Dataset<(K, ([V], [W]))>(cogroupByKey(node, other.node, partitions: partitions), graph)
    }

    /// Inner join on the key: one record per matching pair of values. A side whose input is
    /// below `--broadcast-threshold` is broadcast instead of shuffled; skewed partitions are
    /// split when the job runs.
    @inlinable public func join<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>(
        _ other: Dataset<(K, W)>, partitions: Int? = nil, skew: SkewHint = .auto
    ) -> Dataset<(K, (V, W))> where T == (K, V) {
        graph.check(partitions: partitions, of: "join")
        return Dataset<(K, (V, W))>(innerJoin(node, other.node, partitions: partitions, skew: skew), graph)
    }

    /// Left outer join: every left record, with each matching right value or `nil`.
    @inlinable public func leftOuterJoin<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>(
        _ other: Dataset<(K, W)>, partitions: Int? = nil, skew: SkewHint = .auto
    ) -> Dataset<(K, (V, W?))> where T == (K, V) {
        graph.check(partitions: partitions, of: "leftOuterJoin")
        return Dataset<(K, (V, W?))>(leftJoin(node, other.node, partitions: partitions, skew: skew), graph)
    }

    /// Inner join of borrowed byte pairs (`CSVRecord.view`, `CSVRecord.tabJoined`): records
    /// cross the shuffle as bytes and reducers sort-merge them, with no allocation or decoding
    /// per record on either side. The matches come out borrowed too, valid while the record
    /// is processed (`Bytes(view)` keeps one). Broadcast and skew splitting as for `join`.
    @inlinable public func join(
        _ other: Dataset<(ByteView, ByteView)>, partitions: Int? = nil, skew: SkewHint = .auto
    ) -> Dataset<(ByteView, (ByteView, ByteView))> where T == (ByteView, ByteView) {
        graph.check(partitions: partitions, of: "join")
        return Dataset<(ByteView, (ByteView, ByteView))>(
            byteViewJoin(node, other.node, outer: false, partitions: partitions, skew: skew) { ($0, ($1, $2!)) }, graph)
    }

    /// Left outer join of borrowed byte pairs: as `join` of byte pairs, with every left record
    /// kept (`nil` right value when none matches).
    @inlinable public func leftOuterJoin(
        _ other: Dataset<(ByteView, ByteView)>, partitions: Int? = nil, skew: SkewHint = .auto
    ) -> Dataset<(ByteView, (ByteView, ByteView?))> where T == (ByteView, ByteView) {
        graph.check(partitions: partitions, of: "leftOuterJoin")
        return Dataset<(ByteView, (ByteView, ByteView?))>(
            byteViewJoin(node, other.node, outer: true, partitions: partitions, skew: skew) { ($0, ($1, $2)) }, graph)
    }

    /// Sorts by key across all partitions: range partitioning from a key sample, then a sort
    /// of each partition, so part 0 holds the smallest keys and the parts are in order.
    @inlinable public func sortByKey<K: ShuffleKey & Comparable, V: BinaryCodable>(
        ascending: Bool = true, partitions: Int? = nil
    ) -> Dataset<(K, V)> where T == (K, V) {
        graph.check(partitions: partitions, of: "sortByKey")
        return Dataset<(K, V)>(Sluice.sortByKey(node, ascending: ascending, partitions: partitions), graph)
    }

    /// `sortByKey` over `Bytes` keys (lines, tokens): the byte sort path — records cross the
    /// shuffle and are sorted as bytes (a normalised-prefix radix sort in large buffers, no
    /// decoding or allocation per record until the key is handed out). Order: memcmp, shorter
    /// first on a common prefix, as `Bytes`'s `<`.
    @inlinable public func sortByKey<V: BinaryCodable>(
        ascending: Bool = true, partitions: Int? = nil
    ) -> Dataset<(Bytes, V)> where T == (Bytes, V) {
        graph.check(partitions: partitions, of: "sortByKey")
        return Dataset<(Bytes, V)>(sortByteKeys(node, ascending: ascending, partitions: partitions), graph)
    }

    /// `sortByKey` over borrowed byte keys (`textLineViews` lines): the byte sort path with no
    /// allocation per record on either side. The keys come out borrowed too, valid while the
    /// record is processed (`Bytes(view)` keeps one).
    @inlinable public func sortByKey<V: BinaryCodable>(
        ascending: Bool = true, partitions: Int? = nil
    ) -> Dataset<(ByteView, V)> where T == (ByteView, V) {
        graph.check(partitions: partitions, of: "sortByKey")
        return Dataset<(ByteView, V)>(sortByteKeys(node, ascending: ascending, partitions: partitions), graph)
    }

    /// Writes `key<TAB>value` lines.
    @inlinable public func write<K: TextRepresentable, V: TextRepresentable>(to path: String) where T == (K, V) {
        graph.add(WriteAction(node, path: path, ordered: node.isTotallyOrdered) { kv, w in
            kv.0.writeText(to: &w)
            w.write(0x09)
            kv.1.writeText(to: &w)
        })
    }

    /// Counts the records of each key (map-side combined), brought back to the coordinator.
    @discardableResult
    @inlinable public func countByKey<K: ShuffleKey & TextRepresentable, V>() -> ResultHandle<[K: Int]> where T == (K, V) {
        let counted = mapped(op: "countByKey") { ($0.0, 1) }.reduceByKey(+)
        let action = CollectAction(counted.node, limit: nil, encode: { kv, w in
            kv.0.encode(to: &w)
            kv.1.encode(to: &w)
        }, decode: { r in (try K.decode(from: &r), try Int.decode(from: &r)) }, format: { kv, w in
            kv.0.writeText(to: &w)
            w.write(0x09)
            kv.1.writeText(to: &w)
        })
        graph.add(action)
        return ResultHandle(action: action) { Dictionary(uniqueKeysWithValues: try action.values($0)) }
    }

    /// Brings every `(key, value)` record back to the coordinator.
    @discardableResult
    @inlinable public func collect<K: BinaryCodable & TextRepresentable, V: BinaryCodable & TextRepresentable>() -> ResultHandle<[(K, V)]> where T == (K, V) {
        pairCollect(limit: nil)
    }

    /// Brings the first `n` `(key, value)` records back to the coordinator; a negative `n` is
    /// rejected when the graph is built.
    @discardableResult
    @inlinable public func take<K: BinaryCodable & TextRepresentable, V: BinaryCodable & TextRepresentable>(_ n: Int) -> ResultHandle<[(K, V)]> where T == (K, V) {
        pairCollect(limit: n)
    }

    @inlinable func pairCollect<K: BinaryCodable & TextRepresentable, V: BinaryCodable & TextRepresentable>(limit: Int?) -> ResultHandle<[(K, V)]> where T == (K, V) {
        graph.check(limit: limit)
        let action = CollectAction(node, limit: limit, encode: { kv, w in
            kv.0.encode(to: &w)
            kv.1.encode(to: &w)
        }, decode: { r in (try K.decode(from: &r), try V.decode(from: &r)) }, format: { kv, w in
            kv.0.writeText(to: &w)
            w.write(0x09)
            kv.1.writeText(to: &w)
        })
        graph.add(action)
        return ResultHandle(action: action) { try action.values($0) }
    }
}

extension Dataset where T: ShuffleKey {
    /// The distinct records (map-side de-duplicated, then shuffled).
    @inlinable public func distinct(partitions: Int? = nil) -> Dataset<T> {
        graph.check(partitions: partitions, of: "distinct")
        let keyed = mapped(op: "distinct") { ($0, Unit()) }
        let agg = Aggregator<Unit, Unit>(create: { $0 }, mergeValue: { _, _ in }, mergeCombiners: { _, _ in })
        let reduced = combineByKey(keyed.node, op: "distinct", aggregator: agg, mapSideCombine: true, partitions: partitions)
        return Dataset<(T, Unit)>(reduced, graph).mapped(op: "keys") { $0.0 }
    }
}

extension Dataset where T: BinaryCodable {
    /// The `n` greatest records under `areInIncreasingOrder`, greatest first, as a single
    /// ordered partition: each task keeps its own top `n`, one reducer merges them. A negative
    /// `n` is rejected when the graph is built.
    @inlinable public func top(_ n: Int, by areInIncreasingOrder: @escaping (T, T) -> Bool) -> Dataset<T> {
        if n < 0 { graph.reject("top(\(n)): n must be at least 0") }
        let before: (T, T) -> Bool = { areInIncreasingOrder($1, $0) }
        let local: Dataset<(Int, T)> = mapPartitions(setup: { _ in [T]() }, process: { kept, t, _ in
            kept.append(t)
            if kept.count >= 2 * n + 64 {
                kept.sort(by: before)
                kept.removeLast(kept.count - n)
            }
        }, finish: { kept, emit in
            kept.sort(by: before)
            for t in kept.prefix(n) { try emit((0, t)) }
        })
        let result: Dataset<T> = local.groupByKey(partitions: 1).emitting(op: "top(\(n))") { kv, emit in
            for t in kv.1.sorted(by: before).prefix(n) { try emit(t) }
        }
        result.node.ordersOutput = true
        return result
    }
}

extension Dataset where T: BinaryCodable & Comparable {
    /// The `n` greatest records, greatest first.
    @inlinable public func top(_ n: Int) -> Dataset<T> { top(n, by: <) }
}
