/// The wide operators, built as closures inside `@inlinable` functions so that both the map
/// side (combine table, partitioned writer) and the reduce side (external aggregation or
/// sort) are specialised for the job's key and value types (see `ClosureNode`).

/// Writes `(K, V)` records hash- (or otherwise) partitioned, as they are; with
/// `lengthPrefixedValues`, each value preceded by its length (`SortRecord.writeValue`), so a
/// reducer can index `Bytes`-keyed records without decoding them (the byte join).
@inlinable func writePartitioned<K: ShuffleKey, V: BinaryCodable>(
    _ source: Node<(K, V)>, _ task: TaskContext, _ partition: Int, _ path: String, partitions: Int,
    lengthPrefixedValues: Bool = false, partitioner: (K) -> Int
) throws -> MapOutputStats {
    let writer = PartitionedWriter(partitions: partitions, budget: task.memoryBudget,
                                   spillPrefix: task.tempPrefix + ".map", metrics: task.metrics)
    var sketch = HeavyHitters<K>()
    try source.compute(task, partition: partition) { kv in
        sketch.offer(kv.0)
        try writer.add(partition: partitioner(kv.0)) { w in
            kv.0.encode(to: &w)
            if lengthPrefixedValues { SortRecord.writeValue(to: &w) { kv.1.encode(to: &$0) } } else { kv.1.encode(to: &w) }
        }
    }
    var stats = try writer.commit(to: path)
    stats.record(sketch)
    return stats
}

