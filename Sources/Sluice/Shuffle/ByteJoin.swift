/// Joins on the byte sort path: both sides' records cross the shuffle as bytes (key, then the
/// value with its length) and each reducer sort-merges them in a `ByteRecordSorter`, so no
/// hash table of lists is built and a partition larger than the budget spills sorted runs.

/// The right values of the key being joined, each preceded by its length (4 bytes), back to
/// back; borrowed from `rawJoinPartition`.
@usableFromInline struct RightGroup {
    /// Counts the groups of a partition: a new key's group has a new number.
    @usableFromInline let number: Int
    @usableFromInline let bytes: UnsafeRawBufferPointer

    @inlinable init(number: Int, bytes: UnsafeRawBufferPointer) {
        self.number = number
        self.bytes = bytes
    }

    /// Calls `body` with each right value, in arrival order.
    @inlinable func forEach(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard let base = bytes.baseAddress else { return }
        var at = 0
        while at < bytes.count {
            let n = Int(base.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            try body(UnsafeRawBufferPointer(start: base + at + 4, count: n))
            at += 4 + n
        }
    }
}

/// The key being joined and its right values (`RightGroup`'s layout), in one buffer that is
/// reused from key to key: no array bookkeeping per key or per value.
@usableFromInline final class JoinGroup {
    // Touched per record by one thread: no dynamic exclusivity checks.
    @usableFromInline @exclusivity(unchecked) var base: UnsafeMutableRawPointer
    @usableFromInline @exclusivity(unchecked) var capacity = 1 << 16
    @usableFromInline @exclusivity(unchecked) var keyCount = 0
    @usableFromInline @exclusivity(unchecked) var count = 0
    /// The group's number (0: none yet).
    @usableFromInline @exclusivity(unchecked) var number = 0

    @inlinable init() { base = .allocate(byteCount: capacity, alignment: 8) }
    deinit { base.deallocate() }

    @inlinable var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: keyCount) }
    @inlinable var values: RightGroup {
        RightGroup(number: number, bytes: UnsafeRawBufferPointer(start: base + keyCount, count: count - keyCount))
    }

    /// Whether `key` is the current group's key.
    @inlinable func holds(_ key: UnsafeRawBufferPointer) -> Bool {
        number > 0 && compareBytes(self.key, key) == 0
    }

    /// Starts the group of `key`.
    @inlinable func start(_ key: UnsafeRawBufferPointer) {
        count = 0
        reserve(key.count)
        if key.count > 0 { (base).copyMemory(from: key.baseAddress!, byteCount: key.count) }
        keyCount = key.count
        count = key.count
        number += 1
    }

    /// Adds a right value to the group.
    @inlinable func add(_ value: UnsafeRawBufferPointer) {
        reserve(4 + value.count)
        (base + count).storeBytes(of: UInt32(value.count), toByteOffset: 0, as: UInt32.self)
        if value.count > 0 { (base + count + 4).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        count += 4 + value.count
    }

    @inlinable func reserve(_ more: Int) {
        if count + more > capacity { grow(count + more) }
    }

    @usableFromInline func grow(_ needed: Int) {
        while capacity < needed { capacity *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        grown.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = grown
    }
}

/// A sort-merge join of reduce partition `partition` of `l` and `r`, as bytes. Both sides go
/// into one sorter, the right side first, so — the sort being stable — each key's right
/// records come out just before its left ones. The current key's right values are copied
/// into one buffer (`JoinGroup`), and every left record of the key is handed to `emit` with them as it
/// streams past: `emit(key, leftValue, group)`, group nil for a left record without a match
/// (only when `outer`). Everything is borrowed, valid during the call.
@inlinable func rawJoinPartition(
    _ l: ShuffleDependency, _ r: ShuffleDependency, _ task: TaskContext, _ partition: Int, outer: Bool,
    _ emit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, RightGroup?) throws -> Void
) throws {
    let sorter = ByteRecordSorter.make(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".join",
                                       metrics: task.metrics, ascending: true)
    defer { ByteRecordSorter.keep(sorter) }
    try r.readPartitionSegments(task, partition: partition) { reader, start, end in
        task.metrics.recordsRead += try sorter.add(reader, from: start, to: end, side: 1)
    }
    try l.readPartitionSegments(task, partition: partition) { reader, start, end in
        task.metrics.recordsRead += try sorter.add(reader, from: start, to: end, side: 0)
    }
    let group = JoinGroup()
    try sorter.finish { key, value, side in
        let same = group.holds(key)
        if side == 1 {
            if !same { group.start(key) }
            group.add(value)
        } else if same {
            try emit(key, value, group.values)
        } else if outer {
            try emit(key, value, nil)
        }
    }
}

/// `rawJoinPartition` with typed values (the `Bytes`-keyed join): each key's right values are
/// decoded once, each left value once. `emit` gets the key (borrowed), the left value and
/// the right one (nil: a left record without a match, only when `outer`).
@inlinable func byteJoinPartition<V: BinaryCodable, W: BinaryCodable>(
    _ l: ShuffleDependency, _ r: ShuffleDependency, _: V.Type, _: W.Type, _ task: TaskContext, _ partition: Int,
    outer: Bool, _ emit: (UnsafeRawBufferPointer, V, W?) throws -> Void
) throws {
    var ws: [W] = []
    var decodedGroup = 0
    try rawJoinPartition(l, r, task, partition, outer: outer) { key, value, group in
        var rd = ByteReader(value)
        let v = try V.decode(from: &rd)
        guard let group else { return try emit(key, v, nil) }
        if group.number != decodedGroup {
            ws.removeAll(keepingCapacity: true)
            try group.forEach { bytes in
                var rw = ByteReader(bytes)
                ws.append(try W.decode(from: &rw))
            }
            decodedGroup = group.number
        }
        for w in ws { try emit(key, v, w) }
    }
}

