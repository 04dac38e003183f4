import Foundation
import GRDB
import Logging
import NIOPosix
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon
@testable import RunvoyStore

/// Review of the temporary grants (docs/REVIEW-grants.md): proofs of the findings. Each test fails on the code
/// under review and states what should hold instead.
@Suite struct GrantsReviewTests {
    typealias Fixture = GrantsTests.Fixture

    // MARK: - G2: a revocation whose re-read fails leaves the grant in force

    /// Makes every read of the grants that returns a grant not ended whose reason is `BOOM` fail (a database
    /// read error at that moment: I/O error, busy timeout, no file descriptor for a new reader connection),
    /// through a virtual generated column that overflows (`abs` of the smallest integer) on such rows only. Reads
    /// of other rows, and writes, go on.
    static func failReads(_ store: ExecutionStore) throws {
        try store.pool.write { db in
            try db.execute(
                sql: """
                    ALTER TABLE grants ADD COLUMN review_boom AS (abs(CASE WHEN ended_at IS NULL AND reason = 'BOOM'
                        THEN -9223372036854775808 ELSE 0 END)) VIRTUAL
                    """)
        }
    }

    /// Marks grant `id` for `failReads` (before the column is added).
    static func arm(_ id: String, _ store: ExecutionStore) throws {
        try store.pool.write { db in
            try db.execute(sql: "UPDATE grants SET reason = 'BOOM' WHERE id = ?", arguments: [id])
        }
    }

    /// Makes grant `id` readable again.
    static func disarm(_ id: String, _ store: ExecutionStore) throws {
        try store.pool.write { db in
            try db.execute(sql: "UPDATE grants SET reason = 'INC-2' WHERE id = ?", arguments: [id])
        }
    }

    /// G2: `revoke` writes the revocation, then `publish()` re-reads the active grants to put them in force; when
    /// that read fails, "those in force stay": the revoked grant keeps giving its role until its expiry (up to
    /// `grants.max_duration`, 90 days at most), though the administrator was told it was revoked and the audit
    /// trail says so. The revoked grant should leave the configuration in force whatever the re-read does.
    @Test func aRevokedGrantLeavesForceEvenWhenTheGrantsCannotBeReadAgain() async throws {
        let fixture = try Fixture()
        let grants = fixture.service()
        grants.start()
        let revoked = try await grants.create(
            user: GrantsTests.bin, subject: .role(.operator), forMs: 3_600_000, reason: "INC-1", by: GrantsTests.root)
        let other = try await grants.create(
            user: GrantsTests.daemonUser, subject: .executor("prod"), forMs: 3_600_000, reason: "INC-2",
            by: GrantsTests.root)
        #expect(Authorizer.roles(GrantsTests.bin, fixture.config.current) == [.operator])
        // Marked first: a row is checked as it is written, and this one must be written before the column exists.
        try Self.arm(other.id, fixture.store)
        try Self.failReads(fixture.store)
        let row = try await grants.revoke(revoked.id, comment: "offboarded", by: GrantsTests.root)
        // The administrator is told it was revoked, the database and the audit trail say so ...
        #expect(row.endCause == "revoked")
        #expect(try fixture.store.grant(revoked.id)?.endCause == "revoked")
        #expect(fixture.records().map { $0["RUNVOY_CHANGE"] } == ["created", "created", "revoked"])
        // ... so it must no longer count. On the code under review it still does (operator until its expiry).
        #expect(!fixture.config.current.grants.contains { $0.id == revoked.id })
        #expect(Authorizer.roles(GrantsTests.bin, fixture.config.current).isEmpty)
        // Readable again, so the read retried every second succeeds and stops (it filled the test log).
        try Self.disarm(other.id, fixture.store)
        try await ApprovalServiceTests.Waiter.until {
            fixture.config.current.grants.map(\.id) == [other.id]
        }
    }

    // MARK: - G3: an approved request for a grant is not checked against the policy in force

    static func approvedRequest(
        _ fixture: Fixture, requester: Caller, role: String, forMs: Int64
    ) throws -> (Grants, Approvals, ApprovalRecord) {
        // Approved under the approval policy in force when it was made.
        let policy = fixture.config.current.grantSettings.approval
        let required = policy.count
        let approvers = Authorizer.approverList(policy.approvers)
        let grants = fixture.service()
        let approvals = Approvals(
            store: fixture.store, logger: Logger(label: "GrantsReviewTests"), journal: fixture.journal,
            group: MultiThreadedEventLoopGroup.singleton)
        approvals.setGrantLauncher(grants.launcher(approvals))
        let asked = Grants.Asked(role: role, executor: nil, forMs: forMs, reason: "INC-3")
        let now = WallClock.milliseconds()
        let record = ApprovalRecord(
            id: ExecutionID.make(milliseconds: UInt64(now)), kind: "grant", state: .approved,
            requesterUid: requester.uid, requesterUser: requester.displayName, executor: nil,
            digest: asked.digest(requesterUid: requester.uid), params: ExecutionStore.json(asked), summary: "{}",
            reason: "INC-3", required: required, approvers: approvers, needsClient: false, createdAtMs: now,
            expiresAtMs: now + 3_600_000, configDigest: fixture.config.current.digest, recorded: true)
        #expect(try fixture.store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
        return (grants, approvals, record)
    }