/// Folds the values of each key into combiners `C`: on the map side first when
/// `mapSideCombine` (reduceByKey, aggregateByKey, countByKey, distinct), then on the reduce
/// side with an external (spilling) hash aggregation.
///
/// A skewed reduce partition may be split in two steps (see `SkewPlanner`): its splits fold
/// their map outputs into partial combiners written to partial files, and a merge task folds
/// those with `mergeCombiners` before the rest of the stage runs.
@inlinable func combineByKey<K: ShuffleKey, V: BinaryCodable, C: BinaryCodable>(
    _ source: Node<(K, V)>, op: String, aggregator agg: Aggregator<V, C>, mapSideCombine: Bool, partitions: Int?,
    skew: SkewHint = .auto
) -> Node<(K, C)> {
    let dep = ShuffleDependency(parent: source, partitions: partitions,
                             writeDescription: mapSideCombine ? "map-side combine → hash-partition" : "hash-partition",
                             combines: mapSideCombine)
    dep.skewSplitting = .twoStep
    dep.skewHint = skew
    dep.mapTask = { [unowned dep] task, partition, path in
        let r = task.plan.partitions(of: dep)
        guard mapSideCombine else {
            // Byte keys: values carry their length, so reducers can group the records as bytes.
            return try writePartitioned(source, task, partition, path, partitions: r,
                                        lengthPrefixedValues: K.self == Bytes.self) { hashPartition($0, r) }
        }
        // An in-memory table, flushed into the (spilling) writer whenever it outgrows its share
        // of the budget; duplicate keys across flushes are merged by the reducers.
        let writer = PartitionedWriter(partitions: r, budget: task.memoryBudget / 4,
                                       spillPrefix: task.tempPrefix + ".map", metrics: task.metrics)
        var table: [K: C] = [:]
        var memory = 0
        var sketch = HeavyHitters<K>()
        let budget = max(task.memoryBudget * 3 / 4, 1 << 16)
        func flush() throws {
            for (k, c) in table {
                try writer.add(partition: hashPartition(k, r)) { w in
                    k.encode(to: &w)
                    c.encode(to: &w)
                }
            }
            table = [:]
            memory = 0
        }
        try source.compute(task, partition: partition) { kv in
            sketch.offer(kv.0)
            if let i = table.index(forKey: kv.0) {
                try agg.mergeValue(&table.values[i], kv.1)
                if let grows = agg.growsBy { memory += grows(kv.1) }
            } else {
                let c = try agg.create(kv.1)
                memory += kv.0.estimatedMemory + c.estimatedMemory + 48
                table[kv.0] = c
            }
            if memory > budget {
                try flush()
                task.metrics.spills += 1
            }
        }
        try flush()
        var stats = try writer.commit(to: path)
        stats.record(sketch)
        return stats
    }
    return ClosureNode<(K, C)>(op: op, parents: [source], shuffles: [dep], body: { task, partition, sink in
        let table = ExternalAggregator<K, C>(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".reduce",
                                             metrics: task.metrics, mergeCombiners: agg.mergeCombiners)
        let spec = task.spec?.shuffle == dep.id ? task.spec : nil
        if !mapSideCombine && K.self == Bytes.self && spec?.partial == nil && spec?.merges == nil {
            try byteGroupPartition(dep, V.self, task, partition) { key, values in
                var c: C?
                for v in values {
                    if c == nil { c = try agg.create(v) } else { try agg.mergeValue(&c!, v) }
                }
                try sink((unsafeBitCast(Bytes(key), to: K.self), c!))
            }
            return
        }
        if let count = spec?.merges {
            // Second step of a split partition: merge its partial combiners (the salt goes).
            try dep.readPartials(task, partition: partition, count: count) { r in
                let k = try K.decode(from: &r)
                let c = try C.decode(from: &r)
                task.metrics.recordsRead += 1
                try table.merge(k, c, growth: agg.growsBy == nil ? 0 : c.estimatedMemory)
            }
        } else if mapSideCombine {
            try dep.readPartition(task, partition: partition) { r in
                let k = try K.decode(from: &r)
                let c = try C.decode(from: &r)
                task.metrics.recordsRead += 1
                try table.merge(k, c, growth: agg.growsBy == nil ? 0 : c.estimatedMemory)
            }
        } else {
            let byteKeyed = K.self == Bytes.self // values preceded by their length (see the map task)
            try dep.readPartition(task, partition: partition) { r in
                let k = try K.decode(from: &r)
                if byteKeyed { _ = try r.readVarint() }
                let v = try V.decode(from: &r)
                task.metrics.recordsRead += 1
                try table.upsert(k, growth: agg.growsBy?(v) ?? 0, create: { try agg.create(v) },
                                 update: { try agg.mergeValue(&$0, v) })
            }
        }
        if let index = spec?.partial {
            // First step: this split's partial combiners go to a partial file, not downstream.
            try dep.writePartial(task, partition: partition, index: index) { writer in
                try table.finish { k, c in
                    try writer.add(partition: 0) { w in
                        k.encode(to: &w)
                        c.encode(to: &w)
                    }
                }
            }
            return
        }
        try table.finish { k, c in try sink((k, c)) }
    }, reference: { ref in
        var table: [K: C] = [:]
        var order: [K] = []
        for (k, v) in try ref.records(of: source) {
            if table[k] == nil {
                table[k] = try agg.create(v)
                order.append(k)
            } else {
                try agg.mergeValue(&table[k]!, v)
            }
        }
        return order.map { ($0, table[$0]!) }
    })
}

/// The groups of reduce partition `partition` of a shuffle of `Bytes`-keyed records written
/// with their values' lengths: the records are sorted as bytes (`ByteRecordSorter`, spilling
/// when large), so each key's values arrive together; `emit` gets the key (borrowed) and its
/// values in arrival order. No hash table of lists, no allocation per record beyond the values.
@inlinable func byteGroupPartition<V: BinaryCodable>(
    _ dep: ShuffleDependency, _: V.Type, _ task: TaskContext, _ partition: Int,
    _ emit: (UnsafeRawBufferPointer, [V]) throws -> Void
) throws {
    let sorter = try ByteRecordSorter.make(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".group",
                                       metrics: task.metrics, ascending: true)
    defer { ByteRecordSorter.keep(sorter) }
    try dep.readPartitionSegments(task, partition: partition) { reader, start, end in
        task.metrics.recordsRead += try sorter.add(reader, from: start, to: end)
    }
    var key: [UInt8] = []
    var values: [V] = []
    try sorter.finish { k, value, _ in
        if !values.isEmpty && key.withUnsafeBytes({ compareBytes($0, k) != 0 }) {
            try key.withUnsafeBytes { try emit($0, values) }
            values.removeAll(keepingCapacity: true)
        }
        if values.isEmpty {
            key.removeAll(keepingCapacity: true)
            key.append(contentsOf: k)
        }
        var rd = ByteReader(value)
        values.append(try V.decode(from: &rd))
    }
    if !values.isEmpty { try key.withUnsafeBytes { try emit($0, values) } }
}

