import Foundation
import GRDB
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon
@testable import RunvoyStore

/// Second review of the temporary grants (docs/REVIEW-grants2.md): the proofs that need no execution (those are in
/// Tests/IntegrationTests/GrantsReview2Tests.swift). Each test fails on the code under review.
@Suite struct GrantsReview2Tests {
    typealias Fixture = GrantsTests.Fixture

    /// Makes every update of the grants table fail (a database write error at that moment).
    static func failUpdates(_ store: ExecutionStore) throws {
        try store.pool.write { db in
            try db.execute(
                sql: "CREATE TRIGGER review_boom BEFORE UPDATE ON grants BEGIN SELECT RAISE(ABORT, 'injected'); END")
        }
    }

    /// R5: `revoke` writes its `grant_changed CHANGE=revoked` record (with `GRANTS_LOST`) before the database
    /// write; when that write fails, the administrator is told "the grant stays", and it does, in force and
    /// running, but the audit trail says it was revoked and nothing after says otherwise. A reader of the audit
    /// trail (or a SIEM rule on `CHANGE=revoked`) believes the access ended. Either the grant should leave force as
    /// its record says (fail closed, as `publish(ending:)` does when the re-read fails), or a record should say the
    /// revocation failed.
    @Test func aRevocationAuditedButNotStoredIsNotLeftLookingDone() async throws {
        let fixture = try Fixture()
        let grants = fixture.service()
        grants.start()
        let made = try await grants.create(
            user: GrantsTests.bin, subject: .role(.operator), forMs: 3_600_000, reason: "INC-1", by: GrantsTests.root)
        try Self.failUpdates(fixture.store)
        await #expect(throws: RunvoyError.self) {
            try await grants.revoke(made.id, comment: "offboarded", by: GrantsTests.root)
        }
        let changes = fixture.records().map { $0["RUNVOY_CHANGE"] ?? "" }
        let inForce = Authorizer.roles(GrantsTests.bin, fixture.config.current).contains(.operator)
        // On the code under review: ["created", "revoked"], and bin is still an operator.
        #expect(
            !inForce || changes.last != "revoked",
            "the audit trail ends with \(changes) while grant \(made.id) is still in force")
        // The revocation's write is retried each second: let it succeed, so that the retries end with the test.
        try Self.dropTrigger(fixture.store)
        grants.expireDue()
    }

    static func dropTrigger(_ store: ExecutionStore) throws {
        try store.pool.write { try $0.execute(sql: "DROP TRIGGER review_boom") }
    }
}
