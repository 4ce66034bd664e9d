import ArgumentParser
import Foundation
import SluiceReport

/// `sluice report RUN`
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Turn a run's event log into one self-contained HTML page.",
        discussion: """
        RUN is an event log (OUTPUT/_events.jsonl after a successful run, OUTPUT.events.jsonl beside the \
        output of a failed one, or the --event-log file) or an output folder holding one. The page shows \
        the outcome, the stage graph, a table per stage and a timeline of every task attempt per worker. \
        It fetches nothing: open it anywhere, or attach it to a bug report.
        """)
    @Argument(help: ArgumentHelp("An event log, or the output folder of a run.", valueName: "RUN"))
    var source: String
    @Option(name: .shortAndLong, help: ArgumentHelp("The HTML file to write.", valueName: "file"))
    var output = "report.html"

    func run() throws {
        let path = try Self.eventLog(source)
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        let html: String
        do {
            // Lenient decoding: a log cut off mid-character still reads up to its last full line.
            html = try RunReport.html(eventLog: String(decoding: data, as: UTF8.self))
        } catch {
            throw ValidationError("\(path): \(error)")
        }
        do {
            try Data(html.utf8).write(to: URL(fileURLWithPath: output))
        } catch {
            throw ValidationError("cannot write \(output): \(error.localizedDescription)")
        }
        print("report of \(path) written to \(output)")
    }

    /// The event log `source` names: the file itself, or the one log in or beside an output folder
    /// (a job with several outputs keeps its log in the first, e.g. OUT/join/_events.jsonl).
    static func eventLog(_ source: String) throws -> String {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        let exists = fm.fileExists(atPath: source, isDirectory: &isFolder)
        if exists && !isFolder.boolValue { return source }
        var folder = source
        while folder.count > 1 && folder.hasSuffix("/") { folder.removeLast() }
        for direct in [folder + "/_events.jsonl", folder + ".events.jsonl"] where fm.fileExists(atPath: direct) { return direct }
        let entries = exists ? ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted() : []
        let nested = entries.map { folder + "/" + $0 + "/_events.jsonl" } + entries.filter { $0.hasSuffix(".events.jsonl") }.map { folder + "/" + $0 }
        let found = nested.filter { fm.fileExists(atPath: $0) }
        guard found.count == 1 else {
            throw ValidationError(found.isEmpty
                ? "no event log at \(source): expected a .jsonl file, or a folder with _events.jsonl (or \(folder).events.jsonl after a failed run)"
                : "\(source) holds several event logs; name one: " + found.joined(separator: ", "))
        }
        return found[0]
    }
}
