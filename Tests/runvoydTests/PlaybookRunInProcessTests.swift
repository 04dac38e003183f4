import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Playbook runs in process, through the real request layer, spawner and history (`InProcessConnection`), with
/// playbooks built in code: conditions and `continue_on_error`, refusals before anything runs (parameters, a step
/// its executor refuses, access, a schedule's user), trusted steps, values that stay one argument, the history
/// grouped under the run and the run's audit records.
@Suite(.serialized, .enabled(if: geteuid() == 0, "spawns commands as nobody: needs root"))
struct PlaybookRunInProcessTests {
    /// The development configuration plus a `strict` executor that runs only `echo` and `true`.
    static let yaml =
        RouterTests.developerYAML + """

              strict:
                description: Only echo and true
                run_as: {user: nobody, group: nogroup}
                environment: {PATH: /usr/bin:/bin}
                working_directory: /
                allow:
                  users: ["*"]
                commands:
                  - [echo, "*"]
                  - [true]
            """

    static var root: Caller { Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false) }

    static func step(
        _ name: String, _ argv: [ArgvTemplate], executor: String? = nil, when: StepCondition = .succeeded,
        continueOnError: Bool = false, trusted: Bool = false
    ) -> PlaybookStep {
        var step = PlaybookStep(name: name, executor: executor, argv: argv, line: 1)
        step.when = when
        step.continueOnError = continueOnError
        step.trusted = trusted
        return step
    }

    static func literal(_ words: String...) -> [ArgvTemplate] { words.map { ArgvTemplate(literal: $0) } }

    /// `deploy`: a message parameter, steps covering every condition.
    static var deploy: PlaybookConfig {
        var message = PlaybookParameter(name: "msg", type: .string(pattern: nil), line: 1)
        message.required = true
        var count = PlaybookParameter(name: "count", type: .integer(min: 1, max: 5), line: 1)
        count.defaultValue = "2"
        var playbook = PlaybookConfig(
            name: "deploy",
            steps: [
                step("tolerated", literal("sh", "-c", "exit 3"), continueOnError: true),
                step("say", [ArgvTemplate(literal: "echo"), ArgvTemplate(parameter: "msg")]),
                step("break", literal("false")),
                step("never", literal("echo", "never"), when: .succeeded),
                step(
                    "cleanup", [ArgvTemplate(literal: "echo"), ArgvTemplate(prefix: "n=", parameter: "count")],
                    when: .failed),
                step("report", literal("true"), when: .always),
            ], file: "(test)")
        playbook.parameters = [message, count]
        return playbook
    }

    /// Sends `playbook_run` with `params` (JSON text) and returns every frame up to and with its reply.
    static func run(_ connection: InProcessConnection, _ params: String) async throws -> [String] {
        try await connection.send(#"{"v":1,"id":7,"method":"playbook_run","params":"# + params + "}")
        return try await connection.framesUntilReply()
    }

    static func object(_ frame: String?) throws -> [String: Any] {
        let parsed = try JSONSerialization.jsonObject(with: Data((frame ?? "").utf8)) as? [String: Any]
        return try #require(parsed)
    }

    @Test func aRunFollowsItsConditionsAndIsGroupedInTheHistory() async throws {
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml, playbooks: [Self.deploy]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.executions) {
                let frames = try await Self.run(connection, #"{"name":"deploy","params":{"msg":"a b; $(id) \"q\""}}"#)
                let reply = try Self.object(frames.last)
                let result = try #require(reply["result"] as? [String: Any])
                #expect(result["state"] as? String == "failed")
                let steps = try #require(result["steps"] as? [[String: Any]])
                #expect(
                    steps.map { $0["state"] as? String }
                        == ["failed", "succeeded", "failed", "skipped", "succeeded", "succeeded"])
                #expect(steps[0]["exit_code"] as? Int == 3)
                let runID = try #require(result["run_id"] as? String)
                #expect(PlaybookRun.isRunID(runID))
                #expect(frames.contains { $0.contains(#""event":"run_started""#) && $0.contains(runID) })
                let store = connection.executions.store
                let rows = try store.list(ListParams(limit: 100, runId: runID), ownerUid: nil).reversed()
                #expect(rows.count == 5)
                #expect(rows.allSatisfy { $0.runId == runID })
                // The value is one argument, byte for byte, whatever it holds.
                #expect(rows.map(\.argv).contains(["echo", #"a b; $(id) "q""#]))
                #expect(rows.map(\.argv).contains(["echo", "n=2"]))
                let record = try #require(try store.run(runID))
                #expect(record.state == "failed" && record.endedAtMs != nil)
                let events = connection.auditor.events
                let started = try #require(events.first { $0.kind == .playbookRunStarted })
                let fields = Dictionary(started.fields, uniquingKeysWith: { first, _ in first })
                #expect(fields["PARAMS"] == #"{"count":"2","msg":"a b; $(id) \"q\""}"#)
                #expect(fields["RUN_ID"] == runID && fields["PLAYBOOK"] == "deploy")
                let finished = try #require(events.first { $0.kind == .playbookRunFinished })
                #expect(finished.fields.contains { $0 == ("STATE", "failed") })
            }
        }
    }

    @Test func invalidParametersAreAllListedAndNothingRuns() async throws {
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml, playbooks: [Self.deploy]) {
            connection in
            let frames = try await Self.run(
                connection, #"{"name":"deploy","params":{"count":"9","bogus":"x"}}"#)
            #expect(frames.count == 1)
            let error = try #require(try Self.object(frames[0])["error"] as? [String: Any])
            #expect(error["code"] as? String == "invalid_argument")
            let message = try #require(error["message"] as? String)
            #expect(message.contains("'bogus'") && message.contains("'msg'") && message.contains("'count'"))
            #expect(try connection.executions.store.count() == 0)
        }
    }

    @Test func aStepItsExecutorRefusesRefusesTheWholeRunBeforeAnyStep() async throws {
        var playbook = PlaybookConfig(
            name: "strict",
            steps: [
                Self.step("first", Self.literal("echo", "first"), executor: "strict"),
                Self.step("second", Self.literal("id"), executor: "strict"),
            ], file: "(test)")
        playbook.access = AccessList(users: ["*"])
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml, playbooks: [playbook]) {
            connection in
            let frames = try await Self.run(connection, #"{"name":"strict"}"#)
            let error = try #require(try Self.object(frames.last)["error"] as? [String: Any])
            #expect(error["code"] as? String == "command_not_allowed")
            #expect((error["message"] as? String)?.contains("step 'second' (2 of 2)") == true)
            #expect(try connection.executions.store.count() == 0)
            #expect(!connection.auditor.events.contains { $0.kind == .playbookRunStarted })
        }
    }

    @Test func aTrustedStepRunsWhatItsExecutorsRulesRefuseAndSaysSo() async throws {
        let playbook = PlaybookConfig(
            name: "trusted", steps: [Self.step("who", Self.literal("id", "-u"), executor: "strict", trusted: true)],
            file: "(test)")
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml, playbooks: [playbook]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.executions) {
                let frames = try await Self.run(connection, #"{"name":"trusted"}"#)
                let result = try #require(try Self.object(frames.last)["result"] as? [String: Any])
                #expect(result["state"] as? String == "succeeded")
                let show = await connection.call(
                    #"{"v":1,"id":8,"method":"playbook_show","params":{"name":"trusted"}}"#)
                #expect(show.contains(#""trusted":true"#))
            }
        }
    }

    @Test func aCallerOutsideTheAccessListOrWithoutARoleCannotRunOrShowIt() async throws {
        let nobody = RouterTests.nobody
        var playbook = Self.deploy
        playbook.access = AccessList(users: ["root"])
        try await InProcessConnection.with(caller: nobody, yaml: Self.yaml, playbooks: [playbook]) {
            connection in
            let run = try await Self.run(connection, #"{"name":"deploy","params":{"msg":"x"}}"#)
            #expect(run.last?.contains(#""code":"permission_denied""#) == true)
            #expect(run.last?.contains("may not run playbook 'deploy'") == true)
            let show = await connection.call(#"{"v":1,"id":8,"method":"playbook_show","params":{"name":"deploy"}}"#)
            #expect(show.contains(#""code":"permission_denied""#))
            let list = await connection.call(#"{"v":1,"id":9,"method":"playbook_list"}"#)
            #expect(list == #"{"id":9,"result":{"playbooks":[]}}"#)
            let missing = await connection.call(#"{"v":1,"id":10,"method":"playbook_show","params":{"name":"nope"}}"#)
            #expect(missing.contains(#""code":"no_such_playbook""#))
            #expect(try connection.executions.store.count() == 0)
        }
        try await InProcessConnection.with(
            caller: nobody, yaml: RouterTests.noRoleYAML, playbooks: [Self.deploy]
        ) { connection in
            let run = try await Self.run(connection, #"{"name":"deploy","params":{"msg":"x"}}"#)
            #expect(run.last?.contains("has no runvoy role") == true)
            let missing = await connection.call(#"{"v":1,"id":10,"method":"playbook_show","params":{"name":"nope"}}"#)
            #expect(missing.contains("has no runvoy role"), "a role-less user learns nothing of which playbooks exist")
        }
    }

    @Test func aScheduledRunIsRefusedForAnotherUser() async throws {
        var playbook = Self.deploy
        playbook.schedule = PlaybookSchedule(
            calendar: "daily", runAsCaller: "nobody", params: ["msg": "scheduled"], line: 1)
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml, playbooks: [playbook]) {
            connection in
            let frames = try await Self.run(connection, #"{"name":"deploy","schedule":true}"#)
            #expect(frames.last?.contains(#""code":"permission_denied""#) == true)
            #expect(frames.last?.contains("only nobody, the user of its schedule") == true)
            let given = try await Self.run(connection, #"{"name":"deploy","schedule":true,"params":{"msg":"x"}}"#)
            #expect(given.last?.contains(#""code":"invalid_argument""#) == true)
            #expect(try connection.executions.store.count() == 0)
        }
    }
}

extension PlaybookRunInProcessTests {
    /// `deploy` with one approval from root.
    static var approved: PlaybookConfig {
        var playbook = deploy
        playbook.approval = ApprovalPolicy(count: 1, approvers: AccessList(users: ["root"]))
        playbook.access = AccessList(users: ["*"])
        return playbook
    }

    /// Sends `playbook_run` and reads frames up to the first `approval` event; returns the request's id.
    static func awaitApproval(_ connection: InProcessConnection) async throws -> String {
        try await connection.send(
            #"{"v":1,"id":7,"method":"playbook_run","params":{"name":"deploy","params":{"msg":"ok"}}}"#)
        while true {
            let frame = try object(try await connection.nextFrame())
            if frame["error"] != nil { throw HarnessFailure("refused: \(frame)") }
            if frame["event"] as? String == "approval", let id = frame["execution_id"] as? String { return id }
        }
    }

    /// Answers request `id` as root.
    static func answer(_ id: String, approve: Bool, _ connection: InProcessConnection) async throws {
        let record = try #require(try connection.executions.store.approval(id))
        #expect(record.kind == "playbook" && record.params.contains(#""msg":"ok""#))
        let root = Self.root
        _ = try await connection.executions.approvals.change(
            id, caller: root, config: connection.config, audited: true
        ) { _, eligible in
            approve
                ? .approve(
                    uid: 0, user: "root", digest: record.digest, eligible: eligible, comment: nil,
                    atMs: WallClock.milliseconds())
                : .deny(uid: 0, user: "root", eligible: eligible, comment: "not now", atMs: WallClock.milliseconds())
        }
    }

    @Test func aPlaybookApprovalIsAskedOnceBeforeTheFirstStep() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody, yaml: Self.yaml, playbooks: [Self.approved]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.executions) {
                let id = try await Self.awaitApproval(connection)
                #expect(try connection.executions.store.count() == 0, "nothing runs before the approval")
                try await Self.answer(id, approve: true, connection)
                let last = try await connection.reply()
                let result = try #require(try Self.object(last)["result"] as? [String: Any])
                #expect(result["state"] as? String == "failed", "deploy's third step fails")
                #expect(try connection.executions.store.approval(id)?.state == .fulfilled)
                #expect(try connection.executions.store.count() == 5)
            }
        }
    }

    @Test func aDeniedPlaybookRunRunsNothing() async throws {
        try await InProcessConnection.with(caller: RouterTests.nobody, yaml: Self.yaml, playbooks: [Self.approved]) {
            connection in
            try await ExecutionLifetimeTests.running(connection.executions) {
                let id = try await Self.awaitApproval(connection)
                try await Self.answer(id, approve: false, connection)
                let last = try await connection.reply()
                #expect(last.contains(#""code":"approval_denied""#), "\(last)")
                #expect(try connection.executions.store.count() == 0)
                #expect(!connection.auditor.events.contains { $0.kind == .playbookRunStarted })
            }
        }
    }
}

/// A refusal where an approval was expected.
struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
