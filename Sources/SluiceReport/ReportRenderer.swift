import Foundation
import Sluice

/// `sluice report`: a run's event log as one self-contained HTML page (inline CSS and SVG, no
/// scripts, nothing fetched): the outcome, the DAG, the stage table and a per-worker timeline.
public enum RunReport {
    /// The page for `eventLog`, the text of an event log (JSON lines, `docs/event-log.md`).
    /// Unknown events and fields are ignored and unreadable lines (a truncated last line) skipped;
    /// throws `JobError.invalid` when no line is an event.
    public static func html(eventLog: String) throws -> String {
        let run = try RunLog(parsing: eventLog)
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(esc(run.job)) · \(esc(run.status)) · Sluice run report</title>
        <style>\(css)</style>
        </head>
        <body>
        <main>
        \(header(run))
        <section id="dag"><h2>Stages and shuffles</h2>
        <div class="scroll">\(DAGChart.svg(run))</div></section>
        <section id="stages"><h2>Stage table</h2>
        <div class="scroll">\(stageTable(run))</div></section>
        <section id="timeline"><h2>Timeline per worker</h2>
        <div class="scroll">\(TimelineChart.svg(run))</div>
        \(legend(run))</section>
        \(failures(run))
        <footer>\(footer(run))</footer>
        </main>
        </body>
        </html>

        """
    }

    // MARK: Page parts

    private static func header(_ run: RunLog) -> String {
        let processes = run.workers.count
        var facts: [(String, String)] = [
            ("duration", formatMs(run.durationMs)),
            ("workers", run.options.first { $0.0 == "workers" }?.1 ?? String(processes)),
            ("worker processes", String(processes)),
            ("retries", String(run.retries)),
            ("workers replaced", String(run.workersReplaced)),
            ("map tasks re-run", String(run.mapTasksRerun)),
            ("task attempts", String(run.attempts.count)),
        ]
        if run.speculativeAttempts > 0 { facts.append(("speculative attempts", String(run.speculativeAttempts))) }
        var details: [(String, String)] = [("started", iso8601(run.start))]
        if !run.runID.isEmpty { details.append(("run id", run.runID)) }
        details.append(("inputs", run.inputs.isEmpty ? "the job's bundled data" : run.inputs.joined(separator: " ")))
        if !run.output.isEmpty { details.append(("output", run.output)) }
        if !run.outputs.isEmpty && run.outputs != [run.output] { details.append(("committed", run.outputs.joined(separator: " "))) }
        if !run.parameters.isEmpty { details.append(("parameters", run.parameters.map { "\($0.0)=\($0.1)" }.joined(separator: " "))) }
        let sizes: Set = ["memory_per_task", "split_size"]
        let options = run.options.filter { !$0.1.isEmpty }.map { key, value in
            "\(key)=" + (sizes.contains(key) ? Int64(value).map(formatBytes) ?? value : value)
        }
        if !options.isEmpty { details.append(("options", options.joined(separator: " "))) }

        var html = "<header><h1>\(esc(run.job)) <span class=\"badge \(esc(run.status))\">\(esc(run.status))</span></h1>\n"
        if !run.summary.isEmpty { html += "<p class=\"summary\">\(esc(run.summary))</p>\n" }
        if run.status == "unfinished" {
            html += "<p class=\"error\">The log ends without a job_end event: the coordinator was stopped, or is still running.</p>\n"
        }
        if let error = run.error { html += "<p class=\"error\"><b>error:</b> \(esc(error))</p>\n" }
        html += "<div class=\"facts\">"
        for (label, value) in facts {
            let bad = value != "0" && ["retries", "workers replaced", "map tasks re-run"].contains(label)
            html += "<div class=\"fact\(bad ? " warn" : "")\"><b>\(esc(value))</b><span>\(esc(label))</span></div>"
        }
        html += "</div>\n<dl class=\"details\">"
        for (label, value) in details { html += "<dt>\(esc(label))</dt><dd>\(esc(value))</dd>" }
        return html + "</dl></header>"
    }

    private static func stageTable(_ run: RunLog) -> String {
        let columns = ["stage", "kind", "operators", "tasks", "records in", "records out", "shuffle write", "shuffle read",
                       "spill", "retries", "wall time", "task max", "task median", ""]
        var html = "<table><thead><tr>" + columns.enumerated().map { i, c in
            "<th\(i == 1 || i == 2 ? " class=\"l\"" : "")\(c == "retries" ? " title=\"failed attempts, fetch failures included\"" : "")>\(c)</th>"
        }.joined() + "</tr></thead><tbody>\n"
        for s in run.stages {
            let attempts = run.attempts.filter { $0.stage == s.id }
            let done = attempts.filter { $0.status == "success" }
            func sum(_ key: String) -> Int64 { done.reduce(0) { $0 + ($1.metrics[key] ?? 0) } }
            let times = done.map { $0.ms(logEnd: run.end) }.sorted()
            let maxMs = times.last ?? 0, medianMs = times.isEmpty ? 0 : times[times.count / 2]
            let skewed = maxMs > 3 * medianMs && maxMs > 200 // the run summary's rule
            let failed = attempts.filter { $0.status == "failed" || $0.status == "timed_out" || $0.status == "fetch_failed" }.count
            let wall: String
            if s.reused {
                wall = "reused"
            } else if let ms = s.wallMs {
                wall = formatMs(ms)
            } else if let submitted = s.submitted {
                wall = "unfinished (\(formatMs(Double(run.end - submitted))))"
            } else {
                wall = "not started"
            }
            let spill = sum("spills") == 0 ? "–" : "\(sum("spills"))× \(formatBytes(sum("spill_bytes")))"
            let tasks = (done.count == s.tasks || s.reused ? String(s.tasks) : "\(done.count) of \(s.tasks)")
                + (s.tasks != s.plannedTasks ? " (\(s.plannedTasks) planned)" : "")
            let cells = [
                "<td><span class=\"swatch\" style=\"background:\(stageColor(s.id))\"></span>\(s.id)</td>",
                "<td class=\"l\">\(esc(s.kind))</td>",
                "<td class=\"l ops\">\(esc(s.operators.joined(separator: " → ")))</td>",
                "<td>\(tasks)</td>",
                "<td>\(grouped(sum("records_in")))</td>",
                "<td>\(grouped(sum("records_out")))</td>",
                "<td>\(sum("shuffle_write") == 0 ? "–" : formatBytes(sum("shuffle_write")))</td>",
                "<td>\(sum("shuffle_read") == 0 ? "–" : formatBytes(sum("shuffle_read")))</td>",
                "<td>\(spill)</td>",
                "<td\(failed > 0 ? " class=\"bad\"" : "")>\(failed)</td>",
                "<td>\(esc(wall))</td>",
                "<td>\(times.isEmpty ? "–" : formatMs(maxMs))</td>",
                "<td>\(times.isEmpty ? "–" : formatMs(medianMs))</td>",
                "<td class=\"l\">" + (skewed ? "<span class=\"skewed\" title=\"the slowest task took over 3× the median and over 0.2 s\">skewed</span> " : "")
                    + s.notes.map { "<span class=\"split\" title=\"\(esc($0))\">split</span>" }.joined(separator: " ") + "</td>",
            ]
            html += "<tr id=\"stage-\(s.id)\">" + cells.joined() + "</tr>\n"
        }
        return html + "</tbody></table>"
    }

    private static func legend(_ run: RunLog) -> String {
        var items = run.stages.map {
            "<span><i class=\"swatch\" style=\"background:\(stageColor($0.id))\"></i>stage \($0.id) (\(esc($0.kind)))</span>"
        }
        items += [
            "<span><i class=\"swatch failed\"></i>failed attempt (<b class=\"lost-key\">▼</b> over a short one)</span>",
            "<span><i class=\"swatch fetch-failed\"></i>fetch failed (map output lost)</span>",
            "<span><i class=\"swatch discarded\"></i>discarded or killed duplicate</span>",
            "<span><i class=\"swatch unfinished\"></i>unfinished when the log ends</span>",
            "<span><b class=\"retry\">↻N</b> attempt N of a retried task</span>",
            "<span><b class=\"lost-key\">✕</b> worker lost</span>",
            "<span><b>black outline</b> the three longest attempts (labelled above if the bar is narrow)</span>",
        ]
        return "<div class=\"legend\">" + items.joined() + "</div><p class=\"note\">Hover a bar for its details. "
            + "Lanes are worker processes; the shaded part of a lane is while the process was alive.</p>"
    }

    /// Failed attempts and lost workers with their reasons, in time order.
    private static func failures(_ run: RunLog) -> String {
        var rows: [(time: Int64, cells: [String])] = run.attempts.compactMap { a in
            guard let status = a.status, status == "failed" || status == "timed_out" || status == "fetch_failed", let end = a.end else { return nil }
            return (end, [status.replacingOccurrences(of: "_", with: " "), "stage \(a.stage), partition \(a.partition), attempt \(a.attempt + 1)",
                          "worker \(a.worker)", a.error ?? ""])
        }
        rows += run.workers.compactMap { w in
            w.lost.map { ($0, ["worker lost", w.pid.map { "pid \($0)" } ?? "", "worker \(w.id)", w.lostReason ?? ""]) }
        }
        guard !rows.isEmpty else { return "" }
        let limit = 200
        var html = "<section id=\"failures\"><h2>Failures</h2><div class=\"scroll\"><table><thead><tr><th>time</th>"
            + "<th class=\"l\">what</th><th class=\"l\">task</th><th class=\"l\">where</th><th class=\"l\">reason</th></tr></thead><tbody>\n"
        for row in rows.sorted(by: { $0.time < $1.time }).prefix(limit) {
            html += "<tr><td>\(formatSeconds(Double(row.time - run.start)))</td>"
                + row.cells.enumerated().map { i, cell in "<td class=\"l\(i == 3 ? " reason" : "")\">\(esc(cell))</td>" }.joined()
                + "</tr>\n"
        }
        html += "</tbody></table></div>"
        if rows.count > limit { html += "<p class=\"note\">… and \(rows.count - limit) more.</p>" }
        return html + "</section>"
    }

    private static func footer(_ run: RunLog) -> String {
        var notes = ["Made by <code>sluice report</code> from an event log of format version \(run.version.map(String.init) ?? "unknown")."]
        if let v = run.version, v > 1 {
            notes.append("This report reads version 1; fields and events it does not know were ignored.")
        }
        if run.skippedLines > 0 {
            notes.append("\(run.skippedLines) unreadable line\(run.skippedLines == 1 ? " was" : "s were") skipped (a truncated last line is normal for a killed coordinator).")
        }
        return notes.joined(separator: " ")
    }

    // MARK: Formatting shared by the page and its charts

    /// Text made safe for HTML and SVG element content and attribute values.
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// An SVG coordinate with one decimal.
    static func px(_ v: Double) -> String { String(format: "%.1f", v) }

    /// `45 ms`, `1.23 s`, `2 min 05 s`.
    static func formatMs(_ ms: Double) -> String {
        if ms < 1000 { return "\(Int(ms.rounded())) ms" }
        if ms < 60_000 { return String(format: "%.2f s", ms / 1000) }
        let s = Int((ms / 1000).rounded())
        return s < 3600 ? String(format: "%d min %02d s", s / 60, s % 60) : String(format: "%d h %02d min", s / 3600, s / 60 % 60)
    }

    /// An offset from the job's start: `1.234 s`.
    static func formatSeconds(_ ms: Double) -> String { String(format: "%.3f s", ms / 1000) }

    /// `1,234,567`.
    static func grouped(_ n: Int64) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(d)
        }
        return (n < 0 ? "-" : "") + out
    }

    private static func iso8601(_ ms: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// A stage's colour (status colours red, orange and grey are left out).
    static func stageColor(_ id: Int) -> String {
        let palette = ["#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#8cb5e0", "#9c755f", "#a0cbe8", "#d4a6c8", "#86bcb6",
                       "#6b6ecf", "#8ca252"]
        return palette[((id % palette.count) + palette.count) % palette.count]
    }

    /// Black or white, whichever reads better on `hex`.
    static func textColor(on hex: String) -> String {
        let v = Int(hex.dropFirst(), radix: 16) ?? 0
        let luminance = 0.299 * Double(v >> 16) + 0.587 * Double((v >> 8) & 0xff) + 0.114 * Double(v & 0xff)
        return luminance > 150 ? "#111827" : "#ffffff"
    }

    private static let css = """
    body { margin: 0; background: #f3f4f6; color: #1f2937; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
    main { max-width: 1360px; margin: 0 auto; padding: 16px 20px 24px; }
    header, section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 14px 18px; margin: 0 0 14px; }
    h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 16px; margin: 0 0 10px; }
    .summary { margin: 0 0 10px; color: #4b5563; }
    .badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 13px; font-weight: 600; vertical-align: 3px; }
    .badge.success { background: #dcfce7; color: #166534; } .badge.failed { background: #fee2e2; color: #991b1b; }
    .badge.unfinished, .badge.unknown { background: #fef3c7; color: #92400e; }
    .error { background: #fef2f2; border: 1px solid #fecaca; color: #7f1d1d; padding: 8px 12px; border-radius: 6px; margin: 8px 0;
             font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; white-space: pre-wrap; }
    .facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px 14px; margin: 12px 0; }
    .fact { border-left: 3px solid #d1d5db; padding-left: 9px; } .fact.warn { border-color: #f59e0b; }
    .fact b { display: block; font-size: 19px; } .fact span { color: #6b7280; font-size: 12px; }
    .details { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; font-size: 13px; }
    .details dt { color: #6b7280; } .details dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; overflow-wrap: anywhere; }
    .scroll { overflow-x: auto; } svg { display: block; max-width: 100%; height: auto; }
    table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
    th, td { padding: 5px 8px; border-bottom: 1px solid #e5e7eb; text-align: right; white-space: nowrap; }
    th { background: #f9fafb; color: #374151; } .l { text-align: left; } td.ops, td.reason { white-space: normal; min-width: 220px; }
    td.bad { color: #b91c1c; font-weight: 600; }
    .skewed, .split { background: #fef3c7; color: #92400e; border-radius: 4px; padding: 1px 6px; font-weight: 600; }
    .split { background: #e0e7ff; color: #3730a3; }
    .swatch { display: inline-block; width: 12px; height: 12px; border-radius: 3px; vertical-align: -1px; margin-right: 6px; }
    .swatch.failed { background: repeating-linear-gradient(45deg, #dc2626 0 2px, #fecaca 2px 5px); outline: 1.5px solid #dc2626; }
    .swatch.fetch-failed { background: #fb923c; } .swatch.discarded { background: #9ca3af; }
    .swatch.unfinished { background: #cbd5e1; outline: 1.5px dashed #111827; }
    .legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin-top: 10px; font-size: 12.5px; }
    .legend .retry { color: #6d28d9; } .legend .lost-key { color: #dc2626; }
    .note, footer { color: #6b7280; font-size: 12.5px; margin: 6px 0 0; }
    svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
    .dag .box { fill: #fff; stroke-width: 1.5; } .dag .unfinished .box { stroke-dasharray: 6 3; }
    .dag .box-head { font-size: 12.5px; font-weight: 600; } .dag .box-head.count { text-anchor: end; font-weight: 400; }
    .dag .op { font: 11.5px ui-monospace, "DejaVu Sans Mono", monospace; fill: #111827; }
    .dag .io { font-size: 11px; fill: #4b5563; } .dag .io.note { fill: #3730a3; } .dag .state { font-size: 11px; fill: #047857; } .dag .state.bad { fill: #b91c1c; }
    .dag .edge { fill: none; stroke: #4b5563; stroke-width: 1.5; } .dag .edge.dashed { stroke-dasharray: 5 4; }
    .dag .edge-label { font-size: 11px; fill: #1f2937; text-anchor: middle; } .dag .edge-label-bg { fill: #fff; fill-opacity: 0.92; }
    .timeline .lane0 { fill: #ffffff; } .timeline .lane1 { fill: #f9fafb; } .timeline .alive { fill: #e8edf4; }
    .timeline .grid { stroke: #d1d5db; stroke-width: 0.6; } .timeline .tick { font-size: 11px; fill: #4b5563; text-anchor: middle; }
    .timeline .axis-title { font-size: 11px; fill: #6b7280; text-anchor: end; }
    .timeline .lane-label { font-size: 12.5px; font-weight: 600; fill: #111827; } .timeline .lane-sub { font-size: 11px; fill: #6b7280; }
    .timeline .lane-sub.bad { fill: #dc2626; font-weight: 600; }
    .timeline .bar { stroke: rgba(17, 24, 39, 0.45); stroke-width: 0.8; }
    .timeline .bar.failed { fill: url(#tl-hatch); stroke: #dc2626; stroke-width: 1.6; }
    .timeline .bar.fetch-failed { fill: #fb923c; stroke: #c2410c; stroke-width: 1.4; }
    .timeline .bar.discarded { fill: #9ca3af; } .timeline .bar.unfinished { fill-opacity: 0.45; stroke: #111827; stroke-dasharray: 4 2; stroke-width: 1.2; }
    .timeline .bar.longest:not(.failed) { stroke: #111827; stroke-width: 2.2; }
    .timeline .bartext { font-size: 10.5px; fill: #111827; pointer-events: none; }
    .timeline .bartext.failed { fill: #7f1d1d; font-weight: 600; paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
    .timeline .mark { font-size: 11px; } .timeline .mark.long { font-weight: 700; fill: #111827; } .timeline .mark.retry { font-weight: 700; fill: #6d28d9; }
    .timeline .mark.failed { fill: #dc2626; } .timeline .mark.fetch-failed { fill: #ea580c; }
    .timeline .lost-line { stroke: #dc2626; stroke-width: 1.5; stroke-dasharray: 3 2; }
    .timeline .lost-mark { fill: #dc2626; font-size: 17px; font-weight: 700; text-anchor: middle; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
    """
}
