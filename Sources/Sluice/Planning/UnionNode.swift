/// `union`: the partitions of every parent, one after another; no data moves.
@usableFromInline final class UnionNode<T>: Node<T> {
    let inputs: [Node<T>]

    @usableFromInline init(_ inputs: [Node<T>]) {
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

    @usableFromInline override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        let (input, p) = locate(partition)
        try input.compute(task, partition: p, into: sink)
    }

    @usableFromInline override func reference(_ ref: ReferenceExecutor) throws -> [T] {
        try inputs.flatMap { try ref.records(of: $0) }
    }
}
