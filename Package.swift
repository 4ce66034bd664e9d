// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Sluice", targets: ["Sluice"]),
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
        // The engine: public API, planning, runtime, shuffle and IO, one folder per concern.
        // One module so that generic hot paths specialise without crossing module boundaries.
        .target(name: "Sluice", dependencies: ["CZlib", "CArchive", "CSluiceSys"], path: "Sources/Sluice"),
        // The example jobs, compiled into the CLI.
        .target(name: "SluiceJobs", dependencies: ["Sluice"], path: "jobs"),
        // The command line (a library, so users can build their own executable with their jobs).
        .target(name: "SluiceCLI", dependencies: [
            "Sluice",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/SluiceCLI"),
        .executableTarget(name: "sluice", dependencies: ["SluiceCLI", "SluiceJobs"], path: "Sources/sluice"),
        .testTarget(name: "SluiceTests", dependencies: ["Sluice", "SluiceJobs", "SluiceCLI", "sluice"], path: "Tests/SluiceTests"),
    ],
    swiftLanguageModes: [.v6]
)
