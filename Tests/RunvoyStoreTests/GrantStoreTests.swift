import GRDB
import RunvoyKit
import Testing

@testable import RunvoyStore

/// The `v7-grants` migration from a v6 database, and the grants table's rules: a role or an executor, ended once,
/// revoked only while active, expired at their own time.
struct GrantStoreTests {
    static func grant(
        _ id: String, uid: UInt32 = 1001, role: String? = "operator", executor: String? = nil, expires: Int64 = 5000,
        request: String? = nil
    ) -> GrantRow {
        GrantRow(
            id: id, uid: uid, user: "bob", role: role, executor: executor, reason: "INC-1", grantedByUid: 0,
            grantedByUser: "root", requestId: request, createdAtMs: 1000, expiresAtMs: expires)
    }

    @Test func aVersion6HistoryIsMigratedAndTakesGrants() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let queue = try DatabaseQueue(path: directory.path + "/history.sqlite")
            try ExecutionStore.migrator.migrate(queue, upTo: "v6-approvals")
            let exists = try queue.read { db in try db.tableExists("grants") }
            #expect(!exists)
        }
        let store = try ExecutionStore(stateDirectory: directory.path)
        #expect(ExecutionStore.schemaVersions.contains("v7-grants"))
        #expect(try store.insertGrant(Self.grant("g1")))
        #expect(try store.grant("g1") == Self.grant("g1"))
    }

    @Test func aGrantGivesARoleOrAnExecutorNeverBothNorNeither() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        #expect(throws: StoreError.self) { try store.insertGrant(Self.grant("g1", role: "admin", executor: "prod")) }
        #expect(throws: StoreError.self) { try store.insertGrant(Self.grant("g2", role: nil, executor: nil)) }
        #expect(throws: StoreError.self) { try store.insertGrant(Self.grant("g3", expires: 1000)) }
        #expect(try store.insertGrant(Self.grant("g4", role: nil, executor: "prod")))
        #expect(try store.activeGrants().map(\.id) == ["g4"])
    }

    @Test func aRequestMakesOneGrantAtMost() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        #expect(try store.insertGrant(Self.grant("g1", request: "r1")))
        #expect(try !store.insertGrant(Self.grant("g2", request: "r1")))
        #expect(try store.activeGrants().map(\.id) == ["g1"])
    }

    @Test func aGrantIsRevokedOnceAndOnlyWhileActive() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        _ = try store.insertGrant(Self.grant("g1"))
        _ = try store.insertGrant(Self.grant("g2", expires: 3000))
        let revoked = try #require(try store.revokeGrant("g1", byUid: 0, atMs: 2000))
        #expect(revoked.endCause == "revoked" && revoked.endedAtMs == 2000 && revoked.endedByUid == 0)
        #expect(try store.revokeGrant("g1", byUid: 0, atMs: 2100) == nil)
        #expect(try store.revokeGrant("nope", byUid: 0, atMs: 2100) == nil)
        // Due but not yet expired by the timer: too late to revoke (it ended at its time).
        #expect(try store.revokeGrant("g2", byUid: 0, atMs: 3000) == nil)
        #expect(try store.activeGrants().map(\.id) == ["g2"])
    }

    @Test func dueGrantsExpireAtTheirOwnTimeOnce() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        _ = try store.insertGrant(Self.grant("g1", expires: 3000))
        _ = try store.insertGrant(Self.grant("g2", expires: 4000))
        _ = try store.insertGrant(Self.grant("g3", expires: 9000))
        #expect(try store.expireGrants(atMs: 2999).isEmpty)
        let ended = try store.expireGrants(atMs: 4000)
        #expect(ended.map(\.id) == ["g1", "g2"])
        #expect(ended.allSatisfy { $0.endCause == "expired" && $0.endedAtMs == $0.expiresAtMs })
        #expect(try store.grant("g1")?.endedAtMs == 3000)
        #expect(try store.expireGrants(atMs: 5000).isEmpty)
        #expect(try store.activeGrants().map(\.id) == ["g3"])
    }

    @Test func retentionForgetsGrantsThatEndedBeforeItsAgeAndKeepsTheOthers() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        _ = try store.insertGrant(Self.grant("old", expires: 3000))
        _ = try store.insertGrant(Self.grant("revoked", expires: 90_000))
        _ = try store.insertGrant(Self.grant("active", expires: 90_000))
        _ = try store.expireGrants(atMs: 3000)
        _ = try store.revokeGrant("revoked", byUid: 0, atMs: 6000)
        _ = try store.prune(olderThanMs: 5000, maxTotalBytes: nil)
        #expect(try store.grant("old") == nil)
        #expect(try store.grant("revoked")?.endCause == "revoked")
        _ = try store.prune(olderThanMs: 7000, maxTotalBytes: nil)
        #expect(try store.grant("revoked") == nil)
        #expect(try store.activeGrants().map(\.id) == ["active"])
    }
}
