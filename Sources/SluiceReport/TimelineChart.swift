import Foundation
import Sluice

extension RunReport {
    /// The per-worker timeline (a Gantt chart) as inline SVG: one lane per worker process, one
    /// bar per task attempt from its `task_start` to its `task_end`, coloured by stage. Failed
    /// attempts are red and hatched, fetch failures orange, discarded or killed ones grey,
    /// unfinished ones outlined; retries carry ↻N, a lost worker a ✕, the longest attempts a label.
    enum TimelineChart {
        static let labelWidth = 132.0, plotWidth = 1150.0, rightMargin = 28.0
        static let laneHeight = 54.0, barTop = 20.0, barHeight = 26.0, axisHeight = 34.0, top = 4.0
        /// Rough width of one character of the 11 px labels.
        static let charWidth = 6.4

        private struct Mark {
            var lane: Int
            var x: Double
            var text: String
            var cls: String
        }

        static func svg(_ run: RunLog) -> String {
            guard !run.workers.isEmpty else { return "<p class=\"note\">No worker started.</p>" }
            let span = Double(max(1, run.end - run.start))
            func x(_ t: Int64) -> Double { labelWidth + Double(t - run.start) / span * plotWidth }
            let lanes = Dictionary(run.workers.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
            func laneY(_ lane: Int) -> Double { top + Double(lane) * laneHeight }
            let plotBottom = laneY(run.workers.count)
            var svg = ""

            for (i, w) in run.workers.enumerated() {
                let y = laneY(i)
                svg += "<rect class=\"lane\(i % 2)\" x=\"0\" y=\"\(px(y))\" width=\"\(px(labelWidth + plotWidth))\" height=\"\(px(laneHeight))\"/>\n"
                let alive = "worker \(w.id)" + (w.node.map { " on node \($0)" } ?? "") + (w.pid.map { " (pid \($0))" } ?? "") + " alive "
                    + formatSeconds(Double(w.start - run.start)) + " – " + formatSeconds(Double((w.lost ?? run.end) - run.start))
                svg += "<rect class=\"alive\" x=\"\(px(x(w.start)))\" y=\"\(px(y + barTop - 4))\" width=\"\(px(max(1, x(w.lost ?? run.end) - x(w.start))))\" height=\"\(px(barHeight + 8))\"><title>\(esc(alive))</title></rect>\n"
                svg += "<text class=\"lane-label\" x=\"10\" y=\"\(px(y + barTop + 11))\">worker \(w.id)</text>"
                let sub = [w.node.map { "node \($0)" }, w.pid.map { "pid \($0)" }, w.lost.map { _ in "lost" }].compactMap { $0 }
                    .joined(separator: " · ")
                svg += "<text class=\"lane-sub\(w.lost != nil ? " bad" : "")\" x=\"10\" y=\"\(px(y + barTop + 25))\">\(esc(sub))</text>\n"
            }

            // The time axis, in seconds from the job's start, with a grid line per tick.
            let seconds = span / 1000
            let step = tickStep(seconds)
            let decimals = max(0, Int(-floor(log10(step) + 1e-9)))
            for k in 0...Int((seconds / step + 1e-9).rounded(.down)) {
                let t = Double(k) * step
                let tx = labelWidth + t / seconds * plotWidth
                svg += "<line class=\"grid\" x1=\"\(px(tx))\" y1=\"\(px(top))\" x2=\"\(px(tx))\" y2=\"\(px(plotBottom + 5))\"/>"
                svg += "<text class=\"tick\" x=\"\(px(tx))\" y=\"\(px(plotBottom + 18))\">\(String(format: "%.\(decimals)f", t)) s</text>\n"
            }
            svg += "<text class=\"axis-title\" x=\"\(px(labelWidth + plotWidth))\" y=\"\(px(plotBottom + 31))\">seconds since the job started</text>\n"

            // Bars, successful ones first so that a short failed attempt is never hidden under one.
            // The three longest attempts get an outline (and a label above if the bar is narrow).
            let order = run.attempts.indices.sorted {
                (run.attempts[$0].status == "success" ? 0 : 1, run.attempts[$0].start) < (run.attempts[$1].status == "success" ? 0 : 1, run.attempts[$1].start)
            }
            let longest = Set(run.attempts.indices.filter { run.attempts[$0].end != nil }
                .sorted { run.attempts[$0].ms(logEnd: run.end) > run.attempts[$1].ms(logEnd: run.end) }.prefix(3))
            var failureMarks: [Mark] = [], longestMarks: [Mark] = [], retryMarks: [Mark] = []
            for i in order {
                let a = run.attempts[i]
                let lane = lanes[a.worker] ?? 0
                let x0 = x(a.start)
                let status = a.status ?? "unfinished"
                let width = max(status == "success" ? 2 : 4, x(a.end ?? run.end) - x0)
                let y = laneY(lane) + barTop
                let look = ["success": "ok", "failed": "failed", "timed_out": "failed", "fetch_failed": "fetch-failed", "discarded": "discarded",
                            "killed": "discarded", "unfinished": "unfinished"][status] ?? "discarded"
                let cls = "bar " + look + (longest.contains(i) ? " longest" : "")
                let fill = status == "success" || status == "unfinished" ? " style=\"fill:\(stageColor(a.stage))\"" : ""
                svg += "<rect class=\"\(cls)\" x=\"\(px(x0))\" y=\"\(px(y))\" width=\"\(px(width))\" height=\"\(px(barHeight))\" rx=\"2\"\(fill)>"
                svg += "<title>\(esc(tooltip(a, run: run)))</title></rect>\n"
                let name = "s\(a.stage) p\(a.partition)" + (a.attempt > 0 ? " ↻\(a.attempt + 1)" : "")
                let ms = a.ms(logEnd: run.end)
                let full = name + " · " + formatMs(ms)
                let text = [full, name, "s\(a.stage)"].first { Double($0.count) * charWidth + 6 <= width }
                if let text {
                    let ink = fill.isEmpty ? "" : " style=\"fill:\(textColor(on: stageColor(a.stage)))\""
                    svg += "<text class=\"bartext \(look)\"\(ink) x=\"\(px(x0 + 3))\" y=\"\(px(y + barHeight / 2 + 4))\">\(esc(text))</text>\n"
                }
                if longest.contains(i) && text != full {
                    longestMarks.append(Mark(lane: lane, x: x0, text: "s\(a.stage) p\(a.partition) · \(formatMs(ms))", cls: "mark long"))
                }
                if width < 14 && (look == "failed" || look == "fetch-failed") {
                    failureMarks.append(Mark(lane: lane, x: x0 + width / 2 - 4, text: "▼", cls: "mark " + look))
                }
                if a.attempt > 0 { retryMarks.append(Mark(lane: lane, x: x0, text: "↻\(a.attempt + 1)", cls: "mark retry")) }
            }
            // A lost worker's ✕ sits in the strip above its lane's bars, on a line across the lane.
            var taken: [Int: [ClosedRange<Double>]] = [:]
            for w in run.workers {
                guard let lost = w.lost, let lane = lanes[w.id] else { continue }
                let lx = x(lost), y = laneY(lane)
                taken[lane, default: []].append((lx - 9)...(lx + 9))
                svg += "<g class=\"lost\"><title>\(esc("worker \(w.id) lost at \(formatSeconds(Double(lost - run.start))): \(w.lostReason ?? "")"))</title>"
                svg += "<line class=\"lost-line\" x1=\"\(px(lx))\" y1=\"\(px(y + barTop - 4))\" x2=\"\(px(lx))\" y2=\"\(px(y + laneHeight - 2))\"/>"
                svg += "<text class=\"lost-mark\" x=\"\(px(lx))\" y=\"\(px(y + barTop - 4))\">✕</text></g>\n"
            }
            // Other labels go in that strip too: ▼ over a narrow failed attempt, then the longest
            // attempts' labels, then ↻N on retries; one that would overlap another is left out
            // (the bar's tooltip still says it all).
            for m in failureMarks + longestMarks + retryMarks {
                let w = Double(m.text.count) * charWidth
                let left = min(m.x, labelWidth + plotWidth + rightMargin - w)
                let range = (left - 3)...(left + w + 3)
                guard !(taken[m.lane] ?? []).contains(where: { $0.overlaps(range) }) else { continue }
                taken[m.lane, default: []].append(range)
                svg += "<text class=\"\(m.cls)\" x=\"\(px(left))\" y=\"\(px(laneY(m.lane) + barTop - 7))\">\(esc(m.text))</text>\n"
            }

            let width = labelWidth + plotWidth + rightMargin
            let height = plotBottom + axisHeight
            return """
            <svg class="timeline" width="\(px(width))" height="\(px(height))" viewBox="0 0 \(px(width)) \(px(height))" role="img" aria-label="task timeline per worker">
            <defs><pattern id="tl-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fecaca"/><line x1="1.5" y1="0" x2="1.5" y2="6" stroke="#dc2626" stroke-width="3"/></pattern></defs>
            \(svg)</svg>
            """
        }

        /// A bar's tooltip: which attempt, how it ended, what it did.
        private static func tooltip(_ a: RunLog.Attempt, run: RunLog) -> String {
            var lines = ["stage \(a.stage), partition \(a.partition), attempt \(a.attempt + 1)"
                + (a.attempt > 0 ? " (retry)" : "") + (a.speculative ? " (speculative copy)" : "") + ", worker \(a.worker)"]
            lines.append("status: " + (a.status.map { $0.replacingOccurrences(of: "_", with: " ") } ?? "unfinished when the log ends"))
            if let error = a.error { lines.append("error: " + error) }
            lines.append(formatMs(a.ms(logEnd: run.end)) + " (from " + formatSeconds(Double(a.start - run.start))
                         + " to " + formatSeconds(Double((a.end ?? run.end) - run.start)) + ")")
            if let input = a.input { lines.append("input: " + input) }
            let m = a.metrics
            if !m.isEmpty {
                lines.append("records: \(grouped(m["records_in"] ?? 0)) in, \(grouped(m["records_out"] ?? 0)) out")
                let io = [("read", "bytes_read"), ("shuffle write", "shuffle_write"), ("shuffle read", "shuffle_read"), ("output", "output_bytes")]
                    .compactMap { label, key in (m[key] ?? 0) > 0 ? "\(label) \(formatBytes(m[key]!))" : nil }
                if !io.isEmpty { lines.append(io.joined(separator: ", ")) }
                if let spills = m["spills"], spills > 0 { lines.append("spills: \(spills), \(formatBytes(m["spill_bytes"] ?? 0))") }
                if let rss = m["peak_rss_kib"], rss > 0 { lines.append("worker peak RSS: \(formatBytes(rss * 1024))") }
                if let bad = m["bad_records"], bad > 0 { lines.append("bad records skipped: \(grouped(bad))") }
            }
            return lines.joined(separator: "\n")
        }

        /// A round tick interval giving about ten ticks over `seconds`.
        static func tickStep(_ seconds: Double) -> Double {
            let raw = max(seconds, 0.001) / 10
            let magnitude = pow(10, floor(log10(raw)))
            return [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        }
    }
}
