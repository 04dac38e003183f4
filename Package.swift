// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "runvoy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "runvoyd", targets: ["runvoyd"]),
        .executable(name: "runvoyctl", targets: ["runvoyctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .target(name: "CRunvoyPosix"),
        .target(
            name: "RunvoyKit",
            dependencies: ["CRunvoyPosix"],
            swiftSettings: strict
        ),
        .target(
            name: "RunvoyConfig",
            dependencies: [
                "RunvoyKit",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "RunvoyStore",
            dependencies: [
                "CRunvoyPosix",
                "RunvoyKit",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "RunvoyDaemon",
            dependencies: [
                "CSystemd",
                "CRunvoyPosix",
                "RunvoyKit",
                "RunvoyConfig",
                "RunvoyStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "runvoyd",
            dependencies: ["RunvoyDaemon"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "runvoyctl",
            dependencies: [
                "CRunvoyPosix",
                "RunvoyKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RunvoyKitTests",
            dependencies: [
                "RunvoyKit",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "RunvoyStoreTests",
            dependencies: [
                "RunvoyStore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .executableTarget(
            name: "StoreBench",
            dependencies: ["RunvoyStore"],
            path: "Benchmarks/StoreBench",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "MetricsBench",
            dependencies: ["RunvoyDaemon"],
            path: "Benchmarks/MetricsBench",
            swiftSettings: strict
        ),
        .testTarget(
            name: "RunvoyConfigTests",
            dependencies: [
                "RunvoyConfig",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "runvoydTests",
            dependencies: [
                "RunvoyDaemon",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["RunvoyKit", "RunvoyStore", "runvoyd", "runvoyctl"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets (docs/TESTING.md, "Fuzzing"). Each is an executable whose `main` replays input files in a
// normal build and, built by scripts/fuzz with `-sanitize=fuzzer -DRUNVOY_LIBFUZZER`, runs libFuzzer's driver.
let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
    ("FuzzFrame", ["RunvoyKit"]),
    ("FuzzJSON", ["RunvoyKit"]),
    ("FuzzBase64", ["RunvoyKit"]),
    ("FuzzRequest", ["RunvoyKit"]),
    ("FuzzConfig", ["RunvoyConfig"]),
    ("FuzzRedactor", ["RunvoyKit", "RunvoyStore"]),
    ("FuzzOutputLog", ["RunvoyKit", "RunvoyStore"]),
    ("FuzzBackupArchive", ["RunvoyKit", "RunvoyStore", .product(name: "Crypto", package: "swift-crypto")]),
    ("FuzzDaemonFrame", ["RunvoyDaemon", "RunvoyKit", .product(name: "NIOCore", package: "swift-nio")]),
    ("FuzzPath", ["RunvoyDaemon"]),
]
package.targets += [
    .target(name: "CFuzzDriver", path: "Fuzz/CFuzzDriver"),
    .target(
        name: "FuzzSupport", dependencies: ["CFuzzDriver", "RunvoyKit"], path: "Fuzz/FuzzSupport", swiftSettings: strict
    ),
]
package.targets += fuzzTargets.map { target in
    .executableTarget(
        name: target.name, dependencies: ["FuzzSupport"] + target.dependencies, path: "Fuzz/\(target.name)",
        swiftSettings: strict)
}
package.products += fuzzTargets.map { .executable(name: $0.name, targets: [$0.name]) }
