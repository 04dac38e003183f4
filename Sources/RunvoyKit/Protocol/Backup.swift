/// Parameters of `backup`.
public struct BackupParams: Codable, Sendable, Equatable {
    /// Put the secrets master key in the archive (audited as `backup_key_exported`).
    public var includeKey: Bool?

    public init(includeKey: Bool? = nil) { self.includeKey = includeKey }

    enum CodingKeys: String, CodingKey {
        case includeKey = "include_key"
    }
}

/// A `backup_data` event: the next bytes of the archive, in order.
public struct BackupDataEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    /// Base64 of the bytes (at most 192 KiB of them).
    public var data: String

    public init(id: RequestID?, data: String) {
        self.id = id
        self.event = "backup_data"
        self.data = data
    }

    /// The most archive bytes one event carries.
    public static let maximumBytes = 192 << 10
}

/// Result of `backup`, after the last `backup_data` event.
public struct BackupResult: Codable, Sendable, Equatable {
    /// Size of the archive, and SHA-256 (hex) of all of it and of its `manifest.json`.
    public var bytes: Int64
    public var sha256: String
    public var manifestSha256: String
    public var executions: Int
    public var runningExecutions: Int
    public var files: Int
    public var includesKey: Bool
    public var createdAtMs: Int64

    public init(
        bytes: Int64, sha256: String, manifestSha256: String, executions: Int, runningExecutions: Int, files: Int,
        includesKey: Bool, createdAtMs: Int64
    ) {
        self.bytes = bytes
        self.sha256 = sha256
        self.manifestSha256 = manifestSha256
        self.executions = executions
        self.runningExecutions = runningExecutions
        self.files = files
        self.includesKey = includesKey
        self.createdAtMs = createdAtMs
    }

    enum CodingKeys: String, CodingKey {
        case bytes, sha256, executions, files
        case manifestSha256 = "manifest_sha256"
        case runningExecutions = "running_executions"
        case includesKey = "includes_key"
        case createdAtMs = "created_at_ms"
    }
}

/// Parameters of `export`.
public struct ExportParams: Codable, Sendable, Equatable {
    /// Only executions created at or after this time (milliseconds since the epoch).
    public var sinceMs: Int64?

    public init(sinceMs: Int64? = nil) { self.sinceMs = sinceMs }

    enum CodingKeys: String, CodingKey {
        case sinceMs = "since_ms"
    }
}

/// An `execution` event of `export`: one execution object.
public struct ExportEvent: Codable, Sendable, Equatable {
    public var id: RequestID?
    public var event: String
    public var execution: ExecutionInfo

    public init(id: RequestID?, execution: ExecutionInfo) {
        self.id = id
        self.event = "execution"
        self.execution = execution
    }
}

/// Result of `export`, after the last `execution` event.
public struct ExportResult: Codable, Sendable, Equatable {
    /// How many executions were sent.
    public var count: Int
    /// The end of the exported range: executions created after it are not in the export.
    public var untilMs: Int64

    public init(count: Int, untilMs: Int64) {
        self.count = count
        self.untilMs = untilMs
    }

    enum CodingKeys: String, CodingKey {
        case count
        case untilMs = "until_ms"
    }
}
