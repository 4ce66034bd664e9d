import Sluice

/// The delimiter of a table file: `--param delimiter=…`, else tab for `.tsv`/`.tab`, else comma.
func delimiter(_ ctx: JobContext, _ path: String) throws -> Character {
    let given = try ctx.parameter("delimiter")
    if given == "tab" || given == "\\t" { return "\t" }
    if let c = given.first, given.count == 1 { return c }
    return path.hasSuffix(".tsv") || path.hasSuffix(".tab") || path.hasSuffix(".tsv.gz") ? "\t" : ","
}

/// The index of a column, looked up by name in the first record's header and kept: a file's
/// records share one header, and a lookup by name per record cost a tenth of a large join.
final class ColumnLookup {
    let name: String
    var index: Int?
    init(_ name: String) { self.name = name }
    func callAsFunction(_ r: CSVRecord) throws -> Int {
        if let index { return index }
        let i = try r.columnIndex(name)
        index = i
        return i
    }
}

/// `join`: two CSV/TSV files with header rows joined on a column.
let joinJob = Job(
    "join", summary: "Joins two CSV/TSV files (header rows) on a column: left fields, then right fields without the key, as TSV",
    parameters: [
        JobParameter("left", help: "the left table (CSV or TSV with a header row)"),
        JobParameter("right", help: "the right table"),
        JobParameter("on", help: "the join column, present in both tables", default: ""),
        JobParameter("left-on", help: "the left join column (default: --on)", default: ""),
        JobParameter("right-on", help: "the right join column (default: --on)", default: ""),
        JobParameter("how", help: "inner or left", default: "inner"),
        JobParameter("delimiter", help: "field separator (default: tab for .tsv, else comma)", default: ""),
    ]
) { ctx in
    let leftPath = try ctx.parameter("left"), rightPath = try ctx.parameter("right")
    let on = try ctx.parameter("on")
    let leftOn = try ctx.parameter("left-on").isEmpty ? on : try ctx.parameter("left-on")
    let rightOn = try ctx.parameter("right-on").isEmpty ? on : try ctx.parameter("right-on")
    guard !leftOn.isEmpty, !rightOn.isEmpty else { throw JobError.badParameter("join needs --on COLUMN (or --left-on and --right-on)") }
    let how = try ctx.parameter("how")
    guard how == "inner" || how == "left" else { throw JobError.badParameter("--how must be inner or left, not \(how)") }
    let leftKey = ColumnLookup(leftOn), rightKey = ColumnLookup(rightOn)
    // Borrowed views: the key field, and the fields tab-joined (the record's own bytes for TSV).
    let left: Dataset<(ByteView, ByteView)> = ctx.csv([leftPath], delimiter: try delimiter(ctx, leftPath)) { r in
        (try r.view(try leftKey(r)), r.tabJoined())
    }
    let right: Dataset<(ByteView, ByteView)> = ctx.csv([rightPath], delimiter: try delimiter(ctx, rightPath)) { r in
        let key = try rightKey(r)
        return (try r.view(key), r.tabJoined(skipping: key))
    }
    let output = try ctx.output
    if how == "inner" {
        left.join(right).map { $0.1 }.write(to: output) { (row: (ByteView, ByteView), w: inout ByteWriter) in
            w.write(raw: row.0.raw)
            w.write(0x09)
            w.write(raw: row.1.raw)
        }
    } else {
        left.leftOuterJoin(right).map { $0.1 }.write(to: output) { (row: (ByteView, ByteView?), w: inout ByteWriter) in
            w.write(raw: row.0.raw)
            w.write(0x09)
            if let right = row.1 { w.write(raw: right.raw) }
        }
    }
}
