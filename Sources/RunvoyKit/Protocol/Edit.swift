/// `edit_open`: a file to edit, read as an executor's user.
public struct EditOpenParams: Codable, Sendable, Equatable {
    /// nil: the default executor.
    public var executor: String?
    /// Absolute, or relative to the executor's working directory.
    public var path: String

    public init(executor: String?, path: String) {
        self.executor = executor
        self.path = path
    }
}

/// What `edit_open` read: the content (base64), its SHA-256 and the token `edit_save` needs.
public struct EditOpenResult: Codable, Sendable, Equatable {
    /// The file as the daemon resolved it (absolute, `.` and `..` applied, links in its directories followed).
    public var path: String
    public var executor: String
    /// The file's bytes, base64.
    public var content: String
    /// Lower-case hex SHA-256 of the content.
    public var sha256: String
    public var size: Int
    /// The file's permission bits (`st_mode & 0o7777`).
    public var mode: Int
    /// Names this open for `edit_save`; good for the calling user only, for `EditLimits.tokenLifetimeSeconds`.
    public var token: String

    public init(
        path: String, executor: String, content: String, sha256: String, size: Int, mode: Int, token: String
    ) {
        self.path = path
        self.executor = executor
        self.content = content
        self.sha256 = sha256
        self.size = size
        self.mode = mode
        self.token = token
    }
}

/// `edit_save`: the edited content, or none when nothing changed (then nothing is written; the edit is recorded
/// as unchanged).
public struct EditSaveParams: Codable, Sendable, Equatable {
    public var token: String
    /// The new bytes, base64; nil when the caller left the file as it was.
    public var content: String?
    /// The SHA-256 `edit_open` reported: the file must still have it, or the save is `conflict`.
    public var baseSha256: String

    public init(token: String, content: String?, baseSha256: String) {
        self.token = token
        self.content = content
        self.baseSha256 = baseSha256
    }

    enum CodingKeys: String, CodingKey {
        case token, content
        case baseSha256 = "base_sha256"
    }
}

/// What `edit_save` did.
public struct EditSaveResult: Codable, Sendable, Equatable {
    /// The history record of the edit (`status`, `logs` show it and its diff).
    public var executionId: String
    public var path: String
    public var sha256Before: String
    public var sha256After: String
    /// Whether the file was written.
    public var changed: Bool

    public init(executionId: String, path: String, sha256Before: String, sha256After: String, changed: Bool) {
        self.executionId = executionId
        self.path = path
        self.sha256Before = sha256Before
        self.sha256After = sha256After
        self.changed = changed
    }

    enum CodingKeys: String, CodingKey {
        case path, changed
        case executionId = "execution_id"
        case sha256Before = "sha256_before"
        case sha256After = "sha256_after"
    }
}

/// An edit as the history keeps it: which file, and its hashes before and after.
///
/// The hashes are sent only to the user who made the edit and to administrators, who may read its diff: a hash
/// of a file only the executor's user may read lets anyone test guesses of its content offline (a short secret
/// file). Everyone else who may see the record gets them as null, and `changed`.
public struct EditSummary: Codable, Sendable, Equatable {
    public var path: String
    public var sha256Before: String?
    public var sha256After: String?
    /// Whether the file was written.
    public var changed: Bool

    public init(path: String, sha256Before: String, sha256After: String) {
        self.path = path
        self.sha256Before = sha256Before
        self.sha256After = sha256After
        self.changed = sha256Before != sha256After
    }

    /// The same record without its hashes.
    public var withoutHashes: EditSummary {
        var summary = self
        summary.sha256Before = nil
        summary.sha256After = nil
        return summary
    }

    enum CodingKeys: String, CodingKey {
        case path, changed
        case sha256Before = "sha256_before"
        case sha256After = "sha256_after"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        path = try container.decode(String.self, forKey: .path)
        sha256Before = try container.decodeIfPresent(String.self, forKey: .sha256Before)
        sha256After = try container.decodeIfPresent(String.self, forKey: .sha256After)
        // (Daemons before `changed` always sent both hashes.)
        changed = try container.decodeIfPresent(Bool.self, forKey: .changed) ?? (sha256Before != sha256After)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(path, forKey: .path)
        try container.encode(sha256Before, forKey: .sha256Before)
        try container.encode(sha256After, forKey: .sha256After)
        try container.encode(changed, forKey: .changed)
    }
}

/// Fixed bounds of `runvoyctl edit`.
public enum EditLimits {
    /// How long an `edit_open` token stays good: an editor may stay open a long time.
    public static let tokenLifetimeSeconds = 12 * 3600
    /// Open edits one user may have at once; the oldest goes first.
    public static let openPerUser = 16
    /// Bytes of the diff the history keeps (redacted); a longer one is cut and says so.
    public static let maxDiffBytes = 64 << 10
}