/// cogroup: for every key on either side, all its values from each side. Both sides are
/// hash-partitioned with the same partition count; the reduce side groups them in an external
/// hash table.
@inlinable func cogroupByKey<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>(
    _ left: Node<(K, V)>, _ right: Node<(K, W)>, partitions: Int?, op: String = "cogroup",
    splittable: (left: Bool, right: Bool) = (false, false), skew: SkewHint = .auto
) -> Node<(K, ([V], [W]))> {
    let l = ShuffleDependency(parent: left, partitions: partitions, writeDescription: "hash-partition", combines: false)
    let r = ShuffleDependency(parent: right, partitions: partitions, writeDescription: "hash-partition", combines: false)
    l.skewSplitting = splittable.left ? .joinSide : .never
    r.skewSplitting = splittable.right ? .joinSide : .never
    l.skewHint = skew
    r.skewHint = skew
    // Byte keys: values carry their length, so the joins' reducers sort the records as bytes.
    let byteKeyed = K.self == Bytes.self
    l.mapTask = { [unowned l] task, partition, path in
        let n = task.plan.partitions(of: l)
        return try writePartitioned(left, task, partition, path, partitions: n, lengthPrefixedValues: byteKeyed) { hashPartition($0, n) }
    }
    r.mapTask = { [unowned r] task, partition, path in
        let n = task.plan.partitions(of: r)
        return try writePartitioned(right, task, partition, path, partitions: n, lengthPrefixedValues: byteKeyed) { hashPartition($0, n) }
    }
    return ClosureNode<(K, ([V], [W]))>(op: op, parents: [left, right], shuffles: [l, r], body: { task, partition, sink in
        try cogroupPartition(l, r, K.self, V.self, W.self, task, partition) { k, vs, ws in try sink((k, (vs, ws))) }
    }, reference: { ref in
        var table: [K: ([V], [W])] = [:]
        var order: [K] = []
        for (k, v) in try ref.records(of: left) {
            if table[k] == nil { order.append(k); table[k] = ([], []) }
            table[k]!.0.append(v)
        }
        for (k, w) in try ref.records(of: right) {
            if table[k] == nil { order.append(k); table[k] = ([], []) }
            table[k]!.1.append(w)
        }
        return order.map { ($0, table[$0]!) }
    })
}

/// Reads reduce partition `partition` of both sides of a cogroup and hands out every key with
/// all its values from each side (an external hash table: it spills when large).
@inlinable func cogroupPartition<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>(
    _ l: ShuffleDependency, _ r: ShuffleDependency, _: K.Type, _: V.Type, _: W.Type, _ task: TaskContext, _ partition: Int,
    _ emit: (K, [V], [W]) throws -> Void
) throws {
    let table = ExternalAggregator<K, Pair<[V], [W]>>(
        budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".cogroup", metrics: task.metrics,
        mergeCombiners: { a, b in
            a.first += b.first
            a.second += b.second
        })
    let byteKeyed = K.self == Bytes.self // values preceded by their length (see cogroupByKey)
    try l.readPartition(task, partition: partition) { rd in
        let k = try K.decode(from: &rd)
        if byteKeyed { _ = try rd.readVarint() }
        let v = try V.decode(from: &rd)
        task.metrics.recordsRead += 1
        try table.upsert(k, growth: v.estimatedMemory, create: { Pair([v], []) }, update: { $0.first.append(v) })
    }
    try r.readPartition(task, partition: partition) { rd in
        let k = try K.decode(from: &rd)
        if byteKeyed { _ = try rd.readVarint() }
        let w = try W.decode(from: &rd)
        task.metrics.recordsRead += 1
        try table.upsert(k, growth: w.estimatedMemory, create: { Pair([], [w]) }, update: { $0.second.append(w) })
    }
    try table.finish { k, c in try emit(k, c.first, c.second) }
}

