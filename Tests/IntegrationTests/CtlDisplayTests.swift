import Foundation
import RunvoyKit
import Testing

@testable import runvoyctl

/// What runvoyctl prints of answers a test daemon rarely gives: nothing to list, no name for a uid, fields left
/// out, a role bound to nobody. A `ScriptedDaemon` gives each answer (encoded from the protocol's own types); the
/// client is the real runvoyctl.
struct CtlDisplayTests {
    typealias Answer = ScriptedDaemon.Answer

    /// Runs `arguments` against one `answers` exchange; returns what it printed.
    static func run(
        _ arguments: [String], _ answers: [Answer], environment: [String: String] = [:], stdinPath: String? = nil,
        connectionEach: Bool = false
    ) async throws -> Harness.Output {
        let daemon = try ScriptedDaemon()
        let outcome = try await daemon.play(
            arguments, environment: environment, stdinPath: stdinPath,
            script: ScriptedDaemon.serve(answers, connectionEach: connectionEach))
        #expect(outcome.scriptError == nil, "\(arguments)")
        return outcome.output
    }

    @Test func whoamiOfAUidWithoutANameAndWithNothingGranted() async throws {
        var me = WhoamiResult(
            uid: 12345, gid: 12345, pid: 77, user: nil, group: nil, groups: [], admin: true, pidfd: false,
            executors: [], defaultExecutor: nil)
        me.roles = []
        let out = try await Self.run(["whoami"], [Answer(method: "whoami", result: try ScriptedDaemon.json(me))])
        #expect(
            out.stdoutText
                == "uid=12345(?) gid=12345(?) groups= pid=77\nadmin: yes\nroles: none\npeer pidfd: no\nexecutors: none\n"
        )
        #expect(out.status == 0)
    }

    @Test func locksSayWhenThereAreNoneAndWhoHoldsAndWaits() async throws {
        let none = try await Self.run(
            ["locks"], [Answer(method: "locks", result: try ScriptedDaemon.json(LocksResult(locks: [])))])
        #expect(none.stdoutText == "no locks are declared or held\n")
        let lock = LockInfo(
            name: "db", mode: "shared", executors: [],
            holders: [
                LockHolder(executionId: nil, user: "alice", uid: 1000, executor: nil, shared: true, sinceMs: nil)
            ],
            waiters: [
                LockHolder(
                    executionId: nil, user: "another user", uid: nil, executor: nil, shared: false, sinceMs: nil)
            ])
        let held = try await Self.run(
            ["locks"], [Answer(method: "locks", result: try ScriptedDaemon.json(LocksResult(locks: [lock])))])
        #expect(
            held.stdoutText == "db: shared\n  held by (starting) alice shared\n  waiting: another user's execution\n")
    }

    @Test func capabilitiesAndUsersShowEmptyListsAndEveryRuleDetail() async throws {
        let empty = CapabilitiesResult(user: "nobody", roles: [], permissions: [], executors: [])
        let bare = try await Self.run(
            ["capabilities"], [Answer(method: "capabilities", result: try ScriptedDaemon.json(empty))])
        #expect(bare.stdoutText == "user: nobody\nroles: none\npermissions: none\nexecutors: none\n")

        var executor = ExecutorCapability(
            name: "prod", description: "production", isDefault: false, runAs: "deploy",
            rules: [
                RuleInfo(effect: "deny", pattern: "deny rm *", rule: nil),
                RuleInfo(effect: "allow", pattern: "kubectl *", rule: "runvoyd.yaml:9", approval: "1 approval"),
            ])
        executor.approval = "2 approvals from admins"
        var capabilities = CapabilitiesResult(user: "bob", roles: ["ops"], permissions: [], executors: [executor])
        capabilities.grants = [Self.grant]
        let full = try await Self.run(
            ["capabilities"], [Answer(method: "capabilities", result: try ScriptedDaemon.json(capabilities))])
        let temporary = "temporary: role operator until \(GrantOptions.time(Self.grant.expiresAtMs)) (grant g-1)\n"
        #expect(
            full.stdoutText
                == "user: bob\nroles: ops\npermissions: none\n\(temporary)\nexecutor prod runs as deploy: production\n"
                + "  (2 approvals from admins before a command runs)\n  deny  rm *\n"
                + "  allow kubectl *    (runvoyd.yaml:9)\n          1 approval\n")

        let users = UsersResult(
            bindings: [
                BindingInfo(role: "ops", users: [], groups: ["wheel"], rule: "runvoyd.yaml:3"),
                BindingInfo(role: "idle", users: [], groups: [], rule: "runvoyd.yaml:4"),
            ],
            users: [UserRoles(user: "alice", uid: 1000, roles: ["ops"])])
        let bound = try await Self.run(["users"], [Answer(method: "users", result: try ScriptedDaemon.json(users))])
        #expect(
            bound.stdoutText.hasPrefix(
                "bindings (root is always admin):\n  ops: group wheel    (runvoyd.yaml:3)\n"
                    + "  idle: nobody    (runvoyd.yaml:4)\n\n"), "\(bound.stdoutText)")
    }

    @Test func explainWithoutDashesAndPlaybookExplainShowTheDecision() async throws {
        var allowed = ExplainResult(
            user: "bob", roles: [], executor: "default", decision: "allow", code: nil, reason: "rule 2 allows it",
            rule: nil)
        allowed.approval = "1 approval from admins"
        // The command without `--`; the socket from $RUNVOY_SOCKET, since everything after `explain` is the command.
        let daemon = try ScriptedDaemon()
        let explained = try await daemon.play(
            ["explain", "echo", "hi"], environment: ["RUNVOY_SOCKET": daemon.path], socketOption: false,
            script: ScriptedDaemon.serve([
                Answer(method: "explain", result: try ScriptedDaemon.json(allowed)) {
                    $0["argv"] as? [String] == ["echo", "hi"]
                }
            ]))
        #expect(explained.scriptError == nil)
        #expect(
            explained.output.stdoutText
                == "allow: bob (no role) on executor 'default'\nreason: rule 2 allows it\napproval: 1 approval from admins\n"
        )
        #expect(explained.output.status == 0)

        var denied = ExplainResult(
            user: "bob", roles: [], executor: "prod", decision: "deny", code: "not_allowed",
            reason: "no rule allows it",
            rule: "runvoyd.yaml:12")
        denied.approval = "2 approvals"
        let step = try await Self.run(
            ["playbook", "explain", "deploy", "plan"],
            [
                Answer(method: "explain", result: try ScriptedDaemon.json(denied)) {
                    $0["playbook"] as? String == "deploy" && $0["step"] as? String == "plan"
                }
            ])
        #expect(
            step.stdoutText
                == "deny: bob (no role) on executor 'prod'\nreason: no rule allows it\nrule: runvoyd.yaml:12\n"
                + "approval: 2 approvals\n")
        #expect(step.status == 1)
    }

    @Test func secretsAreListedInATableAndSetFromAWindowsLine() async throws {
        let list = SecretListResult(
            secrets: [
                SecretDescription(
                    name: "db", description: nil, owner: "alice", updatedBy: "root", createdAtMs: 0, updatedAtMs: 0,
                    version: 3, executors: []),
                SecretDescription(
                    name: "api", description: "the API token", owner: "bob", updatedBy: "bob", createdAtMs: 0,
                    updatedAtMs: 0, version: 1, executors: ["default", "deploy"]),
            ], missing: ["tls"])
        let listed = try await Self.run(
            ["secrets", "list"], [Answer(method: "secrets_list", result: try ScriptedDaemon.json(list))],
            environment: ["COLUMNS": ""])
        let lines = listed.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(listed.stdoutText)")
        #expect(lines.first?.hasPrefix("NAME  OWNER  SET BY  UPDATED") == true, "\(listed.stdoutText)")
        #expect(
            lines.count > 1 && lines[1].hasPrefix("db ") && lines[1].contains(" 3  ")
                && lines[1].hasSuffix("-" + String(repeating: " ", count: 15)))
        #expect(lines.count > 2 && lines[2].hasPrefix("api ") && lines[2].hasSuffix("default,deploy  the API token"))
        #expect(lines.last == "not set, but used by executors: tls")

        let input = try Harness.makeTemporaryDirectory() + "/value"
        try "s3cret\r\n".write(toFile: input, atomically: true, encoding: .utf8)
        let set = try await Self.run(
            ["secrets", "set", "db"],
            [
                Answer(
                    method: "secrets_set",
                    result: try ScriptedDaemon.json(SecretSetResult(name: "db", created: false, version: 4))
                ) { $0["value"] as? String == Base64.encode(Array("s3cret".utf8)) }
            ], stdinPath: input)
        #expect(set.stdoutText == "secret db rotated (version 4)\n")
        try? FileManager.default.removeItem(atPath: (input as NSString).deletingLastPathComponent)
    }

    static let grant = GrantInfo(
        id: "g-1", user: "bob", uid: 1001, role: "operator", executor: nil, expiresAtMs: 1_800_000_000_000,
        createdAtMs: 1_700_000_000_000, grantedBy: "root", grantedByUid: 0, reason: "INC-1")

    @Test func aGrantIsDescribedAndItsDurationSent() async throws {
        let grant = Self.grant
        let out = try await Self.run(
            ["grant", "--user", "bob", "--role", "operator", "--for", "1h", "--reason", "INC-1"],
            [
                Answer(method: "grant", result: try ScriptedDaemon.json(GrantResult(grant: grant))) {
                    $0["for_ms"] as? Int == 3_600_000
                }
            ])
        #expect(out.stdoutText.hasPrefix("grant g-1: role operator for bob until "), "\(out.stdoutText)")
        #expect(out.stdoutText.hasSuffix(" (granted by root: INC-1)\n"), "\(out.stdoutText)")
    }

    @Test func approvingARequestThatIsNotThere() async throws {
        let out = try await Self.run(
            ["approve", "01gone00000000000000000000"],
            [Answer(method: "approvals", result: try ScriptedDaemon.json(ApprovalsResult(requests: [])))])
        #expect(out.stderrText.hasPrefix("Error: no request 01gone00000000000000000000\n"), "\(out.stderrText)")
        #expect(out.status == 64)
    }

    @Test func aBackupToStandardOutputAndOneWithBadData() async throws {
        let result = BackupResult(
            bytes: 7, sha256: "abc", manifestSha256: "def", executions: 2, runningExecutions: 1, files: 3,
            includesKey: false, createdAtMs: 0)
        let data = try ScriptedDaemon.json(BackupDataEvent(id: nil, data: Base64.encode(Array("archive".utf8))))
        let out = try await Self.run(
            ["backup", "--output", "-"],
            [Answer(method: "backup", result: try ScriptedDaemon.json(result), events: [data])])
        #expect(out.stdoutText == "archive")
        #expect(
            out.stderrText == "runvoyctl: wrote the archive: 7 bytes, 2 executions (1 running), 3 files; sha256 abc\n")
        #expect(out.status == 0)

        let bad = try ScriptedDaemon.json(BackupDataEvent(id: nil, data: "@@@"))
        let refused = try await Self.run(
            ["backup", "--output", "-"],
            [Answer(method: "backup", result: try ScriptedDaemon.json(result), events: [bad])])
        #expect(refused.stderrText == "runvoyctl: a backup event without valid data\n")
        #expect(refused.status == 125)
    }

    /// `edit` of a relative path asks for it from the current directory, names its copy after the file (what a
    /// file name may not hold replaced) in /tmp when $TMPDIR is empty, and sends nothing back when it is unchanged.
    /// An "editor" that changes nothing and succeeds only on a copy in /tmp named after the file.
    static let expectCopy = #"f() { case "$1" in /tmp/runvoy-edit-*-a-b_c_d.txt) test -f "$1";; *) false;; esac; }; f"#

    @Test func editOfARelativePathLeftUnchanged() async throws {
        let opened = EditOpenResult(
            path: "/srv/a-b_c d.txt", executor: "default", content: Base64.encode(Array("hi\n".utf8)), sha256: "aa",
            size: 3, mode: 0o644, token: "t-1")
        let saved = EditSaveResult(
            executionId: "01editunchanged00000000000", path: "/srv/a-b_c d.txt", sha256Before: "aa", sha256After: "aa",
            changed: false)
        let cwd = FileManager.default.currentDirectoryPath
        let out = try await Self.run(
            ["edit", "notes/a-b_c d.txt"],
            [
                Answer(method: "edit_open", result: try ScriptedDaemon.json(opened)) {
                    $0["path"] as? String == (cwd == "/" ? "" : cwd) + "/notes/a-b_c d.txt"
                },
                Answer(method: "edit_save", result: try ScriptedDaemon.json(saved)) {
                    $0["token"] as? String == "t-1" && $0["content"] == nil
                },
            ], environment: ["TMPDIR": "", "VISUAL": Self.expectCopy], connectionEach: true)
        #expect(out.stdoutText == "/srv/a-b_c d.txt unchanged; nothing written; record 01editunchanged00000000000\n")
        #expect(out.status == 0, "\(out.stderrText)")
    }

    @Test func editRefusesContentThatIsNotBase64AndATemporaryDirectoryThatIsNotThere() async throws {
        var opened = EditOpenResult(
            path: "/srv/x", executor: "default", content: "@@@", sha256: "aa", size: 3, mode: 0o644, token: "t-1")
        let bad = try await Self.run(
            ["edit", "/srv/x"], [Answer(method: "edit_open", result: try ScriptedDaemon.json(opened))])
        #expect(bad.stderrText == "runvoyctl: the daemon sent content that is not base64\n")
        #expect(bad.status == 125)
        opened.content = Base64.encode(Array("x".utf8))
        let nowhere = try await Self.run(
            ["edit", "/srv/x"], [Answer(method: "edit_open", result: try ScriptedDaemon.json(opened))],
            environment: ["TMPDIR": "/nonexistent"])
        #expect(
            nowhere.stderrText
                == "runvoyctl: cannot create a temporary file in /nonexistent: No such file or directory\n")
        #expect(nowhere.status == 125)
    }

    /// An execution the daemon has no start time for: its creation time stands in.
    static let unstarted = ListCommandFormatTests.info("01unstartedexecution000000").withoutStart

    @Test func logsAsAsciicastAtThisTerminalsSizeAndWithAnIncompleteCharacterAtTheEnd() async throws {
        let status = try ScriptedDaemon.json(Self.unstarted)
        let chunks = [
            try ScriptedDaemon.json(DroppedEvent(id: nil, bytes: 3)),
            try ScriptedDaemon.json(
                LogChunkEvent(id: nil, stream: .stdout, data: Base64.encode([0x68, 0x69, 0xE2, 0x82]), tUsec: 5)),
        ]
        let logs = try ScriptedDaemon.json(LogsResult(execution: Self.unstarted))
        let out = try await Self.run(
            ["logs", "01unstartedexecution000000", "--format", "asciicast", "--max-pause", "2s"],
            [Answer(method: "status", result: status), Answer(method: "logs", result: logs, events: chunks)])
        let lines = out.stdoutText.split(separator: "\n").map(String.init)
        #expect(
            lines.first == #"{"version": 2, "width": 80, "height": 24, "timestamp": 0, "idle_time_limit": 2.000000, "#
                + #""command": "echo abc", "title": "runvoy execution 01unstartedexecution000000"}"#,
            "\(out.stdoutText)")
        #expect(lines.dropFirst().first == #"[0.000005, "o", "hi"]"#, "\(out.stdoutText)")
        #expect(lines.count == 3 && lines[2] == "[0.000005, \"o\", \"\u{FFFD}\"]", "\(out.stdoutText)")
        #expect(out.status == 0)
    }

    @Test func logsRefuseOutputThatIsNotBase64() async throws {
        let status = try ScriptedDaemon.json(Self.unstarted)
        let bad = try ScriptedDaemon.json(LogChunkEvent(id: nil, stream: .stdout, data: "@@@", tUsec: 5))
        let logs = try ScriptedDaemon.json(LogsResult(execution: Self.unstarted))
        for format in ["raw", "asciicast"] {
            let out = try await Self.run(
                ["logs", "01unstartedexecution000000", "--format", format] + (format == "raw" ? ["--timestamps"] : []),
                [Answer(method: "status", result: status), Answer(method: "logs", result: logs, events: [bad])])
            #expect(out.stderrText == "runvoyctl: output event with invalid base64\n", "\(format)")
            #expect(out.status == 125)
        }
    }
}

extension ExecutionInfo {
    /// The same execution as if it had not started.
    var withoutStart: ExecutionInfo {
        var info = self
        info.startedAtMs = nil
        info.createdAtMs = 0
        return info
    }
}