/// Writes `(ByteView, ByteView)` records hash-partitioned by key as sort records (key, then
/// the value's bytes with their length), with no copy or encoding step per record.
@inlinable func writeViewPairs(_ source: Node<(ByteView, ByteView)>, _ task: TaskContext, _ partition: Int, _ path: String,
                               partitions: Int) throws -> MapOutputStats {
    let writer = PartitionedWriter(partitions: partitions, budget: task.memoryBudget,
                                   spillPrefix: task.tempPrefix + ".map", metrics: task.metrics)
    // One key in 32 sampled (after the first 4096): a hot key's share is still far above the
    // sampling error, and each sample copies the key.
    var sketch = HeavyHitters<Bytes>(stride: 32)
    let n = UInt64(partitions)
    try source.compute(task, partition: partition) { kv in
        sketch.offer { Bytes(kv.0.raw) }
        try writer.add(partition: Int(StableHasher.hash(bytes: kv.0.raw) % n)) { w in
            SortRecord.write(key: kv.0.raw, to: &w) { $0.write(raw: kv.1.raw) }
        }
    }
    var stats = try writer.commit(to: path)
    stats.record(sketch)
    return stats
}

/// A join of borrowed byte pairs (`join` and `leftOuterJoin` over `(ByteView, ByteView)`):
/// shuffled as bytes and sort-merged by `rawJoinPartition`, or broadcast when the plan says
/// so (the small side loaded whole, owned). `make` builds an output record from the key, the
/// left value and the right one (nil for an unmatched left record, only when `outer`); the
/// views it gets are valid while the record is processed.
@inlinable func byteViewJoin<T>(
    _ left: Node<(ByteView, ByteView)>, _ right: Node<(ByteView, ByteView)>, outer: Bool, partitions: Int?, skew: SkewHint,
    make: @escaping (ByteView, ByteView, ByteView?) -> T
) -> Node<T> {
    let description = "hash-partition, keys and values as bytes"
    let l = ShuffleDependency(parent: left, partitions: partitions, writeDescription: description, combines: false)
    let r = ShuffleDependency(parent: right, partitions: partitions, writeDescription: description, combines: false)
    l.skewSplitting = .joinSide
    r.skewSplitting = outer ? .never : .joinSide
    l.skewHint = skew
    r.skewHint = skew
    l.mapTask = { [unowned l] task, partition, path in
        try writeViewPairs(left, task, partition, path, partitions: task.plan.partitions(of: l))
    }
    r.mapTask = { [unowned r] task, partition, path in
        try writeViewPairs(right, task, partition, path, partitions: task.plan.partitions(of: r))
    }
    /// Streams `big` past `small` loaded whole; `flip`: the small side is the left one.
    func broadcast(small: Node<(ByteView, ByteView)>, big: Node<(ByteView, ByteView)>, flip: Bool) -> JoinNode<T>.Body {
        { task, partition, sink in
            var table: [Bytes: [Bytes]] = [:]
            for p in 0..<task.plan.partitionCount(of: small) {
                try small.compute(task, partition: p) { kv in table[Bytes(kv.0.raw), default: []].append(Bytes(kv.1.raw)) }
            }
            try big.compute(task, partition: partition) { kv in
                guard let matches = table[Bytes(kv.0.raw)] else {
                    if outer { try sink(make(kv.0, kv.1, nil)) }
                    return
                }
                for m in matches {
                    try m.storage.withUnsafeBytes { other in
                        try sink(flip ? make(kv.0, ByteView(other), kv.1) : make(kv.0, kv.1, ByteView(other)))
                    }
                }
            }
        }
    }
    var broadcasts = [1: broadcast(small: right, big: left, flip: false)]
    if !outer { broadcasts[0] = broadcast(small: left, big: right, flip: true) }
    return JoinNode<T>(op: outer ? "leftOuterJoin" : "join", left: left, right: right, shuffles: [l, r], shuffled: { task, partition, sink in
        try rawJoinPartition(l, r, task, partition, outer: outer) { key, value, group in
            guard let group else { return try sink(make(ByteView(key), ByteView(value), nil)) }
            try group.forEach { try sink(make(ByteView(key), ByteView(value), ByteView($0))) }
        }
    }, broadcast: broadcasts, reference: { ref in
        // Views from the sources' references stay valid as long as the executor.
        let rights = try ref.records(of: right)
        var index: [Bytes: [Int]] = [:]
        for (i, kw) in rights.enumerated() { index[Bytes(kw.0.raw), default: []].append(i) }
        var out: [T] = []
        for (k, v) in try ref.records(of: left) {
            if let matches = index[Bytes(k.raw)] {
                for i in matches { out.append(make(k, v, rights[i].1)) }
            } else if outer {
                out.append(make(k, v, nil))
            }
        }
        return out
    })
}