/// A join: a shuffle join (cogroup of both sides, skewed partitions splittable), or — when the
/// plan finds one side's input below `--broadcast-threshold` (`PhysicalPlan.broadcastSide`) —
/// a broadcast hash join: every task of the big side loads the small side whole into a hash
/// table and streams past it, and no shuffle happens at all.
@usableFromInline final class JoinNode<T>: Node<T>, BroadcastCandidate {
    @usableFromInline typealias Body = (TaskContext, Int, (T) throws -> Void) throws -> Void
    let shuffles: [ShuffleDependency]
    let shuffled: Body
    let broadcast: [Int: Body]
    let referenceBody: (ReferenceExecutor) throws -> [T]

    @usableFromInline init(op: String, left: AnyNode, right: AnyNode, shuffles: [ShuffleDependency], shuffled: @escaping Body,
                           broadcast: [Int: Body], reference: @escaping (ReferenceExecutor) throws -> [T]) {
        self.shuffles = shuffles
        self.shuffled = shuffled
        self.broadcast = broadcast
        referenceBody = reference
        super.init(op: op, parents: [left, right])
    }

    var broadcastableSides: [Int] { broadcast.keys.sorted() }
    override var shuffleDependencies: [ShuffleDependency] { shuffles }
    override func partitionCount(in plan: PhysicalPlan) -> Int {
        plan.broadcastSide(of: self).map { plan.partitionCount(of: parents[1 - $0]) } ?? plan.partitions(of: shuffles[0])
    }

    @usableFromInline override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        if let side = task.plan.broadcastSide(of: self) {
            try broadcast[side]!(task, partition, sink)
        } else {
            try shuffled(task, partition, sink)
        }
    }

    @usableFromInline override func reference(_ ref: ReferenceExecutor) throws -> [T] { try referenceBody(ref) }
}

/// Loads every partition of `node` into a multimap (the small side of a broadcast join).
@inlinable func loadWhole<K: Hashable, V>(_ node: Node<(K, V)>, _ task: TaskContext) throws -> [K: [V]] {
    var table: [K: [V]] = [:]
    for p in 0..<task.plan.partitionCount(of: node) {
        try node.compute(task, partition: p) { kv in table[kv.0, default: []].append(kv.1) }
    }
    return table
}

/// Inner join of `left` and `right` (either side may be broadcast or, when skewed, split).
@inlinable func innerJoin<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>(
    _ left: Node<(K, V)>, _ right: Node<(K, W)>, partitions: Int?, skew: SkewHint
) -> Node<(K, (V, W))> {
    let grouped = cogroupByKey(left, right, partitions: partitions, op: "cogroup[join]", splittable: (true, true), skew: skew)
    let (l, r) = (grouped.shuffleDependencies[0], grouped.shuffleDependencies[1])
    return JoinNode<(K, (V, W))>(op: "join", left: left, right: right, shuffles: [l, r], shuffled: { task, partition, sink in
        if K.self == Bytes.self {
            try byteJoinPartition(l, r, V.self, W.self, task, partition, outer: false) { k, v, w in
                try sink((unsafeBitCast(Bytes(k), to: K.self), (v, w!)))
            }
            return
        }
        try cogroupPartition(l, r, K.self, V.self, W.self, task, partition) { k, vs, ws in
            for v in vs { for w in ws { try sink((k, (v, w))) } }
        }
    }, broadcast: [
        1: { task, partition, sink in
            let small = try loadWhole(right, task)
            try left.compute(task, partition: partition) { kv in
                if let ws = small[kv.0] { for w in ws { try sink((kv.0, (kv.1, w))) } }
            }
        },
        0: { task, partition, sink in
            let small = try loadWhole(left, task)
            try right.compute(task, partition: partition) { kw in
                if let vs = small[kw.0] { for v in vs { try sink((kw.0, (v, kw.1))) } }
            }
        },
    ], reference: { ref in
        var out: [(K, (V, W))] = []
        for (k, (vs, ws)) in try ref.records(of: grouped) { for v in vs { for w in ws { out.append((k, (v, w))) } } }
        return out
    })
}

