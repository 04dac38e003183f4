/// How healthy the daemon, or one of its checks, is. `runvoyctl health` exits with `exitStatus`, as monitoring
/// checks expect: 0 healthy, 1 degraded, 2 failing.
public enum HealthStatus: String, Codable, Sendable, Comparable, CaseIterable {
    /// Everything works.
    case healthy
    /// It serves, but something needs attention before it fails.
    case degraded
    /// Something it needs does not work: requests are being refused, or will be.
    case failing

    public var exitStatus: Int32 {
        switch self {
        case .healthy: 0
        case .degraded: 1
        case .failing: 2
        }
    }

    public static func < (lhs: HealthStatus, rhs: HealthStatus) -> Bool {
        lhs.exitStatus < rhs.exitStatus
    }
}

/// One check of `health`: its name (`journal`, `database`, `disk`, `master_key`, `watchdog`), how it went, what
/// it found in words, and the figure it measured, if any (`value` in `unit`).
public struct HealthCheck: Codable, Sendable, Equatable {
    public var name: String
    public var status: HealthStatus
    /// What was found, in words: never a path or a system error's text.
    public var message: String
    public var value: Double?
    public var unit: String?
    /// Paths and error text behind `message`: sent to administrators only.
    public var detail: String?

    public init(
        name: String, status: HealthStatus, message: String, value: Double? = nil, unit: String? = nil,
        detail: String? = nil
    ) {
        self.name = name
        self.status = status
        self.message = message
        self.value = value
        self.unit = unit
        self.detail = detail
    }
}

/// Result of `health`: the worst of the checks' statuses, each check, and what the daemon runs with.
public struct HealthResult: Codable, Sendable, Equatable {
    public var status: HealthStatus
    public var checks: [HealthCheck]
    public var version: String
    /// The digest of the configuration in force, and when it was loaded (Unix time, milliseconds).
    public var configDigest: String
    public var configLoadedAtMs: Int64
    public var uptimeSeconds: Double
    /// How executions are contained: `none` (per-execution cgroups are not there yet).
    public var containment: String

    public init(
        checks: [HealthCheck], version: String, configDigest: String, configLoadedAtMs: Int64, uptimeSeconds: Double,
        containment: String
    ) {
        self.status = checks.map(\.status).max() ?? .healthy
        self.checks = checks
        self.version = version
        self.configDigest = configDigest
        self.configLoadedAtMs = configLoadedAtMs
        self.uptimeSeconds = uptimeSeconds
        self.containment = containment
    }

    enum CodingKeys: String, CodingKey {
        case status, checks, version, containment
        case configDigest = "config_digest"
        case configLoadedAtMs = "config_loaded_at_ms"
        case uptimeSeconds = "uptime_seconds"
    }
}
