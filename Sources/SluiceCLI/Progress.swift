import ArgumentParser
import Foundation
import Logging
import Sluice

/// Live progress on stderr: on a terminal, one line per active stage redrawn in place (at
/// most 5 times a second); otherwise plain lines every 5 seconds, so CI logs stay readable.
final class ProgressPrinter: @unchecked Sendable {
    enum Mode: String, ExpressibleByArgument { case auto, on, off }

    private let lock = NSLock()
    private let redraw: Bool
    private let enabled: Bool
    private var lastDraw = Date.distantPast
    private var drawnLines = 0

    init(mode: Mode) {
        let tty = isatty(2) == 1
        enabled = mode == .on || (mode == .auto)
        redraw = tty && mode != .off
    }

    /// Other text is about to be written to stderr: redraw below it, never over it.
    func yieldLines() {
        lock.lock()
        drawnLines = 0
        lock.unlock()
    }

    func update(_ snapshot: ProgressSnapshot) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        let interval = redraw ? 0.2 : 5.0
        guard snapshot.finished || now.timeIntervalSince(lastDraw) >= interval else { return }
        lastDraw = now
        let lines = snapshot.stages.map { s in
            "stage \(s.id) (\(s.kind)): \(s.done)/\(s.total) tasks done, \(s.running) running, \(s.records) records, "
                + "\(Summary.bytes(s.bytes)) read, \(s.spills) spills, \(s.retries) retries, \(Summary.seconds(s.elapsedMicros))"
        }
        if redraw {
            var out = ""
            if drawnLines > 0 { out += "\u{1B}[\(drawnLines)A" } // back to the first line drawn
            for line in lines { out += "\u{1B}[2K" + line + "\n" }
            for _ in lines.count..<max(lines.count, drawnLines) { out += "\u{1B}[2K\n" }
            let cleared = max(lines.count, drawnLines)
            if cleared > lines.count { out += "\u{1B}[\(cleared - lines.count)A" }
            drawnLines = lines.count
            if snapshot.finished { drawnLines = 0 }
            FileHandle.standardError.write(Data(out.utf8))
        } else if !snapshot.finished && !lines.isEmpty {
            FileHandle.standardError.write(Data(lines.map { "progress: " + $0 + "\n" }.joined().utf8))
        }
    }
}

/// Sets up swift-log for the CLI: one line per message on stderr, at `level` and above.
enum CLILogging {
    static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
