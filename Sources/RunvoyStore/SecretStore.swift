import Crypto
import Foundation
import GRDB
import RunvoyKit

/// Secrets, encrypted at rest (ChaChaPoly, 256-bit master key) in the daemon's SQLite state.
///
/// Each value is sealed with a fresh nonce and authenticated with its name, so a sealed value cannot be moved
/// to another name. The store also keeps a sealed check value: opening it with a different master key fails at
/// once with a clear error instead of producing garbage later.
public final class SecretStore: Sendable {
    /// What may be said about a secret: everything but its value.
    public struct Info: Sendable, Equatable {
        public var name: String
        public var description: String?
        public var ownerUid: UInt32
        public var ownerUser: String
        public var updatedBy: String
        public var createdAtMs: Int64
        public var updatedAtMs: Int64
        /// 1 when set, +1 on every rotation.
        public var version: Int
    }

    private let store: ExecutionStore
    let key: SymmetricKey

    /// Whether `other` is the key this store holds (`health` compares the key file with it): in constant time,
    /// on the keys' own storage (no copy of either is made).
    public func holdsKey(_ other: SymmetricKey) -> Bool {
        key.withUnsafeBytes { mine in other.withUnsafeBytes { ConstantTime.equal(mine, $0) } }
    }

    static let checkText = Array("runvoy master key check".utf8)

    /// Opens the secrets of `store` with `key`; throws when `key` is not the key the store was sealed with.
    public init(store: ExecutionStore, key: SymmetricKey) throws(StoreError) {
        self.store = store
        self.key = key
        let existing = try store.read { db in
            try Data.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'key_check'")
        }
        if let existing {
            guard (try? open(existing, name: "key-check")) == Self.checkText else {
                throw StoreError(
                    .database,
                    "the master key does not match the one the secrets in \(store.databasePath) were sealed with")
            }
        } else {
            let sealed = try seal(Self.checkText, name: "key-check")
            try store.write { db in
                try db.execute(
                    sql: "INSERT INTO store_meta (key, value) VALUES ('key_check', ?)", arguments: [sealed])
            }
        }
    }

    /// Sets or rotates `name`. Returns whether it was created (false: rotated). With `takeOwnership` (an
    /// administrator's rotation) the secret becomes the setter's.
    @discardableResult
    public func set(
        _ name: String, value: [UInt8], description: String?, uid: UInt32, user: String, atMs: Int64,
        takeOwnership: Bool = false
    ) throws(StoreError) -> Bool {
        let sealed = try seal(value, name: name)
        return try store.write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM secrets WHERE name = ?", arguments: [name]) != nil {
                try db.execute(
                    sql: """
                        UPDATE secrets SET sealed = ?, description = COALESCE(?, description), updated_by = ?,
                            updated_at = ?, version = version + 1
                        WHERE name = ?
                        """,
                    arguments: [sealed, description, user, atMs, name])
                if takeOwnership {
                    try db.execute(
                        sql: "UPDATE secrets SET owner_uid = ?, owner_user = ? WHERE name = ?",
                        arguments: [Int64(uid), user, name])
                }
                return false
            }
            try db.execute(
                sql: """
                    INSERT INTO secrets (name, sealed, description, owner_uid, owner_user, updated_by, created_at,
                        updated_at, version)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
                    """,
                arguments: [name, sealed, description, Int64(uid), user, user, atMs, atMs])
            return true
        }
    }

    /// The value of `name`, or nil when there is no such secret.
    public func value(_ name: String) throws(StoreError) -> [UInt8]? {
        let sealed = try store.read { db in
            try Data.fetchOne(db, sql: "SELECT sealed FROM secrets WHERE name = ?", arguments: [name])
        }
        guard let sealed else { return nil }
        do {
            return try open(sealed, name: name)
        } catch {
            throw StoreError(
                .corrupt, "secret '\(name)' cannot be decrypted (tampered with, or sealed with another key)")
        }
    }

    public func info(_ name: String) throws(StoreError) -> Info? {
        try store.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM secrets WHERE name = ?", arguments: [name]).map(Self.info)
        }
    }

    /// Every secret, by name.
    public func list() throws(StoreError) -> [Info] {
        try store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM secrets ORDER BY name").map(Self.info) }
    }

    /// Removes `name`; false when there was no such secret.
    public func remove(_ name: String) throws(StoreError) -> Bool {
        try store.write { db in
            try db.execute(sql: "DELETE FROM secrets WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    /// The names in the store at `databasePath` with their owners' uids, read without the master key (for
    /// `--check-config`); nil when there is no store yet or it cannot be read.
    public static func owners(databasePath: String) -> [String: UInt32]? {
        guard access(databasePath, F_OK) == 0 else { return nil }
        var configuration = Configuration()
        configuration.readonly = true
        guard let queue = try? DatabaseQueue(path: databasePath, configuration: configuration) else { return nil }
        return try? queue.read { db in
            guard try db.tableExists("secrets") else { return [:] }
            var owners: [String: UInt32] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, owner_uid FROM secrets") {
                owners[row["name"]] = UInt32(truncatingIfNeeded: row["owner_uid"] as Int64)
            }
            return owners
        }
    }

    private func seal(_ value: [UInt8], name: String) throws(StoreError) -> Data {
        do {
            return try ChaChaPoly.seal(value, using: key, authenticating: Array(name.utf8)).combined
        } catch {
            throw StoreError(.database, "cannot encrypt secret '\(name)': \(error)")
        }
    }

    private func open(_ sealed: Data, name: String) throws -> [UInt8] {
        let box = try ChaChaPoly.SealedBox(combined: sealed)
        return Array(try ChaChaPoly.open(box, using: key, authenticating: Array(name.utf8)))
    }

    static func info(_ row: Row) -> Info {
        Info(
            name: row["name"], description: row["description"],
            ownerUid: UInt32(truncatingIfNeeded: row["owner_uid"] as Int64), ownerUser: row["owner_user"],
            updatedBy: row["updated_by"], createdAtMs: row["created_at"], updatedAtMs: row["updated_at"],
            version: row["version"])
    }
}
