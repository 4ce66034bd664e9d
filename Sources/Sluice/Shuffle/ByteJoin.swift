#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Joins on the byte sort path: both sides' records cross the shuffle as bytes (key, then the
/// value with its length) and each reducer sort-merges them in a `ByteRecordSorter`, so no
/// hash table of lists is built and a partition larger than the budget spills sorted runs.

/// The right values of the key being joined, each preceded by its length (4 bytes), back to
/// back: the first ones in a file when the group outgrew its memory (`spilled`), the rest in
/// `bytes`; borrowed from `rawJoinPartition`.
@usableFromInline struct RightGroup {
    /// Counts the groups of a partition: a new key's group has a new number.
    @usableFromInline let number: Int
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline let spill: GroupSpill?

    @inlinable init(number: Int, bytes: UnsafeRawBufferPointer, spill: GroupSpill? = nil) {
        self.number = number
        self.bytes = bytes
        self.spill = spill
    }

    /// Part of the group is on disk: each `forEach` reads it again.
    @inlinable var spilled: Bool { spill != nil }

    /// Calls `body` with each right value, in arrival order.
    @inlinable func forEach(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let spill { try spill.forEach(body) }
        try RightGroup.forEach(in: bytes, body)
    }

    /// Calls `body` with each length-prefixed value of `bytes`.
    @inlinable static func forEach(in bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard let base = bytes.baseAddress else { return }
        var at = 0
        while at < bytes.count {
            let n = Int(base.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            try body(UnsafeRawBufferPointer(start: base + at + 4, count: n))
            at += 4 + n
        }
    }
}

/// The right values of a key too many for memory (a hot key on the join's right side), in a
/// scratch file that each left record of the key reads through again — the output holds
/// every pair anyway — as Spark's sort-merge join spills its buffered rows.
@usableFromInline final class GroupSpill {
    let path: String
    private var out: OutputFile
    private var reader: BlockFileReader?
    private var chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)

    init(path: String) throws {
        self.path = path
        out = try OutputFile(path: path)
    }

    deinit {
        unlink(path)
        chunk.deallocate()
    }

    /// Empties the file for the next key.
    func clear() throws { out = try OutputFile(path: path) }

    /// Appends length-prefixed values.
    func append(_ bytes: UnsafeRawBufferPointer) throws { try out.write(bytes) }

