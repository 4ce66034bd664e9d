/// `map`: one record out per record in.
final class MapNode<T, U>: Node<U> {
    let parent: Node<T>
    let transform: (T) throws -> U

    init(_ parent: Node<T>, op: String = "map", _ transform: @escaping (T) throws -> U) {
        self.parent = parent
        self.transform = transform
        super.init(op: op, parents: [parent])
    }

    override func compute(_ task: TaskContext, partition: Int, into sink: (U) throws -> Void) throws {
        let f = transform
        try parent.compute(task, partition: partition) { try sink(f($0)) }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [U] {
        try ref.records(of: parent).map(transform)
    }
}

/// `filter`: keeps the records the predicate accepts.
final class FilterNode<T>: Node<T> {
    let parent: Node<T>
    let predicate: (T) throws -> Bool

    init(_ parent: Node<T>, _ predicate: @escaping (T) throws -> Bool) {
        self.parent = parent
        self.predicate = predicate
        super.init(op: "filter", parents: [parent])
    }

    override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        let p = predicate
        try parent.compute(task, partition: partition) { if try p($0) { try sink($0) } }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [T] {
        try ref.records(of: parent).filter(predicate)
    }
}

/// `flatMap` in its emitting form: the closure pushes any number of records per input
/// record straight into the next operator (no per-record array).
final class EmitNode<T, U>: Node<U> {
    let parent: Node<T>
    let body: (T, (U) throws -> Void) throws -> Void

    init(_ parent: Node<T>, op: String, _ body: @escaping (T, (U) throws -> Void) throws -> Void) {
        self.parent = parent
        self.body = body
        super.init(op: op, parents: [parent])
    }

    override func compute(_ task: TaskContext, partition: Int, into sink: (U) throws -> Void) throws {
        let f = body
        try parent.compute(task, partition: partition) { try f($0, sink) }
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [U] {
        var out: [U] = []
        for t in try ref.records(of: parent) { try body(t) { out.append($0) } }
        return out
    }
}

/// `mapPartitions`: per-partition state created once, fed every record, finished at the end.
final class PartitionNode<T, U, State>: Node<U> {
    let parent: Node<T>
    let setup: (Int) throws -> State
    let process: (inout State, T, (U) throws -> Void) throws -> Void
    let finish: (inout State, (U) throws -> Void) throws -> Void

    init(_ parent: Node<T>,
         setup: @escaping (Int) throws -> State,
         process: @escaping (inout State, T, (U) throws -> Void) throws -> Void,
         finish: @escaping (inout State, (U) throws -> Void) throws -> Void) {
        self.parent = parent
        self.setup = setup
        self.process = process
        self.finish = finish
        super.init(op: "mapPartitions", parents: [parent])
    }

    override func compute(_ task: TaskContext, partition: Int, into sink: (U) throws -> Void) throws {
        var state = try setup(partition)
        let p = process
        try parent.compute(task, partition: partition) { try p(&state, $0, sink) }
        try finish(&state, sink)
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [U] {
        // The oracle treats the data as one partition: a job's result must not depend on
        // how records happen to be partitioned (as in Spark).
        var out: [U] = []
        var state = try setup(0)
        for t in try ref.records(of: parent) { try process(&state, t) { out.append($0) } }
        try finish(&state) { out.append($0) }
        return out
    }
}

/// `union`: the partitions of every parent, one after another; no data moves.
final class UnionNode<T>: Node<T> {
    let inputs: [Node<T>]

    init(_ inputs: [Node<T>]) {
        self.inputs = inputs
        super.init(op: "union", parents: inputs)
    }

    override var partitionCount: Int { inputs.reduce(0) { $0 + $1.partitionCount } }

    /// Which parent, and which of its partitions, partition `p` is.
    func locate(_ p: Int) -> (Node<T>, Int) {
        var rest = p
        for input in inputs {
            if rest < input.partitionCount { return (input, rest) }
            rest -= input.partitionCount
        }
        preconditionFailure("union partition \(p) out of range")
    }

    override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        let (input, p) = locate(partition)
        try input.compute(task, partition: p, into: sink)
    }

    override func reference(_ ref: ReferenceExecutor) throws -> [T] {
        try inputs.flatMap { try ref.records(of: $0) }
    }
}
