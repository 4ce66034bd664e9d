import Sluice

extension JobContext {
    /// The events of the event log in folder `path` whose offsets are in `offsets`, as
    /// `partitions` contiguous offset ranges (one task each; a task seeks to its range with
    /// the sparse index). Events are borrowed: read their fields in the next operator.
    public func eventLog(_ path: String, offsets: Range<Int64>, partitions: Int) -> Dataset<LogEvent> {
        Dataset(EventLogSource.node(path: path, offsets: offsets, partitions: partitions), graph)
    }
}

/// An offset range of an event log cut into equal offset ranges, as a source node. The ranges
/// follow from the job's arguments alone, so every process agrees on them without planned
/// input splits.
enum EventLogSource {
    static func node(path: String, offsets: Range<Int64>, partitions requested: Int) -> Node<LogEvent> {
        let partitions = max(1, min(requested, max(1, offsets.count)))
        return ClosureNode<LogEvent>(op: "eventLog", parents: [], partitions: partitions, body: { task, partition, sink in
            try read(path, range(partition, of: offsets, partitions: partitions), task: task, into: sink)
        }, reference: { ref in try reference(path, offsets, ref) })
    }

    /// The offsets of task `partition` when `offsets` is cut into `partitions` tasks (clamped
    /// as the node clamps them).
    static func range(_ partition: Int, of offsets: Range<Int64>, partitions requested: Int) -> Range<Int64> {
        let partitions = max(1, min(requested, max(1, offsets.count)))
        let n = Int64(offsets.count)
        let lo = offsets.lowerBound + n * Int64(partition) / Int64(partitions)
        let hi = offsets.lowerBound + n * Int64(partition + 1) / Int64(partitions)
        return lo..<hi
    }

    /// One task's events. A corrupt or short log is bad input, not a transient failure: an
    /// `InputError`, which fails the job at once instead of being retried.
    static func read(_ path: String, _ range: Range<Int64>, task: TaskContext, into sink: (LogEvent) throws -> Void) throws {
        guard !range.isEmpty else { return }
        let metrics = task.metrics
        do {
            let cursor = try EventLog(path: path).cursor(from: range.lowerBound)
            while try cursor.read(limit: 1 << 16, end: range.upperBound, { event in
                metrics.recordsRead += 1
                metrics.bytesRead += Int64(event.payload.count + LogFormat.headerSize + LogFormat.bodyPrefix)
                try sink(event)
            }) > 0 {}
            guard cursor.nextOffset >= range.upperBound else {
                throw InputError(source: path, reason: "the event log ends at offset \(cursor.nextOffset), inside the range [\(range.lowerBound), \(range.upperBound)) read")
            }
        } catch let e as EventLogError {
            throw InputError(source: e.segment ?? path, offset: e.byte, reason: e.segment == nil ? e.reason : "corrupt event log: \(e.reason)")
        }
    }

    /// The reference executor's events: every payload in one buffer that lives as long as it.
    static func reference(_ path: String, _ offsets: Range<Int64>, _ ref: ReferenceExecutor) throws -> [LogEvent] {
        var payloads: [UInt8] = []
        var headers: [(offset: Int64, time: Int64, end: Int)] = []
        let end = try EventLog(path: path).read(from: offsets.lowerBound, to: offsets.upperBound) { e in
            payloads.append(contentsOf: e.payload)
            headers.append((e.offset, e.time, payloads.count))
        }
        guard end >= offsets.upperBound else {
            throw EventLogError("the event log \(path) ends at offset \(end), before \(offsets.upperBound)")
        }
        let kept = ref.keep(payloads)
        var start = 0
        return headers.map { h in
            defer { start = h.end }
            return LogEvent(offset: h.offset, time: h.time, payload: UnsafeRawBufferPointer(rebasing: kept[start..<h.end]))
        }
    }
}