    /// Calls `body` with each value in the file, in order, reading it in large chunks.
    @usableFromInline func forEach(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try out.flush()
        let reader = try self.reader ?? BlockFileReader(path: path)
        self.reader = reader
        var at: Int64 = 0
        while at < out.offset {
            let got = Int(min(Int64(chunk.count), out.offset - at))
            try reader.readExactly(UnsafeMutableRawBufferPointer(rebasing: chunk[0..<got]), at: at)
            // Whole values only; one cut by the chunk's end is read again from its start.
            var used = 0
            while used + 4 <= got {
                let n = Int(chunk.baseAddress!.loadUnaligned(fromByteOffset: used, as: UInt32.self))
                guard used + 4 + n <= got else { break }
                try body(UnsafeRawBufferPointer(start: chunk.baseAddress! + used + 4, count: n))
                used += 4 + n
            }
            if used == 0 {
                // A value larger than the chunk: grow the chunk to hold it.
                let n = Int(chunk.baseAddress!.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
                chunk.deallocate()
                chunk = .allocate(byteCount: 4 + n, alignment: 8)
                continue
            }
            at += Int64(used)
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
    /// Bytes of right values held before they go to `spill`.
    @usableFromInline let limit: Int
    private let spillPath: String
    private let metrics: TaskMetrics?
    /// The current group's values that did not fit `limit` (nil: none did).
    @usableFromInline @exclusivity(unchecked) var spill: GroupSpill?
    private var spillFile: GroupSpill?

    /// A group that keeps at most about `limit` bytes of values in memory; more go to a file
    /// at `spillPath`.
    @usableFromInline init(limit: Int, spillPath: String, metrics: TaskMetrics?) {
        self.limit = max(limit, 4096)
        self.spillPath = spillPath
        self.metrics = metrics
        base = .allocate(byteCount: capacity, alignment: 8)
    }

    deinit { base.deallocate() }

    @inlinable var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: keyCount) }
    @inlinable var values: RightGroup {
        RightGroup(number: number, bytes: UnsafeRawBufferPointer(start: base + keyCount, count: count - keyCount), spill: spill)
    }

    /// Whether `key` is the current group's key.
    @inlinable func holds(_ key: UnsafeRawBufferPointer) -> Bool {
        number > 0 && compareBytes(self.key, key) == 0
    }

    /// Starts the group of `key`.
    @inlinable func start(_ key: UnsafeRawBufferPointer) throws {
        if spill != nil { try endSpill() }
        count = 0
        reserve(key.count)
        if key.count > 0 { (base).copyMemory(from: key.baseAddress!, byteCount: key.count) }
        keyCount = key.count
        count = key.count
        number += 1
    }

    /// Adds a right value to the group.
    @inlinable func add(_ value: UnsafeRawBufferPointer) throws {
        if count - keyCount + 4 + value.count > limit && count > keyCount { try spillValues() }
        reserve(4 + value.count)
        (base + count).storeBytes(of: UInt32(value.count), toByteOffset: 0, as: UInt32.self)
        if value.count > 0 { (base + count + 4).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        count += 4 + value.count
    }

    @inlinable func reserve(_ more: Int) {
        if count + more > capacity { grow(count + more) }
    }

    /// Moves the values held in memory to the end of the spill file.
    @usableFromInline func spillValues() throws {
        if spill == nil {
            if spillFile == nil { spillFile = try GroupSpill(path: spillPath) }
            spill = spillFile
            metrics?.spills += 1
        }
        let bytes = UnsafeRawBufferPointer(start: base + keyCount, count: count - keyCount)
        try spill!.append(bytes)
        metrics?.spillBytes += Int64(bytes.count)
        count = keyCount
    }

    @usableFromInline func endSpill() throws {
        try spill?.clear()
        spill = nil
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
    let sorter = try ByteRecordSorter.make(budget: task.memoryBudget, spillPrefix: task.tempPrefix + ".join",
                                       metrics: task.metrics, ascending: true)
    defer { ByteRecordSorter.keep(sorter) }
    try r.readPartitionSegments(task, partition: partition) { reader, start, end in
        task.metrics.recordsRead += try sorter.add(reader, from: start, to: end, side: 1)
    }
    try l.readPartitionSegments(task, partition: partition) { reader, start, end in
        task.metrics.recordsRead += try sorter.add(reader, from: start, to: end, side: 0)
    }
    // A key's right values beyond a quarter of the budget go to a file.
    let group = JoinGroup(limit: task.memoryBudget / 4, spillPath: task.tempPrefix + ".group", metrics: task.metrics)
    try sorter.finish { key, value, side in
        let same = group.holds(key)
        if side == 1 {
            if !same { try group.start(key) }
            try group.add(value)
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
        if group.spilled {
            // Too many to hold decoded: decoded again for each left value.
            return try group.forEach { bytes in
                var rw = ByteReader(bytes)
                try emit(key, v, try W.decode(from: &rw))
            }
        }
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

/// The small side of a broadcast join of byte pairs: its keys in a `BytesTable`, probed with
/// borrowed bytes (no allocation per probe), each key's values chained in arrival order in
/// one flat buffer (next record's offset, length, bytes).
@usableFromInline final class BroadcastTable {
    /// Per key: the offsets of its first and its last record.
    @usableFromInline struct Ends: BitwiseCopyable {
        @usableFromInline var first: Int64
        @usableFromInline var last: Int64
    }
    @usableFromInline let keys = BytesTable<Ends>()
    @usableFromInline @exclusivity(unchecked) var records = ByteWriter(capacity: 1 << 16)

    @usableFromInline init() {}

    /// Adds a record of the small side.
    @usableFromInline func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let at = records.count
        records.writeFixed(Int64(-1))
        records.writeFixed(UInt32(value.count))
        records.write(raw: value)
        keys.upsert(key, hash: StableHasher.hash(bytes: key), create: { Ends(first: Int64(at), last: Int64(at)) }, update: { ends in
            records.bytes.withUnsafeMutableBytes { $0.storeBytes(of: Int64(at), toByteOffset: Int(ends.last), as: Int64.self) }
            ends.last = Int64(at)
        })
    }

    /// Calls `body` with each value of `key`, in arrival order; false if it has none.
    @inlinable func forEachValue(of key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows -> Bool {
        guard var at = keys.find(key, hash: StableHasher.hash(bytes: key)).map({ Int($0.first) }) else { return false }
        try records.bytes.withUnsafeBytes { records in
            while at >= 0 {
                let n = Int(records.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self))
                try body(UnsafeRawBufferPointer(rebasing: records[at + 12 ..< at + 12 + n]))
                at = Int(records.loadUnaligned(fromByteOffset: at, as: Int64.self))
            }
        }
        return true
    }
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
            let table = BroadcastTable()
            for p in 0..<task.plan.partitionCount(of: small) {
                try small.compute(task, partition: p) { kv in table.add(kv.0.raw, kv.1.raw) }
            }
            try big.compute(task, partition: partition) { kv in
                let matched = try table.forEachValue(of: kv.0.raw) { other in
                    try sink(flip ? make(kv.0, ByteView(other), kv.1) : make(kv.0, kv.1, ByteView(other)))
                }
                if !matched && outer { try sink(make(kv.0, kv.1, nil)) }
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
