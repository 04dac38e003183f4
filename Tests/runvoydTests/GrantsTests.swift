import Foundation
import Logging
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Temporary grants in process: roles and executors they give (and stop giving at their time, whatever the
/// timer), the service against a real state database and a journal the test reads, expiry with an injected clock,
/// a restart, and the configuration store keeping the file's configuration and the grants apart.
@Suite struct GrantsTests {
    static let yaml = """
        state_directory: /nonexistent
        roles:
          developer: {users: [daemon]}
        executors:
          open:
            default: true
            run_as: {user: nobody}
            allow: {roles: [developer]}
            commands: any
          prod:
            run_as: {user: nobody}
            allow: {users: [root]}
            commands: [[systemctl, restart, "*"]]
        """

    static func config() throws -> DaemonConfig { try ConfigLoader.parse(yaml: yaml, file: "grants.yaml") }
    static let daemonUser = Caller.lookup(userName: "daemon")!
    static let bin = Caller.lookup(userName: "bin")!
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    static func grant(
        _ subject: TemporaryGrant.Subject, to caller: Caller, expiresAtMs: Int64, id: String = "g1"
    ) -> TemporaryGrant {
        TemporaryGrant(
            id: id, uid: caller.uid, user: caller.displayName, subject: subject, reason: "INC-1", grantedByUid: 0,
            grantedByUser: "root", createdAtMs: 0, expiresAtMs: expiresAtMs)
    }

    // MARK: - Authorizer

    @Test func aRoleGrantGivesItsRoleUntilItsTimeByTheClock() throws {
        var config = try Self.config()
        #expect(Authorizer.roles(Self.bin, config).isEmpty)
        config.grants = [Self.grant(.role(.operator), to: Self.bin, expiresAtMs: WallClock.milliseconds() + 60_000)]
        #expect(Authorizer.roles(Self.bin, config) == [.operator])
        #expect(Authorizer.roles(Self.daemonUser, config) == [.developer])
        // Past its time it gives nothing, though no timer took it away yet.
        config.grants = [Self.grant(.role(.operator), to: Self.bin, expiresAtMs: WallClock.milliseconds() - 1)]
        #expect(Authorizer.roles(Self.bin, config).isEmpty)
    }

    @Test func anExecutorGrantAdmitsToItsExecutorOnlyWithTheExecPermission() throws {
        var config = try Self.config()
        let prod = try #require(config.executor(named: "prod"))
        let open = try #require(config.executor(named: "open"))
        #expect(!Authorizer.mayUse(Self.daemonUser, prod, config))
        let later = WallClock.milliseconds() + 60_000
        config.grants = [Self.grant(.executor("prod"), to: Self.daemonUser, expiresAtMs: later)]
        #expect(Authorizer.mayUse(Self.daemonUser, prod, config))
        #expect(
            Authorizer.decide(
                caller: Self.daemonUser, executor: prod, argv: ["systemctl", "restart", "x"], config: config
            ).allowed)
        // Without a role that holds exec, an executor grant gives nothing.
        config.grants = [Self.grant(.executor("open"), to: Self.bin, expiresAtMs: later)]
        #expect(!Authorizer.mayUse(Self.bin, open, config))
        config.grants = [Self.grant(.executor("prod"), to: Self.daemonUser, expiresAtMs: WallClock.milliseconds() - 1)]
        #expect(!Authorizer.mayUse(Self.daemonUser, prod, config))
    }

    @Test func theConfigStoreKeepsGrantsAcrossAReloadAndTheFileAcrossGrants() throws {
        let base = try Self.config()
        let store = ConfigStore(base)
        let seen = Mutex<[Int]>([])
        store.observe { config in seen.withLock { $0.append(config.grants.count) } }
        let grant = Self.grant(.role(.viewer), to: Self.bin, expiresAtMs: WallClock.milliseconds() + 60_000)
        store.setGrants([grant])
        #expect(store.current.grants == [grant] && store.current.digest == base.digest)
        var reloaded = base
        reloaded.digest = "reloaded"
        store.replace(with: reloaded)
        #expect(store.current.grants == [grant] && store.current.digest == "reloaded")
        store.setGrants([])
        #expect(store.current.grants.isEmpty && store.current.digest == "reloaded")
        #expect(seen.withLock { $0 } == [0, 1, 1, 0])
        #expect(base.grantsDigest != store.current.grantsDigest || store.current.grants == base.grants)
    }

    // MARK: - The service

    final class Fixture: @unchecked Sendable {
        let directory: String
        let store: ExecutionStore
        let journald: JournalTests.FakeJournald
        let journal: Journal
        let config: ConfigStore
        private let lock = NSLock()
        private var collected: [[String: String]] = []

        init() throws {
            var template = Array("/tmp/runvoy-grants-XXXXXX".utf8CString)
            directory = String(cString: mkdtemp(&template)!)
            store = try ExecutionStore(stateDirectory: directory + "/state")
            journald = try JournalTests.FakeJournald()
            journal = Journal(socketPath: journald.path)
            var config = try GrantsTests.config()
            config.audit.writeTimeout = .seconds(30)  // a loaded CI host is slow; no test here stalls the journal
            self.config = ConfigStore(config)
        }

        deinit { FileSystem.removeTree(directory) }

        func service() -> Grants {
            Grants(
                store: store, config: config, logger: Logger(label: "GrantsTests"), journal: journal,
                group: MultiThreadedEventLoopGroup.singleton)
        }

        func records(_ event: String = "grant_changed") -> [[String: String]] {
            journal.drain(timeout: .seconds(10))
            let new = journald.receiveAll().map { datagram in
                var fields: [String: String] = [:]
                for line in datagram.split(separator: "\n") {
                    guard let equals = line.firstIndex(of: "=") else { continue }
                    fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
                }
                return fields
            }
            return lock.withLock {
                collected += new
                return collected.filter { $0["RUNVOY_EVENT"] == event }
            }
        }
    }

    @Test func aGrantIsAuditedPutInForceAndEndsAtItsTimeWithARecord() async throws {
        let fixture = try Fixture()
        let grants = fixture.service()
        grants.start()
        let made = try await grants.create(
            user: Self.daemonUser, subject: .executor("prod"), forMs: 3_600_000, reason: "INC-7", by: Self.root)
        #expect(fixture.config.current.grants.map(\.id) == [made.id])
        #expect(try fixture.store.activeGrants().map(\.id) == [made.id])
        // Not yet due: nothing ends.
        grants.expireDue(atMs: made.expiresAtMs - 1)
        #expect(fixture.config.current.grants.count == 1)
        grants.expireDue(atMs: made.expiresAtMs)
        #expect(fixture.config.current.grants.isEmpty)
        #expect(try fixture.store.grant(made.id)?.endCause == "expired")
        let records = fixture.records()
        #expect(records.map { $0["RUNVOY_CHANGE"] } == ["created", "expired"])
        let created = try #require(records.first)
        #expect(created["RUNVOY_GRANT_ID"] == made.id && created["RUNVOY_EXECUTOR"] == "prod")
        #expect(created["RUNVOY_SUBJECT_USER"] == "daemon" && created["RUNVOY_BY_UID"] == "0")
        #expect(created["RUNVOY_GRANTS_GAINED"] == #"{"daemon":["prod: systemctl restart *"]}"#)
        #expect(created["RUNVOY_GRANTS_LOST"] == "{}")
        #expect(records.last?["RUNVOY_GRANTS_LOST"] == #"{"daemon":["prod: systemctl restart *"]}"#)
        #expect(records.last?["RUNVOY_BY_UID"] == nil)
    }

    @Test func aRevokedGrantEndsOnceAndCannotBeRevokedAgain() async throws {
        let fixture = try Fixture()
        let grants = fixture.service()
        let made = try await grants.create(
            user: Self.bin, subject: .role(.viewer), forMs: 3_600_000, reason: "INC-8", by: Self.root)
        #expect(Authorizer.roles(Self.bin, fixture.config.current) == [.viewer])
        let revoked = try await grants.revoke(made.id, comment: "done", by: Self.root)
        #expect(revoked.endCause == "revoked" && revoked.endedByUid == 0)
        #expect(Authorizer.roles(Self.bin, fixture.config.current).isEmpty)
        await #expect(throws: RunvoyError.self) { try await grants.revoke(made.id, comment: nil, by: Self.root) }
        await #expect(throws: RunvoyError.self) { try await grants.revoke("nope", comment: nil, by: Self.root) }
        let records = fixture.records()
        #expect(records.map { $0["RUNVOY_CHANGE"] } == ["created", "revoked"])
        #expect(records.last?["RUNVOY_COMMENT"] == "done")
    }

    @Test func aRestartEndsTheGrantsDueMeanwhileAndKeepsTheOthers() async throws {
        let fixture = try Fixture()
        let now = WallClock.milliseconds()
        _ = try fixture.store.insertGrant(
            Grants.row(Self.grant(.role(.viewer), to: Self.bin, expiresAtMs: now - 10, id: "old")))
        _ = try fixture.store.insertGrant(
            Grants.row(Self.grant(.role(.operator), to: Self.bin, expiresAtMs: now + 3_600_000, id: "new")))
        let grants = fixture.service()
        grants.start()
        #expect(fixture.config.current.grants.map(\.id) == ["new"])
        #expect(try fixture.store.grant("old")?.endCause == "expired")
        #expect(fixture.records().map { $0["RUNVOY_GRANT_ID"] } == ["old"])
    }

    @Test func theTimerEndsAGrantWithoutAReload() async throws {
        let fixture = try Fixture()
        let grants = fixture.service()
        let made = try await grants.create(
            user: Self.bin, subject: .role(.viewer), forMs: 1000, reason: "short", by: Self.root)
        let ended = Mutex(false)
        fixture.config.observe { config in if config.grants.isEmpty { ended.withLock { $0 = true } } }
        // Waits for the change, not for a time (bounded only so that a broken timer fails rather than hangs). The
        // grant leaves force by the clock at its time, maybe a moment before the timer writes its end (a timer that
        // fires early finds nothing due and is set again): both are waited for.
        let deadline = Date().addingTimeInterval(30)
        func written() -> Bool { (try? fixture.store.grant(made.id))??.endCause == "expired" }
        while !(ended.withLock({ $0 }) && written()) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(ended.withLock { $0 })
        #expect(written())
    }

    /// A request for a grant the last daemon approved but did not fulfil makes its grant when the next one
    /// recovers the requests (through the grant launcher, not the command launcher), once.
    @Test func anApprovedRequestLeftByTheLastDaemonMakesItsGrantAtStart() async throws {
        let fixture = try Fixture()
        var config = fixture.config.current
        config.grantSettings.requestableRoles = [.operator]
        // The requester must still hold grants_request when the grant is made: a viewer does.
        config.roles.append(RoleBinding(role: .viewer, users: ["bin"], groups: [], line: 0))
        fixture.config.replace(with: config)
        let grants = fixture.service()
        let approvals = Approvals(
            store: fixture.store, logger: Logger(label: "GrantsTests"), journal: fixture.journal,
            group: MultiThreadedEventLoopGroup.singleton)
        approvals.setGrantLauncher(grants.launcher(approvals))
        // An hour, not a minute: under the whole parallel CI run this test's process waited more than a minute
        // between making the grant and reading it back, and found it expired (fresh-clone CI at 5bacd6b, f6f7d65).
        let asked = Grants.Asked(role: "operator", executor: nil, forMs: 3_600_000, reason: "INC-2")
        let now = WallClock.milliseconds()
        let record = ApprovalRecord(
            id: "01jgrantrequest0000000000", kind: "grant", state: .approved, requesterUid: Self.bin.uid,
            requesterUser: "bin", executor: nil, digest: asked.digest(requesterUid: Self.bin.uid),
            params: ExecutionStore.json(asked), summary: "{}", reason: "INC-2", required: 1,
            approvers: Authorizer.approverList(config.grantSettings.approval.approvers), needsClient: false,
            createdAtMs: now, expiresAtMs: now + 3_600_000, configDigest: "x", recorded: true)
        #expect(try fixture.store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
        await approvals.recover(config: fixture.config.current)
        #expect(fixture.config.current.grants.map(\.requestId) == [record.id])
        #expect(Authorizer.roles(Self.bin, fixture.config.current) == [.viewer, .operator])
        #expect(try fixture.store.approval(record.id)?.state == .fulfilled)
        // Spent: a second start makes nothing.
        #expect(try await grants.fulfil(ApprovalTicket(record: record), approvals: approvals) == nil)
        #expect(try fixture.store.activeGrants().count == 1)
    }

    @Test func aGrantTheJournalRefusesIsNotMade() async throws {
        let fixture = try Fixture()
        var config = fixture.config.current
        config.audit.writeTimeout = .milliseconds(200)
        fixture.config.replace(with: config)
        let grants = Grants(
            store: fixture.store, config: fixture.config, logger: Logger(label: "GrantsTests"),
            journal: Journal(socketPath: "/nonexistent/runvoy-journal.sock"),
            group: MultiThreadedEventLoopGroup.singleton)
        await #expect(throws: RunvoyError.self) {
            try await grants.create(
                user: Self.bin, subject: .role(.admin), forMs: 60_000, reason: "x", by: Self.root)
        }
        #expect(try fixture.store.activeGrants().isEmpty)
        #expect(fixture.config.current.grants.isEmpty)
    }
}

