// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Sluice", targets: ["Sluice"]),
        .library(name: "SluiceStream", targets: ["SluiceStream"]),
        .library(name: "SluiceReport", targets: ["SluiceReport"]),
        .library(name: "SluiceGenerators", targets: ["SluiceGenerators"]),
        .library(name: "SluiceCLI", targets: ["SluiceCLI"]),
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C libraries used by the IO layer.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["libz-dev"])]),
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),
        // POSIX calls Glibc's module hides (pipe2, F_SETPIPE_SZ, posix_spawn helpers, wait macros).
        .target(name: "CSluiceSys", path: "Sources/CSluiceSys"),
        // The engine: public API, planning, runtime, shuffle and IO, one folder per concern. Its
        // generic hot paths are `@inlinable`, so they specialise in the modules that use them.
        .target(name: "Sluice", dependencies: ["CZlib", "CArchive", "CSluiceSys"], path: "Sources/Sluice"),
        // The stream layer (event log, lambda, kappa, compare) on top of the engine: its jobs
        // run as engine jobs. What it uses beyond the public API is `package`, so the
        // dependence stays visible and out of users' reach.
        .target(name: "SluiceStream", dependencies: ["Sluice"], path: "Sources/SluiceStream"),
        // `sluice report`: a run's event log as an HTML page.
        .target(name: "SluiceReport", dependencies: ["Sluice"], path: "Sources/SluiceReport"),
        // Deterministic test and benchmark data (`sluice gen`); needs nothing from the engine.
        .target(name: "SluiceGenerators", path: "Sources/SluiceGenerators"),
        // The example jobs, compiled into the CLI.
        .target(name: "SluiceJobs", dependencies: ["Sluice", "SluiceStream"], path: "jobs"),
        // The command line (a library, so users can build their own executable with their jobs).
        .target(name: "SluiceCLI", dependencies: [
            "Sluice", "SluiceStream", "SluiceReport", "SluiceGenerators",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/SluiceCLI"),
        .executableTarget(name: "sluice", dependencies: ["SluiceCLI", "SluiceJobs"], path: "Sources/sluice"),
        .testTarget(name: "SluiceTests", dependencies: ["Sluice", "SluiceStream", "SluiceReport", "SluiceGenerators", "SluiceJobs", "SluiceCLI", "sluice"], path: "Tests/SluiceTests"),
    ],
    swiftLanguageModes: [.v6]
)
