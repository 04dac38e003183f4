import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// `explain` of a playbook's step (`runvoyctl playbook explain`): the command it would run with the values given,
/// decided as the run decides it; a trusted step is allowed past its executor's rules and says so.
@Suite struct PlaybookExplainTests {
    static var nobody: Caller { RouterTests.nobody }

    /// `mixed`: `say` (echo VALUE on `strict`: allowed by its rules), `who` (`id -u` on `strict`: refused by its
    /// rules), `trusted-who` (the same, trusted by the administrator).
    static var mixed: PlaybookConfig {
        var message = PlaybookParameter(name: "msg", type: .string(pattern: "[a-z ;$()]+"), line: 1)
        message.required = true
        var playbook = PlaybookConfig(
            name: "mixed",
            steps: [
                PlaybookRunInProcessTests.step(
                    "say", [ArgvTemplate(literal: "echo"), ArgvTemplate(parameter: "msg")], executor: "strict"),
                PlaybookRunInProcessTests.step(
                    "who", PlaybookRunInProcessTests.literal("id", "-u"), executor: "strict"),
                PlaybookRunInProcessTests.step(
                    "trusted-who", PlaybookRunInProcessTests.literal("id", "-u"), executor: "strict", trusted: true),
            ], file: "(test)")
        playbook.parameters = [message]
        playbook.access = AccessList(users: ["nobody"])
        return playbook
    }

    static func explain(_ connection: InProcessConnection, _ params: String) async throws -> [String: Any] {
        let reply = await connection.call(#"{"v":1,"id":3,"method":"explain","params":"# + params + "}")
        return try PlaybookRunInProcessTests.object(reply)
    }

    @Test func aStepIsExplainedWithItsRenderedCommandAndATrustedStepSaysSo() async throws {
        try await InProcessConnection.with(
            caller: Self.nobody, yaml: PlaybookRunInProcessTests.yaml, playbooks: [Self.mixed]
        ) { connection in
            let say = try await Self.explain(
                connection, #"{"playbook":"mixed","step":"say","params":{"msg":"a b; $(id)"}}"#)
            let allowed = try #require(say["result"] as? [String: Any], "\(say)")
            #expect(allowed["decision"] as? String == "allow")
            #expect(allowed["argv"] as? [String] == ["echo", "a b; $(id)"])
            #expect(allowed["trusted"] as? Bool == false)
            #expect(allowed["executor"] as? String == "strict")

            let who = try #require(
                try await Self.explain(connection, #"{"playbook":"mixed","step":"who","params":{"msg":"x"}}"#)["result"]
                    as? [String: Any])
            #expect(who["decision"] as? String == "deny")
            #expect(who["code"] as? String == "command_not_allowed")

            let trusted = try #require(
                try await Self.explain(connection, #"{"playbook":"mixed","step":"trusted-who","params":{"msg":"x"}}"#)[
                    "result"] as? [String: Any])
            #expect(trusted["decision"] as? String == "allow")
            #expect(trusted["trusted"] as? Bool == true)
            let reason = try #require(trusted["reason"] as? String)
            #expect(reason.contains("trusted by the administrator"), "\(reason)")
            #expect(try connection.executions.store.count() == 0, "explain runs nothing")
        }
    }

    @Test func badValuesUnknownStepsAndPlaybooksAreRefusedWithTheirOwnCodes() async throws {
        try await InProcessConnection.with(
            caller: Self.nobody, yaml: PlaybookRunInProcessTests.yaml, playbooks: [Self.mixed]
        ) { connection in
            let bad = try await Self.explain(
                connection, #"{"playbook":"mixed","step":"say","params":{"msg":"A","x":"1"}}"#)
            let badError = try #require(bad["error"] as? [String: Any], "\(bad)")
            #expect(badError["code"] as? String == "invalid_argument")
            let message = try #require(badError["message"] as? String)
            #expect(message.contains("param 'x'") && message.contains("param 'msg'"), "every problem: \(message)")

            let step = try await Self.explain(connection, #"{"playbook":"mixed","step":"nope","params":{"msg":"a"}}"#)
            #expect((step["error"] as? [String: Any])?["code"] as? String == "invalid_argument")
            let none = try await Self.explain(connection, #"{"playbook":"absent","step":"say"}"#)
            #expect((none["error"] as? [String: Any])?["code"] as? String == "no_such_playbook")
            let mixedForm = try await Self.explain(
                connection, #"{"argv":["rm","-rf","/"],"playbook":"mixed","step":"say","params":{"msg":"a"}}"#)
            #expect((mixedForm["error"] as? [String: Any])?["code"] as? String == "invalid_argument")
        }
    }

    /// Who may not run the playbook is refused as `playbook_show` refuses (nothing of it is told); an
    /// administrator asking about such a user is told `deny`; a role-less user is refused.
    @Test func whoMayNotRunThePlaybookIsRefusedAndAnAdministratorIsToldDeny() async throws {
        var other = Self.mixed
        other.access = AccessList(users: ["root"])
        try await InProcessConnection.with(
            caller: Self.nobody, yaml: PlaybookRunInProcessTests.yaml, playbooks: [other]
        ) { connection in
            let reply = try await Self.explain(
                connection, #"{"playbook":"mixed","step":"trusted-who","params":{"msg":"a"}}"#)
            let error = try #require(reply["error"] as? [String: Any], "\(reply)")
            #expect(error["code"] as? String == "permission_denied")
            #expect(!(error["message"] as? String ?? "").contains("id"), "\(error)")
        }
        try await InProcessConnection.with(
            caller: PlaybookRunInProcessTests.root, yaml: PlaybookRunInProcessTests.yaml, playbooks: [other]
        ) { connection in
            let result = try #require(
                try await Self.explain(
                    connection, #"{"playbook":"mixed","step":"trusted-who","user":"nobody","params":{"msg":"a"}}"#)[
                        "result"] as? [String: Any])
            #expect(result["decision"] as? String == "deny")
            #expect(result["code"] as? String == "permission_denied")
            #expect(result["user"] as? String == "nobody")
        }
        let noRole =
            RouterTests.noRoleYAML + String(PlaybookRunInProcessTests.yaml.dropFirst(RouterTests.developerYAML.count))
        try await InProcessConnection.with(caller: Self.nobody, yaml: noRole, playbooks: [Self.mixed]) { connection in
            let reply = try await Self.explain(connection, #"{"playbook":"mixed","step":"say","params":{"msg":"a"}}"#)
            #expect((reply["error"] as? [String: Any])?["code"] as? String == "permission_denied", "\(reply)")
        }
    }
}
