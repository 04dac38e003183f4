import Foundation
import Logging
import NIOPosix
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon
@testable import RunvoyStore

/// Third review of the temporary grants (docs/REVIEW-grants3.md): proofs of ways around the fixes of the second
/// review (R1-R5). Each test fails on the code under review (main at f85610c) and states what should hold instead.
@Suite struct GrantsReview3Tests {
    typealias Fixture = GrantsTests.Fixture

    /// T1 (R5 after a restart): a revocation whose database write failed was audited (`CHANGE=revoked`) and taken
    /// out of force in memory only; a restart (what an administrator does about a database error) put the grant back
    /// in force until its expiry, with the audit trail's last word still `revoked`. Fixed: the revocation is written
    /// first, so a write that fails changes nothing and records nothing (the administrator is told the grant stays),
    /// and the audit trail and the grant in force agree in this daemon and after a restart.
    @Test func aRevocationThatCouldNotBeStoredDoesNotComeBackAfterARestart() async throws {
        let fixture = try Fixture()
        let grants = fixture.service()
        grants.start()
        let made = try await grants.create(
            user: GrantsTests.bin, subject: .role(.operator), forMs: 3_600_000, reason: "INC-1", by: GrantsTests.root)
        try GrantsReview2Tests.failUpdates(fixture.store)
        let refused = await #expect(throws: RunvoyError.self) {
            try await grants.revoke(made.id, comment: "offboarded", by: GrantsTests.root)
        }
        #expect(refused?.code == .storeUnavailable && refused?.message.contains("stays in force") == true)
        let changes = fixture.records().map { $0["RUNVOY_CHANGE"] ?? "" }
        #expect(changes == ["created"], "nothing changed, so nothing is recorded: \(changes)")
        #expect(Authorizer.roles(GrantsTests.bin, fixture.config.current).contains(.operator))

        // The daemon restarts (same state database, the fault still there): a new configuration store and service.
        let restarted = ConfigStore(try GrantsTests.config())
        let next = Grants(
            store: fixture.store, config: restarted, logger: Logger(label: "GrantsReview3Tests"),
            journal: Journal(socketPath: fixture.journald.path), group: MultiThreadedEventLoopGroup.singleton)
        next.start()
        let back = Authorizer.roles(GrantsTests.bin, restarted.current).contains(.operator)
        // What the audit trail says is what holds: not revoked, in force.
        #expect(back && changes.last != "revoked")
        // Once the database takes writes, the revocation goes through and is recorded.
        try GrantsReview2Tests.dropTrigger(fixture.store)
        _ = try await next.revoke(made.id, comment: "offboarded", by: GrantsTests.root)
        #expect(!Authorizer.roles(GrantsTests.bin, restarted.current).contains(.operator))
        next.journal.drain(timeout: .seconds(10))
        #expect(fixture.records().map { $0["RUNVOY_CHANGE"] ?? "" } == ["created", "revoked"])
    }

    /// T1: a revocation whose record cannot be written is taken back: the grant stays in force and its row is not
    /// ended (before, the record came first; now the write does, so a failed record must undo it).
    @Test func aRevocationThatCannotBeAuditedIsTakenBack() async throws {
        let fixture = try Fixture()
        let grants = fixture.service()
        let made = try await grants.create(
            user: GrantsTests.bin, subject: .role(.operator), forMs: 3_600_000, reason: "INC-1", by: GrantsTests.root)
        var config = fixture.config.current
        config.audit.writeTimeout = .milliseconds(200)
        fixture.config.replace(with: config)
        let silent = Grants(
            store: fixture.store, config: fixture.config, logger: Logger(label: "GrantsReview3Tests"),
            journal: Journal(socketPath: "/nonexistent/runvoy-journal.sock"),
            group: MultiThreadedEventLoopGroup.singleton)
        await #expect(throws: RunvoyError.self) {
            try await silent.revoke(made.id, comment: "offboarded", by: GrantsTests.root)
        }
        #expect(try fixture.store.grant(made.id)?.endedAtMs == nil)
        #expect(try fixture.store.activeGrants().map(\.id) == [made.id])
        #expect(Authorizer.roles(GrantsTests.bin, fixture.config.current).contains(.operator))
    }
}

