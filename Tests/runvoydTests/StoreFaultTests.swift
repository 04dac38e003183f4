import Foundation
import GRDB
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon
@testable import RunvoyStore

/// docs/SECURITY.md (fail closed): a write the database refuses changes nothing a user relies on and says so. The
/// faults are real SQLite errors, raised by a trigger on the table the step writes (as `GrantsReview2Tests` does).
@Suite struct StoreFaultTests {
    static func refuse(_ store: ExecutionStore, _ when: String, on table: String, if condition: String = "1") throws {
        try store.pool.write { db in
            try db.execute(
                sql:
                    "CREATE TRIGGER fault_\(table) BEFORE \(when) ON \(table) WHEN \(condition) BEGIN SELECT RAISE(ABORT, 'injected'); END"
            )
        }
    }

    /// A grant the database cannot keep is not made: the administrator is told, and the user holds no more roles.
    @Test func aGrantTheDatabaseRefusesIsNotMade() async throws {
        let fixture = try GrantsTests.Fixture()
        let grants = fixture.service()
        grants.start()
        try Self.refuse(fixture.store, "INSERT", on: "grants")
        let refused = await #expect(throws: RunvoyError.self) {
            try await grants.create(
                user: GrantsTests.bin, subject: .role(.operator), forMs: 3_600_000, reason: "INC-9",
                by: GrantsTests.root)
        }
        #expect(refused?.code == .storeUnavailable)
        #expect(refused?.message.hasPrefix("cannot record the grant (") == true, "\(String(describing: refused))")
        #expect(refused?.message.hasSuffix("); it was not made") == true, "\(String(describing: refused))")
        #expect(!Authorizer.roles(GrantsTests.bin, fixture.config.current).contains(.operator))
        #expect(try fixture.store.activeGrants().isEmpty)
    }

    /// A request for approval the database cannot keep runs nothing, and no request is left waiting.
    @Test func aRequestForApprovalTheDatabaseRefusesRunsNothing() async throws {
        let fixture = try ApprovalServiceTests.Fixture()
        let config = try fixture.config()
        let manager = fixture.manager()
        try Self.refuse(fixture.store, "INSERT", on: "approval_requests")
        var refusal: RunvoyError?
        do {
            _ = try await fixture.request(["echo", "deploy"], manager, config)
        } catch let error as RunvoyError {
            refusal = error
        }
        #expect(refusal?.code == .storeUnavailable)
        #expect(
            refusal?.message.hasPrefix("cannot record the request for approval (") == true,
            "\(String(describing: refusal))")
        #expect(refusal?.message.hasSuffix("); nothing was run") == true, "\(String(describing: refusal))")
        #expect(fixture.spawner.calls == 0)
    }

    /// An execution that would wait in the queue, whose queued row the database refuses: refused with the reason,
    /// it never runs, and its place is given back (the next one that fits starts at once).
    @Test func aWaiterTheHistoryRefusesNeverRunsAndLeavesNoPlaceTaken() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        let (config, manager, root) = try QueueInProcessTests.serial(fixture)
        try Self.refuse(fixture.store, "INSERT", on: "executions", if: "NEW.status = 'queued'")
        try await ExecutionLifetimeTests.running(manager) {
            let holder = try await manager.start(
                ExecParams(argv: ["sleep", "600"]), requestID: .number(1), caller: root, config: config, sink: nil
            ) { _ in }
            var refusal: RunvoyError?
            do {
                _ = try await manager.start(
                    ExecParams(argv: ["true"], wait: true), requestID: .number(2), caller: root, config: config,
                    sink: nil
                ) { _ in }
            } catch let error as RunvoyError {
                refusal = error
            }
            #expect(refusal?.code == .storeUnavailable)
            #expect(
                refusal?.message.hasPrefix("cannot record the execution in the history (") == true,
                "\(String(describing: refusal))")
            #expect(refusal?.message.hasSuffix("); nothing was run") == true, "\(String(describing: refusal))")
            #expect(manager.runningCount == 1)
            holder.terminate()
            _ = await holder.waitFinished()
            let next = try await manager.start(
                ExecParams(argv: ["true"]), requestID: .number(3), caller: root, config: config, sink: nil
            ) { _ in }
            #expect(await next.waitFinished().exitCode == 0)
        }
    }

    /// A playbook run whose history row the database refuses runs no step; its start record is followed by a
    /// `failed` end, so the audit trail does not show a run left open.
    @Test func aPlaybookRunTheHistoryRefusesRunsNoStep() async throws {
        try await ReviewConnection.with(
            caller: PlaybookReview3Tests.nobody, yaml: PlaybookReviewUnitTests.lockYAML,
            playbooks: [PlaybookReview3Tests.plain]
        ) { connection in
            try Self.refuse(connection.inner.executions.store, "INSERT", on: "playbook_runs")
            try await ExecutionLifetimeTests.running(connection.inner.executions) {
                try await connection.inner.send(#"{"v":1,"id":7,"method":"playbook_run","params":{"name":"plain"}}"#)
                let reply = try await connection.inner.reply()
                #expect(
                    reply.hasPrefix(
                        #"{"error":{"code":"store_unavailable","message":"the run cannot be recorded in the history, so nothing ran: "#
                    ), "\(reply)")
            }
            let kinds = connection.inner.auditor.events.map(\.kind)
            #expect(!kinds.contains(.executionStarted), "\(kinds)")
            #expect(kinds.filter { $0 == .playbookRunStarted || $0 == .playbookRunFinished }.count == 2, "\(kinds)")
            let finished = connection.inner.auditor.events.first { $0.kind == .playbookRunFinished }
            #expect(finished?.fields.contains { $0.0 == "STATE" && $0.1 == "failed" } == true)
        }
    }

    /// An answer the database cannot keep changes nothing: the request still waits, and nothing ran.
    @Test func anAnswerTheDatabaseRefusesChangesNothing() async throws {
        let fixture = try ApprovalServiceTests.Fixture()
        let config = try fixture.config()
        let manager = fixture.manager()
        let record = try await fixture.request(["echo", "deploy"], manager, config)
        try Self.refuse(fixture.store, "UPDATE", on: "approval_requests")
        var refusal: RunvoyError?
        do throws(RunvoyError) {
            _ = try await fixture.approve(record, by: "daemon", manager, config)
        } catch {
            refusal = error
        }
        #expect(refusal?.code == .storeUnavailable)
        #expect(refusal?.message.hasPrefix("cannot record the answer (") == true, "\(String(describing: refusal))")
        #expect(refusal?.message.hasSuffix("); nothing changed") == true, "\(String(describing: refusal))")
        #expect(try fixture.store.approval(record.id)?.state == .pending)
        #expect(fixture.spawner.calls == 0)
    }
}
