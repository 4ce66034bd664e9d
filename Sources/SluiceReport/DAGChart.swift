extension RunReport {
    /// The job's DAG as inline SVG: one box per stage listing its fused operators, in columns by
    /// depth (a stage sits one column right of its deepest parent), arrows for the shuffles
    /// between stages labelled with their partition counts.
    enum DAGChart {
        static let boxWidth = 224.0, columnGap = 172.0, rowGap = 22.0, margin = 14.0
        static let headerHeight = 24.0, lineHeight = 15.0

        private struct Line {
            var text: String
            var cls: String
        }

        private struct Box {
            var stage: RunLog.Stage
            var lines: [Line]
            var x = 0.0
            var y = 0.0
            var height: Double { DAGChart.headerHeight + Double(lines.count) * DAGChart.lineHeight + 10 }
            var centreY: Double { y + height / 2 }
        }

        static func svg(_ run: RunLog) -> String {
            guard !run.stages.isEmpty else { return "<p class=\"note\">The log has no plan (its job_start event is missing).</p>" }
            var depth: [Int: Int] = [:]
            for _ in run.stages {  // longest path from a source; bounded even if the log is inconsistent
                for s in run.stages { depth[s.id] = s.parents.compactMap { depth[$0].map { $0 + 1 } }.max() ?? 0 }
            }
            let columns = (0...(depth.values.max() ?? 0)).map { d in run.stages.filter { depth[$0.id] == d } }

            var boxes: [Int: Box] = [:]
            for (c, column) in columns.enumerated() {
                // Children sit level with their parents where there is room, in their parents' order.
                func parentCentre(_ s: RunLog.Stage) -> Double? {
                    let ys = s.parents.compactMap { boxes[$0]?.centreY }
                    return ys.isEmpty ? nil : ys.reduce(0, +) / Double(ys.count)
                }
                let ordered = column.sorted { (parentCentre($0) ?? 0, $0.id) < (parentCentre($1) ?? 0, $1.id) }
                var cursor = margin
                for s in ordered {
                    var box = Box(stage: s, lines: lines(s, run: run))
                    box.x = margin + Double(c) * (boxWidth + columnGap)
                    box.y = max(cursor, (parentCentre(s) ?? cursor) - box.height / 2)
                    cursor = box.y + box.height + rowGap
                    boxes[s.id] = box
                }
            }

            var edges = ""
            var labels = ""
            var bottom = boxes.values.map { $0.y + $0.height }.max() ?? 0
            for s in run.stages {
                for p in s.parents {
                    guard let from = boxes[p], let to = boxes[s.id] else { continue }
                    let (sx, sy, ex, ey) = (from.x + boxWidth, from.centreY, to.x, to.centreY)
                    var label: String?
                    var dashed = false
                    if let shuffle = from.stage.writesShuffle, s.readsShuffles.contains(shuffle) {
                        let n = from.stage.partitions ?? s.tasks
                        label = "shuffle \(shuffle) · \(n) partition\(n == 1 ? "" : "s")"
                    } else if from.stage.samplesShuffle != nil {
                        label = "key sample → range bounds"
                        dashed = true
                    }
                    // An edge that skips columns goes round the boxes in between, below them.
                    let between = boxes.values.filter {
                        $0.x > from.x && $0.x < to.x && $0.y < max(sy, ey) + 8 && $0.y + $0.height > min(sy, ey) - 8
                    }
                    let path: String
                    let labelX: Double, labelY: Double
                    if let lowest = between.map({ $0.y + $0.height }).max() {
                        let by = lowest + 16, g = columnGap / 2
                        path = "M\(px(sx)),\(px(sy)) C\(px(sx + g)),\(px(sy)) \(px(sx + g)),\(px(by)) \(px(sx + columnGap)),\(px(by)) "
                            + "L\(px(ex - columnGap)),\(px(by)) C\(px(ex - g)),\(px(by)) \(px(ex - g)),\(px(ey)) \(px(ex)),\(px(ey))"
                        (labelX, labelY) = ((sx + ex) / 2, by + 4)
                        bottom = max(bottom, by + 10)
                    } else {
                        let g = (ex - sx) / 2
                        path = "M\(px(sx)),\(px(sy)) C\(px(sx + g)),\(px(sy)) \(px(ex - g)),\(px(ey)) \(px(ex - 2)),\(px(ey))"
                        (labelX, labelY) = ((sx + ex) / 2, (sy + ey) / 2 + 4)
                    }
                    let title = "stage \(p) → stage \(s.id)" + (label.map { ": " + $0 } ?? "")
                    edges += "<path class=\"edge\(dashed ? " dashed" : "")\" d=\"\(path)\" marker-end=\"url(#dag-arrow)\"><title>\(esc(title))</title></path>\n"
                    if let label {
                        let w = Double(label.count) * 6.1 + 10
                        labels += "<rect class=\"edge-label-bg\" x=\"\(px(labelX - w / 2))\" y=\"\(px(labelY - 12))\" width=\"\(px(w))\" height=\"16\" rx=\"3\"/>"
                        labels += "<text class=\"edge-label\" x=\"\(px(labelX))\" y=\"\(px(labelY))\">\(esc(label))</text>\n"
                    }
                }
            }

            var body = ""
            for s in run.stages {
                guard let box = boxes[s.id] else { continue }
                let unfinished = s.completed == nil && !s.reused
                let title = (["stage \(s.id) (\(s.kind)), \(s.tasks) task\(s.tasks == 1 ? "" : "s")"]
                    + s.operators.map { "  " + $0 } + s.inputs.map { "input: " + $0 }
                    + [s.write.map { "writes: " + $0 }, s.action.map { "action: " + $0 }].compactMap { $0 } + s.notes).joined(separator: "\n")
                body += "<g class=\"stage\(unfinished ? " unfinished" : "")\"><title>\(esc(title))</title>\n"
                body += "<rect class=\"box\" x=\"\(px(box.x))\" y=\"\(px(box.y))\" width=\"\(px(boxWidth))\" height=\"\(px(box.height))\" rx=\"6\" style=\"stroke:\(stageColor(s.id))\"/>\n"
                body += "<path d=\"M\(px(box.x)),\(px(box.y + headerHeight)) v\(px(-headerHeight + 6)) a6,6 0 0 1 6,-6 h\(px(boxWidth - 12)) a6,6 0 0 1 6,6 v\(px(headerHeight - 6)) z\" style=\"fill:\(stageColor(s.id))\"/>\n"
                body += "<text class=\"box-head\" x=\"\(px(box.x + 8))\" y=\"\(px(box.y + 16.5))\" style=\"fill:\(textColor(on: stageColor(s.id)))\">Stage \(s.id) · \(esc(s.kind))</text>"
                body += "<text class=\"box-head count\" x=\"\(px(box.x + boxWidth - 8))\" y=\"\(px(box.y + 16.5))\" style=\"fill:\(textColor(on: stageColor(s.id)))\">\(s.tasks) task\(s.tasks == 1 ? "" : "s")</text>\n"
                for (i, line) in box.lines.enumerated() {
                    let y = box.y + headerHeight + 15 + Double(i) * lineHeight
                    body += "<text class=\"\(line.cls)\" x=\"\(px(box.x + 9))\" y=\"\(px(y))\">\(esc(line.text))</text>\n"
                }
                body += "</g>\n"
            }
            let width = margin * 2 + Double(columns.count) * boxWidth + Double(columns.count - 1) * columnGap
            let height = bottom + margin
            return """
            <svg class="dag" width="\(px(width))" height="\(px(height))" viewBox="0 0 \(px(width)) \(px(height))" role="img" aria-label="stage graph">
            <defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#4b5563"/></marker></defs>
            \(edges)\(body)\(labels)</svg>
            """
        }

        /// The text lines inside a stage's box: operators, inputs, what it writes, how it ran;
        /// long ones wrapped to fit.
        private static func lines(_ s: RunLog.Stage, run: RunLog) -> [Line] {
            var lines = s.operators.map { Line(text: $0, cls: "op") }
            lines += s.inputs.map { Line(text: "in: " + $0, cls: "io") }
            if let write = s.write { lines.append(Line(text: "→ " + write, cls: "io")) }
            if let action = s.action { lines.append(Line(text: "→ " + action, cls: "io")) }
            if let sampled = s.samplesShuffle { lines.append(Line(text: "→ key sample for shuffle \(sampled)", cls: "io")) }
            lines += s.notes.map { Line(text: $0, cls: "io note") }
            let failed = run.attempts.filter { $0.stage == s.id && ($0.status == "failed" || $0.status == "timed_out" || $0.status == "fetch_failed") }.count
            var state: String
            if s.reused {
                state = "reused from an earlier run"
            } else if let ms = s.wallMs {
                state = "done in " + formatMs(ms)
            } else {
                state = s.submitted == nil ? "not started" : "not finished"
            }
            if failed > 0 { state += " · \(failed) failed attempt\(failed == 1 ? "" : "s")" }
            lines.append(Line(text: state, cls: failed > 0 || (s.completed == nil && !s.reused) ? "state bad" : "state"))
            return lines.flatMap { line in
                wrap(line.text, chars: line.cls == "op" ? 29 : 34, maxLines: line.cls == "io note" ? 3 : 2).map { Line(text: $0, cls: line.cls) }
            }
        }

        /// `text` in lines of at most `chars` characters, broken at a space in the second half of
        /// a line, else mid-word (long paths); past `maxLines` the rest is cut with an ellipsis
        /// (the box's tooltip has it all).
        private static func wrap(_ text: String, chars: Int, maxLines: Int = 2) -> [String] {
            var lines: [String] = []
            var rest = Substring(text)
            while !rest.isEmpty {
                if lines.count == maxLines - 1 && rest.count > chars {
                    lines.append(String(rest.prefix(chars - 1)) + "…")
                    break
                }
                guard rest.count > chars else {
                    lines.append(String(rest))
                    break
                }
                let window = rest.prefix(chars + 1)
                let half = rest.index(rest.startIndex, offsetBy: chars / 2)
                let cut = window.lastIndex(of: " ").flatMap { $0 >= half ? $0 : nil } ?? rest.index(rest.startIndex, offsetBy: chars)
                lines.append(String(rest[..<cut]))
                rest = rest[cut...].drop { $0 == " " }
            }
            return lines
        }
    }
}