extension GrantsReview3Tests {
    /// Review 4 of grants (G4-1): `daemon` is an administrator for an hour by a grant only. Approving `bin`'s
    /// request for a grant would pass access on beyond its own (two temporary administrators could renew each other
    /// forever): it is refused, and an approval such a one cast is not counted when the grant is made.
    @Test func aTemporaryAdministratorApprovesNoRequestForAGrant() async throws {
        let fixture = try Fixture()
        var config = fixture.config.current
        config.grantSettings.requestableRoles = [.operator]
        config.roles.append(RoleBinding(role: .viewer, users: ["bin"], groups: [], line: 0))
        fixture.config.replace(with: config)
        let grants = fixture.service()
        _ = try await grants.create(
            user: GrantsTests.daemonUser, subject: .role(.admin), forMs: 3_600_000, reason: "INC-0",
            by: GrantsTests.root)
        #expect(Authorizer.roles(GrantsTests.daemonUser, fixture.config.current).contains(.admin))
        let approvals = Approvals(
            store: fixture.store, logger: Logger(label: "GrantsReview3Tests"), journal: fixture.journal,
            group: MultiThreadedEventLoopGroup.singleton)
        approvals.setGrantLauncher(grants.launcher(approvals))
        let asked = Grants.Asked(role: "operator", executor: nil, forMs: 3_600_000, reason: "INC-5")
        let now = WallClock.milliseconds()
        let bin = GrantsTests.bin
        var record = ApprovalRecord(
            id: "01jg41request000000000000", kind: "grant", state: .pending, requesterUid: bin.uid,
            requesterUser: "bin", executor: nil, digest: asked.digest(requesterUid: bin.uid),
            params: ExecutionStore.json(asked), summary: "{}", reason: "INC-5", required: 1,
            approvers: Authorizer.approverList(config.grantSettings.approval.approvers), needsClient: false,
            createdAtMs: now, expiresAtMs: now + 3_600_000, configDigest: "x", recorded: true)
        #expect(try fixture.store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
        let daemon = GrantsTests.daemonUser
        await #expect(throws: RunvoyError.self) {
            try await approvals.change(
                record.id, caller: daemon, config: fixture.config.current, audited: true
            ) { _, eligible in
                .approve(
                    uid: daemon.uid, user: "daemon", digest: record.digest, eligible: eligible, comment: nil,
                    atMs: now)
            }
        }
        #expect(try fixture.store.approval(record.id)?.answers.isEmpty == true)
        #expect(try fixture.store.activeGrants().count == 1)
        // One cast before (say, before this rule): not counted when the grant would be made.
        record.state = .approved
        record.answers = [
            ApprovalAnswer(
                uid: daemon.uid, user: "daemon", answer: .approve, digest: record.digest, comment: nil, atMs: now)
        ]
        let refusal = Grants.fulfilRefusal(record, asked, fixture.config.current)
        #expect(refusal?.contains("daemon may no longer approve") == true, "\(refusal ?? "nil")")
        // root, an administrator by the configuration, may.
        record.answers = [
            ApprovalAnswer(uid: 0, user: "root", answer: .approve, digest: record.digest, comment: nil, atMs: now)
        ]
        #expect(Grants.fulfilRefusal(record, asked, fixture.config.current) == nil)
    }
}