/// Left outer join (only the right side may be broadcast; only the left may be split).
@inlinable func leftJoin<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>(
    _ left: Node<(K, V)>, _ right: Node<(K, W)>, partitions: Int?, skew: SkewHint
) -> Node<(K, (V, W?))> {
    let grouped = cogroupByKey(left, right, partitions: partitions, op: "cogroup[leftOuterJoin]", splittable: (true, false), skew: skew)
    let (l, r) = (grouped.shuffleDependencies[0], grouped.shuffleDependencies[1])
    func emitGroup(_ k: K, _ vs: [V], _ ws: [W], _ sink: ((K, (V, W?))) throws -> Void) throws {
        for v in vs {
            if ws.isEmpty {
                try sink((k, (v, nil)))
            } else {
                for w in ws { try sink((k, (v, w))) }
            }
        }
    }
    return JoinNode<(K, (V, W?))>(op: "leftOuterJoin", left: left, right: right, shuffles: [l, r], shuffled: { task, partition, sink in
        if K.self == Bytes.self {
            try byteJoinPartition(l, r, V.self, W.self, task, partition, outer: true) { k, v, w in
                try sink((unsafeBitCast(Bytes(k), to: K.self), (v, w)))
            }
            return
        }
        try cogroupPartition(l, r, K.self, V.self, W.self, task, partition) { k, vs, ws in try emitGroup(k, vs, ws, sink) }
    }, broadcast: [
        1: { task, partition, sink in
            let small = try loadWhole(right, task)
            try left.compute(task, partition: partition) { kv in try emitGroup(kv.0, [kv.1], small[kv.0] ?? [], sink) }
        },
    ], reference: { ref in
        var out: [(K, (V, W?))] = []
        for (k, (vs, ws)) in try ref.records(of: grouped) { try emitGroup(k, vs, ws) { out.append($0) } }
        return out
    })
}

/// sortByKey: a sample stage picks range bounds (weighted by each task's record count, as
/// Spark's RangePartitioner does; samples are seeded by partition, so a re-run gives the same
/// bounds), map tasks range-partition, and each reduce task sorts its partition (spilling
/// sorted runs and merging them when large). Partition i holds only keys ordered before
/// those of partition i+1, so the parts together are totally ordered.
@inlinable func sortByKey<K: ShuffleKey & Comparable, V: BinaryCodable>(
    _ source: Node<(K, V)>, ascending: Bool, partitions: Int?
) -> Node<(K, V)> {
    let dep = ShuffleDependency(parent: source, partitions: partitions,
                             writeDescription: "range-partition (bounds from a key sample)", combines: false)
    func before(_ a: K, _ b: K) -> Bool { ascending ? a < b : b < a }
    dep.mapTask = { [unowned dep] task, partition, path in
        // The bounds from the sample stage, sent with the task (none for one partition).
        let blob = task.plan.bounds(of: dep)
        let bounds: [K] = blob.isEmpty ? [] : try blob.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            return try [K].decode(from: &r)
        }
        return try writePartitioned(source, task, partition, path, partitions: task.plan.partitions(of: dep)) { key in
            // The first bound the key is not after (binary search).
            var lo = 0, hi = bounds.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if before(bounds[mid], key) { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }
    }
    dep.sampleTask = { [unowned dep] task, partition in
        try sampleKeys(source, task, partition: partition, size: max(64, 20 * task.plan.partitions(of: dep))) { $0.0 }
    }
    dep.boundsFromSamples = { samples, partitions in try rangeBounds(samples, partitions: partitions, before: before) }
    let node = ClosureNode<(K, V)>(op: "sortByKey", parents: [source], shuffles: [dep], body: { task, partition, sink in
        let sorter = ExternalSorter<K, V>(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".sort",
                                          metrics: task.metrics, ascending: ascending)
        try dep.readPartition(task, partition: partition) { r in
            let k = try K.decode(from: &r)
            let v = try V.decode(from: &r)
            task.metrics.recordsRead += 1
            try sorter.add(k, v)
        }
        try sorter.finish { k, v in try sink((k, v)) }
    }, reference: { ref in
        // Stable: equal keys keep their input order, as the engine's merge does.
        try ref.records(of: source).enumerated().sorted { a, b in
            if a.element.0 != b.element.0 { return before(a.element.0, b.element.0) }
            return a.offset < b.offset
        }.map(\.element)
    })
    node.ordersOutput = true
    return node
}

