/// The reduce side of a combining shuffle: `(K, C)` per distinct key.
final class CombinedNode<K: ShuffleKey, V: BinaryCodable, C: BinaryCodable>: Node<(K, C)> {
    let shuffle: CombiningShuffle<K, V, C>

    init(op: String, _ parent: Node<(K, V)>, aggregator: Aggregator<V, C>, mapSideCombine: Bool, partitions: Int?) {
        shuffle = CombiningShuffle(parent, aggregator: aggregator, mapSideCombine: mapSideCombine, partitions: partitions)
        super.init(op: op, parents: [parent])
    }

    override var shuffleDependencies: [ShuffleDependency] { [shuffle] }
    override var partitionCount: Int { shuffle.partitions }

    override func compute(_ task: TaskContext, partition: Int, into sink: ((K, C)) throws -> Void) throws {
        let agg = shuffle.aggregator
        let table = ExternalAggregator<K, C>(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".reduce",
                                             metrics: task.metrics, mergeCombiners: agg.mergeCombiners)
        if shuffle.mapSideCombine {
            try shuffle.readPartition(task, partition: partition) { r in
                let k = try K.decode(from: &r)
                let c = try C.decode(from: &r)
                task.metrics.recordsRead += 1
                try table.merge(k, c, growth: agg.growsBy == nil ? 0 : c.estimatedMemory)
            }
        } else {
            try shuffle.readPartition(task, partition: partition) { r in
                let k = try K.decode(from: &r)
                let v = try V.decode(from: &r)
                task.metrics.recordsRead += 1
                try table.upsert(k, growth: agg.growsBy?(v) ?? 0, create: { try agg.create(v) }, update: { try agg.mergeValue(&$0, v) })
            }
        }
        try table.finish { k, c in try sink((k, c)) }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [(K, C)] {
        var table: [K: C] = [:]
        var order: [K] = []
        for (k, v) in try ref.records(of: shuffle.source) {
            if table[k] == nil {
                table[k] = try shuffle.aggregator.create(v)
                order.append(k)
            } else {
                try shuffle.aggregator.mergeValue(&table[k]!, v)
            }
        }
        return order.map { ($0, table[$0]!) }
    }
}

/// The reduce side of sortByKey: each partition sorted (externally when large); partitions
/// are ordered by the range partitioner, so the parts together are totally ordered.
final class SortedNode<K: ShuffleKey & Comparable, V: BinaryCodable>: Node<(K, V)> {
    let shuffle: RangeShuffle<K, V>

    init(_ parent: Node<(K, V)>, ascending: Bool, partitions: Int?) {
        shuffle = RangeShuffle(parent, ascending: ascending, partitions: partitions)
        super.init(op: "sortByKey", parents: [parent])
        ordersOutput = true
    }

    override var shuffleDependencies: [ShuffleDependency] { [shuffle] }
    override var partitionCount: Int { shuffle.partitions }

    override func compute(_ task: TaskContext, partition: Int, into sink: ((K, V)) throws -> Void) throws {
        let sorter = ExternalSorter<K, V>(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".sort",
                                          metrics: task.metrics, ascending: shuffle.ascending)
        try shuffle.readPartition(task, partition: partition) { r in
            let k = try K.decode(from: &r)
            let v = try V.decode(from: &r)
            task.metrics.recordsRead += 1
            try sorter.add(k, v)
        }
        try sorter.finish { k, v in try sink((k, v)) }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [(K, V)] {
        let ascending = shuffle.ascending
        // Stable sort: equal keys keep their input order, as in the engine's merge.
        return try ref.records(of: shuffle.source).enumerated().sorted { a, b in
            let (ka, kb) = (a.element.0, b.element.0)
            if ka != kb { return ascending ? ka < kb : ka > kb }
            return a.offset < b.offset
        }.map(\.element)
    }
}

/// cogroup: for every key present on either side, all its values from each side.
final class CoGroupedNode<K: ShuffleKey, V: BinaryCodable, W: BinaryCodable>: Node<(K, ([V], [W]))> {
    let left: KeyValueShuffle<K, V>
    let right: KeyValueShuffle<K, W>

    init(_ l: Node<(K, V)>, _ r: Node<(K, W)>, partitions: Int?) {
        left = KeyValueShuffle(l, partitions: partitions)
        right = KeyValueShuffle(r, partitions: partitions)
        super.init(op: "cogroup", parents: [l, r])
    }

    override var shuffleDependencies: [ShuffleDependency] { [left, right] }
    override var partitionCount: Int { left.partitions }

    override func compute(_ task: TaskContext, partition: Int, into sink: ((K, ([V], [W]))) throws -> Void) throws {
        let table = ExternalAggregator<K, Pair<[V], [W]>>(
            budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".cogroup", metrics: task.metrics,
            mergeCombiners: { a, b in
                a.first += b.first
                a.second += b.second
            })
        try left.readPartition(task, partition: partition) { r in
            let k = try K.decode(from: &r)
            let v = try V.decode(from: &r)
            task.metrics.recordsRead += 1
            try table.upsert(k, growth: v.estimatedMemory, create: { Pair([v], []) }, update: { $0.first.append(v) })
        }
        try right.readPartition(task, partition: partition) { r in
            let k = try K.decode(from: &r)
            let w = try W.decode(from: &r)
            task.metrics.recordsRead += 1
            try table.upsert(k, growth: w.estimatedMemory, create: { Pair([], [w]) }, update: { $0.second.append(w) })
        }
        try table.finish { k, c in try sink((k, (c.first, c.second))) }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [(K, ([V], [W]))] {
        var table: [K: ([V], [W])] = [:]
        var order: [K] = []
        for (k, v) in try ref.records(of: left.source) {
            if table[k] == nil { order.append(k); table[k] = ([], []) }
            table[k]!.0.append(v)
        }
        for (k, w) in try ref.records(of: right.source) {
            if table[k] == nil { order.append(k); table[k] = ([], []) }
            table[k]!.1.append(w)
        }
        return order.map { ($0, table[$0]!) }
    }
}
