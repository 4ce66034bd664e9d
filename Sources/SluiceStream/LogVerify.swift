import Sluice
extension EventLog {
    /// Offsets, segments, size and time range — after checking what they rest on: segments
    /// from offset 0 with none missing, each starting with its base offset and ending where the
    /// next begins, the last ending in whole records or a torn tail. With `verify`, every record
    /// (checksum, offset) and index entry of every segment is read and checked too. Throws an
    /// `EventLogError` naming the file and byte of the first problem.
    public func info(verify: Bool = false) throws -> LogInfo {
        let bases = segmentBases()
        if let first = bases.first, first != 0 {
            throw EventLogError.corrupt(segmentPath(first), byte: 0, "the first segment starts at offset \(first): the segments holding offsets [0, \(first)) are missing")
        }
        var at = IndexEntry(offset: 0, position: 0, before: TimeRange())
        var torn: TornTail?
        for (k, base) in bases.enumerated() {
            if k > 0 && at.offset != base { throw sequenceError(bases[k - 1], end: at, next: base) }
            let last = k == bases.count - 1
            let entries = try loadIndex(base) // before the records: an appender indexes records after writing them
            let reader = try SegmentReader(path: segmentPath(base))
            let start = IndexEntry(offset: base, position: 0, before: at.before)
            if verify {
                at = try verifySegment(reader, entries: entries, from: start, last: last)
            } else {
                _ = try scan(reader, from: start, upTo: base + 1, last: last)
                let j = try validEntry(entries, atOrBelow: .max, reader: reader)
                at = try scan(reader, from: j.map { entries[$0] } ?? start, upTo: .max, last: last)
            }
            let size = try reader.fileSize()
            if last && size > at.position { torn = TornTail(segment: reader.path, byte: at.position, bytes: size - at.position) }
        }
        let segments = bases.map { (base: $0, bytes: Durable.size(segmentPath($0)) ?? 0) }
        return LogInfo(path: path, segments: segments, firstOffset: 0, nextOffset: at.offset,
                       bytes: segments.reduce(0) { $0 + $1.bytes }, timeRange: at.before, schema: schema,
                       verified: verify, tornTail: torn)
    }

    /// Every record and index entry of one segment, from `start` (its first byte) to the end
    /// of its records.
    private func verifySegment(_ reader: SegmentReader, entries: [IndexEntry], from start: IndexEntry, last: Bool) throws -> IndexEntry {
        var at = start
        var e = 0
        reader.invalidate()
        while true {
            if e < entries.count && entries[e].position <= at.position {
                if entries[e] != at { throw indexError(reader.path, entry: e, says: entries[e], is: at) }
                e += 1
                continue
            }
            if try reader.advance(&at) { continue }
            guard try reader.isEnd(at: at.position, offset: at.offset, last: last) else { continue }
            if e < entries.count { throw indexError(reader.path, entry: e, says: entries[e], is: at) }
            return at
        }
    }

    /// Index entry `entry` of the segment at `segment` says `says`; the records say `at`.
    private func indexError(_ segment: String, entry: Int, says: IndexEntry, is at: IndexEntry) -> EventLogError {
        let index = String(segment.dropLast(4)) + ".index"
        let byte = Int64(entry * LogFormat.indexEntrySize)
        func times(_ r: TimeRange) -> String { r.isEmpty ? "none" : "[\(r.min), \(r.max)]" }
        if says.position > at.position {
            return .corrupt(index, byte: byte, "the entry points at byte \(says.position), past the segment's last whole record (it ends at byte \(at.position))")
        }
        if says.position < at.position {
            return .corrupt(index, byte: byte, "the entry points at byte \(says.position), inside a record of \(segment)")
        }
        if says.offset != at.offset {
            return .corrupt(index, byte: byte, "the entry says byte \(says.position) of \(segment) holds offset \(says.offset), but it holds offset \(at.offset)")
        }
        return .corrupt(index, byte: byte, "the entry gives the event times before offset \(at.offset) as \(times(says.before)), but the records give \(times(at.before))")
    }
}
