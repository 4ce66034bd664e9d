import ArgumentParser
import Foundation
import SluiceGenerators

/// `sluice gen text|events` — deterministic test and benchmark data.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gen", abstract: "Generate deterministic test data (the same seed gives the same bytes).",
        subcommands: [Text.self, Events.self])

    struct Text: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Zipf-distributed words, lines of 10–20 words.")
        @Option(help: "Size, e.g. 100m or 1g.") var size: String = "10m"
        @Option(help: "Generator seed.") var seed: UInt64 = 1
        @Option(help: "Distinct words to draw from.") var vocabulary: Int = 1_000_000
        @Option(help: "Zipf exponent s (higher: more skewed).") var zipf: Double = 1.1
        @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?

        func run() throws {
            let gen = TextGenerator(bytes: try parseSize(size, option: "--size"), seed: seed, vocabulary: vocabulary,
                                    zipfExponent: zipf)
            if let output { try gen.write(to: output) } else { try gen.write(toFileDescriptor: 1) }
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "CSV events ts,user,key,value with a few very hot keys and some late timestamps.")
        @Option(help: "Rows to write.") var rows: Int = 100_000
        @Option(help: "Generator seed.") var seed: UInt64 = 1
        @Option(help: "Distinct keys.") var keys: Int = 100_000
        @Option(help: "Distinct users.") var users: Int = 50_000
        @Option(name: .customLong("hot-keys"), help: "How many hot keys.") var hotKeys: Int = 3
        @Option(name: .customLong("hot-share"), help: "Share of rows the hot keys hold together (0–1).") var hotShare: Double = 0.25
        @Option(name: .customLong("late-fraction"), help: "Share of rows with a late, out-of-order timestamp.") var lateFraction: Double = 0.01
        @Option(name: .customLong("max-lateness"), help: "Largest lateness, milliseconds.") var maxLateness: Int64 = 60_000
        @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?

        func validate() throws {
            guard keys >= 1, users >= 1, hotKeys >= 0, hotKeys < keys else { throw ValidationError("need 0 ≤ --hot-keys < --keys") }
            guard (0...1).contains(hotShare), (0...1).contains(lateFraction) else { throw ValidationError("shares are between 0 and 1") }
            guard maxLateness >= 1 else { throw ValidationError("--max-lateness must be at least 1") }
        }

        func run() throws {
            let gen = EventGenerator(rows: rows, seed: seed, keys: keys, users: users, hotKeys: hotKeys, hotShare: hotShare,
                                     lateFraction: lateFraction, maxLatenessMillis: maxLateness)
            if let output { try gen.write(to: output) } else { try gen.write(toFileDescriptor: 1) }
        }
    }
}
