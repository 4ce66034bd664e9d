/// `union`: the partitions of every parent, one after another; no data moves.
@usableFromInline final class UnionNode<T>: Node<T> {
    let inputs: [Node<T>]

    @usableFromInline init(_ inputs: [Node<T>]) {
        self.inputs = inputs
        super.init(op: "union", parents: inputs)
    }

    override func partitionCount(in plan: PhysicalPlan) -> Int { inputs.reduce(0) { $0 + plan.partitionCount(of: $1) } }

    /// Which parent, and which of its partitions, partition `p` is under `plan`.
    func locate(_ p: Int, in plan: PhysicalPlan) -> (Node<T>, Int) {
        var rest = p
        for input in inputs {
            let count = plan.partitionCount(of: input)
            if rest < count { return (input, rest) }
            rest -= count
        }
        preconditionFailure("union partition \(p) out of range")
    }

    @usableFromInline override func compute(_ task: TaskContext, partition: Int, into sink: (T) throws -> Void) throws {
        let (input, p) = locate(partition, in: task.plan)
        try input.compute(task, partition: p, into: sink)
    }

    @usableFromInline override func reference(_ ref: ReferenceExecutor) throws -> [T] {
        try inputs.flatMap { try ref.records(of: $0) }
    }
}