/// The partition of a byte key: the high bits of its stable hash (the low bits index the
/// reduce-side `BytesTable`, so the two must not correlate).
@inlinable package func bytesPartition(_ hash: UInt64, _ partitions: Int) -> Int {
    Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(partitions)).high)
}

/// `reduceByKey` over borrowed byte keys: map tasks combine in a `BytesTable` (no allocation
/// per record), reducers merge in a spilling `BytesAggregator`; keys come out owned.
@inlinable func reduceByteKeys<V: BinaryCodable & BitwiseCopyable>(
    _ source: Node<(ByteView, V)>, combine: @escaping (V, V) throws -> V, partitions: Int?
) -> Node<(Bytes, V)> {
    byteKeyReduce(source, combine: combine, partitions: partitions, partitionSuffix: 0, key: { Bytes($0) },
                  referenceKeys: { _, keys in keys })
}

/// `reduceByteKeys` handing the keys on borrowed (valid during the call), for a consumer that
/// copies only what it keeps. `partitionSuffix` bytes at the end of each key are left out of
/// its partition's hash, so keys that differ only there meet in one reduce partition.
@inlinable package func reduceByteKeyViews<V: BinaryCodable & BitwiseCopyable>(
    _ source: Node<(ByteView, V)>, combine: @escaping (V, V) throws -> V, partitions: Int?, partitionSuffix: Int = 0
) -> Node<(ByteView, V)> {
    byteKeyReduce(source, combine: combine, partitions: partitions, partitionSuffix: partitionSuffix, key: { ByteView($0) },
                  referenceKeys: { ref, keys in
        let kept = ref.keep(keys.flatMap(\.storage))
        var at = 0
        return keys.map { k in
            defer { at += k.count }
            return ByteView(UnsafeRawBufferPointer(rebasing: kept[at..<(at + k.count)]))
        }
    })
}

/// The map and reduce sides of `reduceByteKeys`; the reduce side makes its keys with `key`
/// (the reference executor's with `referenceKeys`).
@inlinable func byteKeyReduce<K, V: BinaryCodable & BitwiseCopyable>(
    _ source: Node<(ByteView, V)>, combine: @escaping (V, V) throws -> V, partitions: Int?, partitionSuffix: Int,
    key makeKey: @escaping (UnsafeRawBufferPointer) -> K, referenceKeys: @escaping (ReferenceExecutor, [Bytes]) -> [K]
) -> Node<(K, V)> {
    let dep = ShuffleDependency(parent: source, partitions: partitions,
                             writeDescription: "map-side combine (byte-key table) → hash-partition", combines: true)
    dep.mapTask = { [unowned dep] task, partition, path in
        let combiner = BytesMapCombiner<V>(task: task, partitions: task.plan.partitions(of: dep),
                                           partitionSuffix: partitionSuffix, combine: combine)
        // The per-record closure captures one object: its forwarding thunk then copies one word
        // rather than every captured value (5 % of wordcount when it captured six).
        try source.compute(task, partition: partition) { kv in try combiner.add(kv.0, kv.1) }
        return try combiner.commit(to: path)
    }
    return ClosureNode<(K, V)>(op: "reduceByKey", parents: [source], shuffles: [dep], body: { task, partition, sink in
        let agg = BytesAggregator<V>(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".reduce",
                                     metrics: task.metrics, combine: combine)
        try dep.readPartition(task, partition: partition) { r in
            let key = try r.readLengthPrefixed()
            let value = try V.decode(from: &r)
            task.metrics.recordsRead += 1
            try agg.add(key, value)
        }
        try agg.finish { key, value in try sink((makeKey(key), value)) }
    }, reference: { ref in
        var table: [Bytes: V] = [:]
        var order: [Bytes] = []
        for (view, v) in try ref.records(of: source) {
            let k = Bytes(view)
            if let old = table[k] { table[k] = try combine(old, v) } else { table[k] = v; order.append(k) }
        }
        return zip(referenceKeys(ref, order), order).map { ($0.0, table[$0.1]!) }
    })
}