    /// G3a: a request approved by one approver, while a reload made `grants.approval` ask for two administrators,
    /// still makes its grant. An `exec` request in the same position is `invalidated` (`launchRefusal`, review 2 of
    /// approvals F1); a request for a grant should be too.
    @Test func anApprovedRequestMakesNoGrantWhenTheApprovalPolicyInForceAsksForMore() async throws {
        let fixture = try Fixture()
        var config = fixture.config.current
        config.grantSettings.requestableRoles = [.operator]
        fixture.config.replace(with: config)
        let (grants, approvals, record) = try Self.approvedRequest(
            fixture, requester: GrantsTests.daemonUser, role: "operator", forMs: 60_000)
        // The reload, after the approval: two administrators now.
        config.grantSettings.approval = ApprovalPolicy(
            count: 2, approvers: AccessList(roles: [.admin]), expires: .seconds(3600), reasonRequired: true)
        fixture.config.replace(with: config)
        _ = try? await grants.fulfil(ApprovalTicket(record: record), approvals: approvals)
        #expect(try fixture.store.activeGrants().isEmpty)
        #expect(try fixture.store.approval(record.id)?.state == .invalidated)
        #expect(try fixture.store.approval(record.id)?.decision?.contains("asks for 2 approvals now") == true)
    }

    /// G3b: a request approved for longer than `grants.max_duration` now allows (a reload lowered it) makes a grant
    /// of the old length. The grant should be refused (or cut to the maximum in force).
    @Test func anApprovedRequestMakesNoGrantLongerThanTheMaximumInForce() async throws {
        let fixture = try Fixture()
        var config = fixture.config.current
        config.grantSettings.requestableRoles = [.operator]
        fixture.config.replace(with: config)
        let (grants, approvals, record) = try Self.approvedRequest(
            fixture, requester: GrantsTests.daemonUser, role: "operator", forMs: 8 * 3_600_000)
        config.grantSettings.maxDuration = .seconds(3600)
        fixture.config.replace(with: config)
        _ = try? await grants.fulfil(ApprovalTicket(record: record), approvals: approvals)
        let maximum: Int64 = 3_600_000
        #expect(try fixture.store.activeGrants().allSatisfy { $0.expiresAtMs - $0.createdAtMs <= maximum })
        #expect(try fixture.store.approval(record.id)?.decision?.contains("grants.max_duration") == true)
    }

    /// G3c: a request whose requester no longer holds `grants_request` when it is approved (a reload took their
    /// role: offboarding) still makes its grant. `bin` holds no role in this configuration.
    @Test func anApprovedRequestMakesNoGrantForARequesterWhoMayNoLongerAsk() async throws {
        let fixture = try Fixture()
        var config = fixture.config.current
        config.grantSettings.requestableRoles = [.operator]
        fixture.config.replace(with: config)
        #expect(!Authorizer.permits(GrantsTests.bin, .grantsRequest, fixture.config.current))
        let (grants, approvals, record) = try Self.approvedRequest(
            fixture, requester: GrantsTests.bin, role: "operator", forMs: 60_000)
        _ = try? await grants.fulfil(ApprovalTicket(record: record), approvals: approvals)
        #expect(try fixture.store.activeGrants().isEmpty)
        #expect(Authorizer.roles(GrantsTests.bin, fixture.config.current).isEmpty)
        #expect(try fixture.store.approval(record.id)?.decision?.contains("grants_request") == true)
    }

    // MARK: - G4: what a grant gives is reported for its uid, not for a user name

    /// G4: the grant applies to its uid; the name it was given under may be gone (renamed, deleted) or be another
    /// account's now. `GRANTS_GAINED`/`GRANTS_LOST` must say what that uid gained or lost, not `{}` because the
    /// name no longer resolves.
    @Test func whatAGrantGivesIsReportedForItsUidWhateverItsName() throws {
        let before = try GrantsTests.config()
        var after = before
        let uid = GrantsTests.daemonUser.uid
        let grant = TemporaryGrant(
            id: "g4", uid: uid, user: "rvg-renamed-away", subject: .executor("prod"), reason: "INC-4",
            grantedByUid: 0, grantedByUser: "root", createdAtMs: 0, expiresAtMs: WallClock.milliseconds() + 3_600_000)
        after.grants = [grant]
        let record = GrantRecords.changed(.created, grant, by: nil, before: before, after: after)
        let gained = record.fields.first { $0.0 == "GRANTS_GAINED" }?.1 ?? ""
        #expect(gained.contains("prod: systemctl restart"), "\(gained)")
        let lost = GrantRecords.changed(.revoked, grant, by: nil, before: after, after: before)
        #expect(lost.fields.first { $0.0 == "GRANTS_LOST" }?.1.contains("prod: systemctl restart") == true)
    }
}
