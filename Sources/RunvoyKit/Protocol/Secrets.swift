/// Secret names: 1-64 letters, digits, `_`, `.`, `-`, starting with a letter or digit.
public enum SecretName {
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        return alnum(bytes[0]) && bytes.allSatisfy { alnum($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
    }
}

/// Parameters of `secrets_set`.
public struct SecretSetParams: Codable, Sendable, Equatable {
    public var name: String
    /// The value, base64-encoded (any bytes).
    public var value: String
    /// Kept from the previous version when absent.
    public var description: String?

    public init(name: String, value: String, description: String? = nil) {
        self.name = name
        self.value = value
        self.description = description
    }
}

/// Result of `secrets_set`.
public struct SecretSetResult: Codable, Sendable, Equatable {
    public var name: String
    /// True when the secret was created, false when an existing one was rotated.
    public var created: Bool
    public var version: Int

    public init(name: String, created: Bool, version: Int) {
        self.name = name
        self.created = created
        self.version = version
    }
}

/// Parameters of `secrets_rm` and `secrets_get`.
public struct SecretRef: Codable, Sendable, Equatable {
    public var name: String

    public init(name: String) { self.name = name }
}

/// A secret as `secrets_list` describes it: never its value.
public struct SecretDescription: Codable, Sendable, Equatable {
    public var name: String
    public var description: String?
    /// Who set it first (and may manage it with `secrets_manage_own`).
    public var owner: String
    /// Who set the current version.
    public var updatedBy: String
    public var createdAtMs: Int64
    public var updatedAtMs: Int64
    public var version: Int
    /// Executors that inject it.
    public var executors: [String]

    public init(
        name: String, description: String?, owner: String, updatedBy: String, createdAtMs: Int64, updatedAtMs: Int64,
        version: Int, executors: [String]
    ) {
        self.name = name
        self.description = description
        self.owner = owner
        self.updatedBy = updatedBy
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
        self.version = version
        self.executors = executors
    }

    enum CodingKeys: String, CodingKey {
        case name, description, owner, version, executors
        case updatedBy = "updated_by"
        case createdAtMs = "created_at_ms"
        case updatedAtMs = "updated_at_ms"
    }
}

/// Result of `secrets_list`.
public struct SecretListResult: Codable, Sendable, Equatable {
    public var secrets: [SecretDescription]
    /// Secrets executors reference that are not set (a command on such an executor is refused).
    public var missing: [String]

    public init(secrets: [SecretDescription], missing: [String]) {
        self.secrets = secrets
        self.missing = missing
    }
}

/// Result of `secrets_rm`.
public struct SecretRemoveResult: Codable, Sendable, Equatable {
    public var name: String
    public var removed: Bool

    public init(name: String, removed: Bool) {
        self.name = name
        self.removed = removed
    }
}

/// Result of `secrets_get` (only when the configuration allows administrators to read values).
public struct SecretValueResult: Codable, Sendable, Equatable {
    public var name: String
    /// Base64 of the value.
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
