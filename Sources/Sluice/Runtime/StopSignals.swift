#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys

/// SIGINT, SIGTERM and SIGHUP caught into a flag while watched, so that a program made of
/// several jobs and in-process steps (`sluice compare`) stops between them cleanly — its
/// temporary folders removed, one line said — as a job's coordinator does within a job.
/// Watches nest: the handlers are restored when the outermost watch ends.
package enum StopSignals {
    package static func watch() { sluice_watch_signals() }
    package static func unwatch() { sluice_unwatch_signals() }

    /// The name of the signal caught while watched (`SIGINT` …), or nil.
    package static var caught: String? {
        let signal = sluice_caught_signal()
        guard signal != 0 else { return nil }
        return [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGHUP"][signal] ?? "signal \(signal)"
    }
}