extension ExecutionLifetimeTests {
    /// T2 (R2, the fallback misses what a successful read already dropped): while the grants' expiry cannot be
    /// written, `expireDue` ends what the grants past their time admitted, but only those it finds still in force
    /// in memory (`withdrawLapsed` compares `config.current.grants` with the clock). `publish` with a successful
    /// read also drops grants past their time (their rows are not ended) and ends nothing (its `lapsed` is empty).
    /// So when anything publishes between a grant's time and the next `expireDue` (an administrator's `grant`,
    /// an approved `request_grant`, a `revoke` of another grant: every one inserts or updates nothing of the
    /// lapsed row), the grant has left force with no kill, and every retry afterwards finds nothing to end: what
    /// it admitted runs for as long as the write keeps failing (R2 as it was). Here the retries are already
    /// running (another grant expired first), the grant of `bin` lapses between two of them, and a `publish`
    /// comes in that window. In a suite that runs one test at a time, since this one makes an execution.
    @Test func aGrantThatLapsesWhileItsExpiryCannotBeWrittenEndsWhatItAdmittedWhoeverPublishesFirst() async throws {
        var template = Array("/tmp/runvoyd-grants3-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        defer { FileSystem.removeTree(directory) }
        let user = try #require(UserDatabase.user(uid: geteuid()))
        let group = UserDatabase.groupName(gid: getegid()) ?? String(getegid())
        let yaml = ConfigLoader.embeddedDefaultYAML(stateRoot: directory, runAsUser: user.name, runAsGroup: group)
            .replacingOccurrences(of: "developer: {users: [\"*\"]}", with: "developer: {users: [root]}")
        var config = try ConfigLoader.parse(yaml: yaml, file: "grants3.yaml")
        config.audit.writeTimeout = .seconds(30)
        let store = try ExecutionStore(stateDirectory: config.stateDirectory)
        let secrets = try SecretStore(store: store, key: try #require(MasterKey.parse(Array(repeating: 7, count: 32))))
        let logger = Logger(label: "GrantsReview3Tests")
        let manager = ExecutionManager(
            group: MultiThreadedEventLoopGroup.singleton, logger: logger, store: store, secrets: secrets,
            refusals: RefusalThrottle(logger: logger)
        ) { _ in }
        let journald = try JournalTests.FakeJournald()
        let configStore = ConfigStore(config)
        configStore.observe { manager.limitsChanged($0) }
        let grants = Grants(
            store: store, config: configStore, logger: logger, journal: Journal(socketPath: journald.path),
            group: MultiThreadedEventLoopGroup.singleton)
        grants.watch(running: { manager.runningExecutions })
        grants.start()
        let bin = GrantsTests.bin
        #expect(Authorizer.roles(bin, configStore.current).isEmpty)

        try await Self.running(manager) {
            // daemon's grant expires first (its failed expiry starts the 1 s retries); bin's 1.5 s later.
            let first = try await grants.create(
                user: GrantsTests.daemonUser, subject: .role(.viewer), forMs: 4000, reason: "INC-0",
                by: GrantsTests.root)
            let mine = try await grants.create(
                user: bin, subject: .role(.developer), forMs: 5500, reason: "INC-1", by: GrantsTests.root)
            let execution = try await manager.start(
                ExecParams(argv: ["sleep", "600"], timeoutMs: 600_000), requestID: nil, caller: bin,
                config: configStore.current, sink: nil
            ) { _ in }
            try GrantsReview2Tests.failUpdates(store)
            // The retries run from the first grant's time on, at about first + k s; bin's lapses half-way between
            // two of them, and something publishes at once (here `publish` itself; an administrator's `grant`
            // for someone else does the same, the trigger lets inserts through).
            while WallClock.milliseconds() < first.expiresAtMs { try await Task.sleep(for: .milliseconds(5)) }
            while WallClock.milliseconds() < mine.expiresAtMs { try await Task.sleep(for: .milliseconds(2)) }
            grants.publish()
            #expect(!Authorizer.roles(bin, configStore.current).contains(.developer))
            // The next retries (each a second) should end it, as they end a grant they find in force past its time.
            let deadline = ContinuousClock.now + .seconds(10)
            while !execution.isFinished && manager.running(id: execution.id) != nil
                && ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(20))
            }
            let stillRuns = manager.running(id: execution.id) != nil
            // On the code under review: it still runs (until the expiry can be written).
            #expect(
                !stillRuns,
                "execution \(execution.id), admitted by grant \(mine.id) which is past its time, still runs")
            // The fault ends: the expiry is written, and the kill comes with it; the execution is given back.
            try GrantsReview2Tests.dropTrigger(store)
            grants.expireDue()
            execution.terminate()
            _ = await execution.waitFinished()
        }
    }
}