/// `capabilities` says which approvals an executor's commands and its rules need (issue 15, J2), and the
/// request layer without a grants service refuses the grant methods instead of failing.
@Suite struct GrantCapabilitiesTests {
    static let yaml = """
        state_directory: /nonexistent
        roles:
          developer: {users: ["*"]}
        executors:
          prod:
            default: true
            run_as: {user: nobody}
            allow: {users: ["*"]}
            approval: {count: 2, approvers: {roles: [admin]}, expires: 15m}
            commands:
              - {allow: [systemctl, status, "*"], approval: {count: 0}}
              - [systemctl, restart, "*"]
        """

    @Test func capabilitiesShowTheApprovalsCommandsNeed() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody, yaml: Self.yaml) { connection in
            let reply = await connection.call(#"{"v":1,"id":1,"method":"capabilities"}"#)
            #expect(reply.contains(#""approval":"needs 2 approvals (roles admin), expires 15m""#), "\(reply)")
            #expect(reply.contains(#""approval":"needs no approval""#), "\(reply)")
            #expect(reply.contains(#""grants":[]"#), "\(reply)")
        }
    }

    @Test func withoutAGrantsServiceTheGrantMethodsAreRefused() async throws {
        try await InProcessConnection.with(caller: GrantsTests.root, yaml: Self.yaml) { connection in
            let grant = await connection.call(
                #"{"v":1,"id":2,"method":"grant","params":{"user":"bin","role":"viewer","for_ms":60000,"reason":"x"}}"#)
            #expect(grant.contains("store_unavailable"), "\(grant)")
            let long = await connection.call(
                #"{"v":1,"id":3,"method":"grant","params":{"user":"bin","role":"viewer","for_ms":9223372036854775807,"reason":"x"}}"#
            )
            #expect(long.contains("invalid_argument") && long.contains("max_duration"), "\(long)")
            let both = await connection.call(
                #"{"v":1,"id":4,"method":"grant","params":{"user":"bin","role":"viewer","executor":"prod","for_ms":60000,"reason":"x"}}"#
            )
            #expect(both.contains("exactly one"), "\(both)")
            let nobody = await connection.call(
                #"{"v":1,"id":5,"method":"grant","params":{"user":"no-such-user-x","role":"viewer","for_ms":60000,"reason":"x"}}"#
            )
            #expect(nobody.contains("no user"), "\(nobody)")
            let unknownRole = await connection.call(
                #"{"v":1,"id":6,"method":"grant","params":{"user":"bin","role":"root","for_ms":60000,"reason":"x"}}"#)
            #expect(unknownRole.contains("no role 'root'"), "\(unknownRole)")
            let negative = await connection.call(
                #"{"v":1,"id":7,"method":"grant","params":{"user":"bin","role":"viewer","for_ms":-5,"reason":"x"}}"#)
            #expect(negative.contains("invalid_argument"), "\(negative)")
            let revoke = await connection.call(#"{"v":1,"id":8,"method":"revoke","params":{"grant_id":"x"}}"#)
            #expect(revoke.contains("store_unavailable"), "\(revoke)")
            let notRequestable = await connection.call(
                #"{"v":1,"id":9,"method":"request_grant","params":{"role":"admin","for_ms":60000,"reason":"x"}}"#)
            #expect(notRequestable.contains("permission_denied"), "\(notRequestable)")
        }
    }
}
