import Foundation
import Sluice
import SluiceReport
import SluiceJobs
import Testing

/// `sluice report`: one self-contained HTML page drawn from a run's event log.
@Suite("Run report")
struct ReportTests {
    /// A hand-written log: a crashed worker and the retry of its task, a fetch failure, a
    /// discarded speculative copy, a skewed stage, an unknown event and field, and a last line
    /// cut off mid-write.
    static let log = """
    {"event":"job_start","time":1000,"version":1,"job":"demo","summary":"counts <words> & more","run_id":"r1","inputs":["in.txt"],"output":"/out","parameters":{"k":"3"},"options":{"workers":2,"max_attempts":4,"inject":""},"from_the_future":[1],"stages":[{"id":0,"kind":"map","tasks":2,"parents":[],"operators":["textFiles","flatMap[tokenize]"],"reads_shuffles":[],"inputs":["in.txt"],"writes_shuffle":0,"partitions":3,"write":"hash-partition"},{"id":1,"kind":"result","tasks":3,"parents":[0],"operators":["reduceByKey (reduce side)"],"reads_shuffles":[0],"inputs":[],"action":"write /out"}]}
    {"event":"stage_submitted","time":1001,"stage":0,"tasks":2}
    {"event":"worker_start","time":1002,"worker":0,"pid":100}
    {"event":"worker_start","time":1002,"worker":1,"pid":101}
    {"event":"task_start","time":1010,"stage":0,"partition":0,"attempt":0,"worker":0,"pid":100,"speculative":false,"input":"in.txt [0, 10)"}
    {"event":"task_start","time":1010,"stage":0,"partition":1,"attempt":0,"worker":1,"pid":101,"speculative":false}
    {"event":"worker_lost","time":1200,"worker":0,"pid":100,"reason":"closed its pipe (killed by signal 9)","stage":0,"partition":0}
    {"event":"task_end","time":1200,"status":"failed","stage":0,"partition":0,"attempt":0,"worker":0,"error":"worker lost: closed its pipe"}
    {"event":"worker_start","time":1201,"worker":2,"pid":102}
    {"event":"task_start","time":1205,"stage":0,"partition":0,"attempt":1,"worker":2,"pid":102,"speculative":false}
    {"event":"task_end","time":1500,"status":"success","stage":0,"partition":0,"attempt":1,"worker":2,"duration_ms":295,"records_in":10,"records_out":20,"bytes_read":100,"shuffle_write":300,"shuffle_read":0,"output_bytes":0,"spills":0,"spill_bytes":0,"peak_rss_kib":2000,"bad_records":0}
    {"event":"task_end","time":1900,"status":"success","stage":0,"partition":1,"attempt":0,"worker":1,"duration_ms":890,"records_in":30,"records_out":60,"bytes_read":200,"shuffle_write":700,"shuffle_read":0,"output_bytes":0,"spills":1,"spill_bytes":4096,"peak_rss_kib":2000,"bad_records":0}
    {"event":"stage_completed","time":1900,"stage":0,"tasks":2,"duration_ms":899}
    {"event":"something_new","time":1901,"detail":1}
    {"event":"stage_submitted","time":1901,"stage":1,"tasks":3}
    {"event":"task_start","time":1902,"stage":1,"partition":0,"attempt":0,"worker":1,"pid":101,"speculative":false}
    {"event":"task_start","time":1902,"stage":1,"partition":2,"attempt":0,"worker":2,"pid":102,"speculative":false}
    {"event":"task_end","time":1950,"status":"fetch_failed","stage":1,"partition":0,"attempt":0,"worker":1,"error":"shuffle 0 map 1: checksum mismatch","lost_shuffle":0,"lost_map":1}
    {"event":"task_start","time":1951,"stage":1,"partition":0,"attempt":1,"worker":1,"pid":101,"speculative":false}
    {"event":"task_end","time":2001,"status":"success","stage":1,"partition":0,"attempt":1,"worker":1,"duration_ms":50,"records_in":40,"records_out":20,"bytes_read":0,"shuffle_read":400,"shuffle_write":0,"output_bytes":90,"spills":0,"spill_bytes":0,"peak_rss_kib":2100,"bad_records":0}
    {"event":"task_start","time":2002,"stage":1,"partition":1,"attempt":0,"worker":1,"pid":101,"speculative":false}
    {"event":"task_end","time":2062,"status":"success","stage":1,"partition":1,"attempt":0,"worker":1,"duration_ms":60,"records_in":20,"records_out":10,"bytes_read":0,"shuffle_read":300,"shuffle_write":0,"output_bytes":50,"spills":0,"spill_bytes":0,"peak_rss_kib":2100,"bad_records":0}
    {"event":"task_start","time":2063,"stage":1,"partition":2,"attempt":1,"worker":1,"pid":101,"speculative":true}
    {"event":"task_end","time":2802,"status":"success","stage":1,"partition":2,"attempt":0,"worker":2,"duration_ms":900,"records_in":20,"records_out":10,"bytes_read":0,"shuffle_read":300,"shuffle_write":0,"output_bytes":50,"spills":0,"spill_bytes":0,"peak_rss_kib":2100,"bad_records":0}
    {"event":"task_end","time":2803,"status":"discarded","stage":1,"partition":2,"attempt":1,"worker":1,"duration_ms":740,"records_in":20,"records_out":10,"bytes_read":0,"shuffle_read":300,"shuffle_write":0,"output_bytes":50,"spills":0,"spill_bytes":0,"peak_rss_kib":2100,"bad_records":0}
    {"event":"stage_completed","time":2803,"stage":1,"tasks":3,"duration_ms":902}
    {"event":"job_end","time":2810,"status":"success","outputs":["/out"],"duration_ms":1810,"retries":1,"workers_replaced":1,"map_tasks_rerun":0}
    {"event":"task_end","time":28
    """

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    /// The structure every report has, checked loosely: one document, balanced elements.
    static func expectWellFormed(_ html: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(html.hasPrefix("<!DOCTYPE html>"), sourceLocation: sourceLocation)
        #expect(html.hasSuffix("</html>\n"), sourceLocation: sourceLocation)
        for tag in ["html", "head", "body", "main", "section", "svg", "table", "tr", "title", "text", "defs", "pattern", "marker"] {
            let opened = count("<\(tag)>", in: html) + count("<\(tag) ", in: html)
            #expect(opened == count("</\(tag)>", in: html), "<\(tag)> opened \(opened) times, closed \(count("</\(tag)>", in: html))",
                    sourceLocation: sourceLocation)
        }
        #expect(count("<g>", in: html) + count("<g ", in: html) == count("</g>", in: html), sourceLocation: sourceLocation)
        // Self-contained: nothing is fetched.
        for reference in ["http://", "https://", "<script src", "<link", "@import", "<img"] {
            #expect(!html.contains(reference), "the page refers to \(reference)", sourceLocation: sourceLocation)
        }
    }

    @Test("the page has the header, the DAG, the stage table and a bar per task attempt")
    func handWrittenLog() throws {
        let html = try RunReport.html(eventLog: Self.log)
        Self.expectWellFormed(html)
        #expect(html.contains("<h1>demo <span class=\"badge success\">success</span></h1>"))
        #expect(html.contains("counts &lt;words&gt; &amp; more"), "text is escaped")
        #expect(html.contains("<b>1.81 s</b><span>duration</span>"))
        #expect(html.contains("<b>1</b><span>workers replaced</span>"))
        #expect(html.contains("<b>3</b><span>worker processes</span>"))

        // DAG: two boxes with their operators, one shuffle arrow labelled with its partitions.
        #expect(html.contains("<svg class=\"dag\""))
        #expect(Self.count("<rect class=\"box\"", in: html) == 2)
        #expect(html.contains(">flatMap[tokenize]</text>"))
        #expect(Self.count("<path class=\"edge\"", in: html) == 1)
        #expect(html.contains(">shuffle 0 · 3 partitions</text>"))

        // Stage table: stage 1 is skewed (900 ms against a 60 ms median), stage 0 is not.
        let rows = html.components(separatedBy: "<tr id=\"stage-").dropFirst().map { $0.prefix { $0 != "\n" } }
        #expect(rows.count == 2)
        #expect(rows[0].contains("<td>40</td><td>80</td>") && rows[0].contains("1× 4.0 KiB") && !rows[0].contains("skewed"))
        #expect(rows[0].contains("<td class=\"bad\">1</td>"), "stage 0 had one failed attempt")
        #expect(rows[1].contains("<td>902 ms</td><td>900 ms</td><td>60 ms</td>") && rows[1].contains(">skewed</span>"))

        // Timeline: a lane per worker, a bar per attempt, each failure kind drawn its own way.
        #expect(html.contains("<svg class=\"timeline\""))
        #expect(Self.count("<text class=\"lane-label\"", in: html) == 3)
        #expect(Self.count("<rect class=\"bar ", in: html) == 8)
        #expect(Self.count("<rect class=\"bar failed", in: html) == 1)
        #expect(Self.count("<rect class=\"bar fetch-failed", in: html) == 1)
        #expect(Self.count("<rect class=\"bar discarded", in: html) == 1)
        #expect(html.contains("<title>stage 0, partition 0, attempt 1, worker 0\nstatus: failed\nerror: worker lost: closed its pipe"))
        #expect(html.contains("attempt 2 (retry) (speculative copy), worker 1"))
        #expect(html.contains("s0 p0 ↻2"), "the retried attempt is marked")
        #expect(html.contains(">✕</text>"), "the lost worker is marked")
        #expect(html.contains("class=\"bar ok longest\""), "the longest attempts stand out")
        #expect(html.contains("<td class=\"l\">worker lost</td>"))
        #expect(html.contains("1 unreadable line was skipped"))
    }

    @Test("a failed run shows its error; unfinished attempts and unknown versions are tolerated")
    func failedLog() throws {
        let lines = Self.log.split(separator: "\n").prefix(13).joined(separator: "\n").replacingOccurrences(of: "\"version\":1", with: "\"version\":2")
        let html = try RunReport.html(eventLog: lines + """

            {"event":"task_start","time":1950,"stage":1,"partition":0,"attempt":0,"worker":1,"pid":101}
            {"event":"job_end","time":1990,"status":"failed","error":"stage 1 <boom>"}
            """)
        Self.expectWellFormed(html)
        #expect(html.contains("<span class=\"badge failed\">failed</span>"))
        #expect(html.contains("<b>error:</b> stage 1 &lt;boom&gt;"))
        #expect(html.contains("<b>990 ms</b><span>duration</span>"))
        #expect(html.contains("<b>1</b><span>retries</span>"), "counted from the failed attempts when job_end has none")
        #expect(Self.count("<rect class=\"bar unfinished", in: html) == 1)
        #expect(html.contains("This report reads version 1"))
        #expect(throws: JobError.self) { try RunReport.html(eventLog: "not json\n{\"no_event\":1}\n") }
    }

    @Test("workers on cluster nodes are labelled with their node")
    func nodes() throws {
        let lines = Self.log.split(separator: "\n").map(String.init).map { line in
            line.replacingOccurrences(of: "\"worker\":1,\"pid\":101}", with: "\"worker\":1,\"location\":\"node n2 (srun pid 101)\"}")
        }
        let html = try RunReport.html(eventLog: lines.joined(separator: "\n"))
        #expect(html.contains("node n2"), "the lane of worker 1 names its node")
    }

    @Test("sluice report renders a real run with an injected failure, given its output folder",
          arguments: ["throw@0.0.0", "stall@0.0.0:after=1"])
    func realRun(spec: String) throws {
        let dir = Harness.tempDir("report")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = Harness.options(workers: 2, partitions: 2)
        o.inject = try FaultInjection(spec)
        o.taskTimeout = 1
        let result = try Coordinator(job: Harness.job("test-join"), arguments: JobArguments(output: dir + "/out", parameters: ["n": "300"]),
                                     options: o).run()
        #expect(result.retries == 1)

        let page = dir + "/report.html"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.sluiceBinary)
        p.arguments = ["report", dir + "/out", "-o", page]  // the log is in out/join, the first output
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        Self.expectWellFormed(html)
        let log = try String(contentsOfFile: result.eventLog, encoding: .utf8)
        #expect(Self.count("<rect class=\"bar ", in: html) == Self.count("\"event\":\"task_start\"", in: log))
        #expect(Self.count("<rect class=\"bar failed", in: html) == 1)
        #expect(Self.count("<tr id=\"stage-", in: html) == 9)
        #expect(html.contains(spec.hasPrefix("stall") ? "no progress for" : "injected failure (--inject)"))
        #expect(html.contains("inject=\(spec)"))
    }
}
