import Foundation
import Glibc
import RunvoyKit
import Testing

/// The role table against a real runvoyd, as real Unix users made for the test (useradd; removed after).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class AuthorizationTests {
    let daemon: DaemonFixture
    let suffix: String
    var admin: String { "rvt\(suffix)-adm" }
    var oper: String { "rvt\(suffix)-op" }
    var dev: String { "rvt\(suffix)-dev" }
    var viewer: String { "rvt\(suffix)-view" }
    var none: String { "rvt\(suffix)-none" }
    var opsGroup: String { "rvt\(suffix)-ops" }
    var users: [String] { [admin, oper, dev, viewer, none] }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        try Self.sh("groupadd \(opsGroupName(suffix))")
        for user in ["adm", "op", "dev", "view", "none"].map({ "rvt\(suffix)-\($0)" }) {
            try Self.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
        try Self.sh("usermod -a -G \(opsGroupName(suffix)) rvt\(suffix)-op")
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "roles:\n  developer: {users: [\"*\"]}\n",
                    with: """
                        roles:
                          admin: {users: [rvt\(suffix)-adm]}
                          operator: {groups: [rvt\(suffix)-ops]}
                          developer: {users: [rvt\(suffix)-dev]}
                          viewer: {users: [rvt\(suffix)-view]}

                        """)
                    + """
                      ops:
                        run_as: {user: nobody}
                        environment: {PATH: /usr/bin:/bin}
                        allow: {roles: [operator]}
                        commands:
                          - {deny: [rm, "*"]}
                          - [echo, "*"]
                          - [sleep, "*"]
                    """
        })
    }

    deinit {
        daemon.stop()
        for user in users { try? Self.sh("userdel \(user)") }
        try? Self.sh("groupdel \(opsGroup)")
    }

    static func sh(_ command: String) throws {
        let out = try Harness.run(["/bin/sh", "-c", command])
        if out.status != 0 { throw HarnessError("\(command): \(out.stderrText)") }
    }

    func ctl(_ user: String, _ arguments: [String]) throws -> Harness.Output {
        try daemon.ctl(arguments, asUser: user)
    }

    func detachedSleep(_ user: String, executor: String = "default") throws -> String {
        let out = try ctl(user, ["exec", "-e", executor, "--detach", "--", "sleep", "30"])
        guard out.status == 0 else { throw HarnessError("detach as \(user): \(out.stderrText)") }
        return out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func execFollowsTheRoleTable() throws {
        for user in [admin, oper, dev] {
            let out = try ctl(user, ["exec", "-q", "--", "id", "-un"])
            #expect(out.status == 0 && out.stdoutText == "nobody\n", "\(user): \(out.stderrText)")
        }
        let viewed = try ctl(viewer, ["exec", "--", "true"])
        #expect(viewed.status == 125 && viewed.stderrText.contains("lacks the exec permission"))
        let noCapabilities = try ctl(none, ["capabilities"])
        #expect(noCapabilities.status == 125 && noCapabilities.stderrText.contains("has no runvoy role"))
        let nobody = try ctl(none, ["exec", "--", "true"])
        #expect(nobody.status == 125)
        #expect(nobody.stderrText.contains("has no runvoy role") && nobody.stderrText.contains("ask the test suite"))
        let denial = try Harness.journal(["RUNVOY_CALLER_USER=\(none)", "RUNVOY_DECISION=deny"])
        #expect(denial.first?["RUNVOY_REASON"]?.contains("has no runvoy role") == true)
    }

    @Test func executorAccessByRoleAndDenyRulesThatWin() throws {
        #expect(try ctl(oper, ["exec", "-q", "-e", "ops", "--", "echo", "hi"]).stdoutText == "hi\n")
        #expect(try ctl(admin, ["exec", "-q", "-e", "ops", "--", "echo", "hi"]).stdoutText == "hi\n")
        let devRefused = try ctl(dev, ["exec", "-e", "ops", "--", "echo", "hi"])
        #expect(devRefused.status == 125 && devRefused.stderrText.contains("may not use executor 'ops'"))
        for user in [oper, admin] {
            let rm = try ctl(user, ["exec", "-e", "ops", "--", "/bin/rm", "-rf", "/nonexistent"])
            #expect(rm.status == 125 && rm.stderrText.contains("command_not_allowed"))
            #expect(rm.stderrText.contains("deny rm *"))
        }
        let audited = try Harness.journal([
            "RUNVOY_CALLER_USER=\(oper)", "RUNVOY_DECISION=deny", "RUNVOY_EXECUTOR=ops",
        ])
        #expect(audited.first?["RUNVOY_RULE"]?.hasSuffix(":\(daemon.ruleLine("{deny: [rm"))") == true)
    }

    @Test func historyVisibilityAndKillFollowTheRoleTable() throws {
        let devID = try detachedSleep(dev)
        func sees(_ user: String) throws -> Bool {
            let out = try ctl(user, ["list", "--json", "--limit", "1000"])
            guard out.status == 0 else { throw HarnessError("list as \(user): \(out.stderrText)") }
            return try JSONDecoder().decode(ListResult.self, from: out.stdout).executions.contains {
                $0.executionId == devID
            }
        }
        #expect(try sees(dev))
        #expect(try sees(oper) && sees(admin) && sees(viewer))
        let noRole = try ctl(none, ["list"])
        #expect(noRole.status == 125 && noRole.stderrText.contains("has no runvoy role"))
        #expect(try ctl(viewer, ["status", devID]).status == 0)
        #expect(try ctl(viewer, ["logs", devID]).status == 0)

        let viewerKill = try ctl(viewer, ["kill", devID])
        #expect(viewerKill.status == 125 && viewerKill.stderrText.contains("permission_denied"))
        #expect(try ctl(oper, ["kill", devID]).status == 0)

        let adminTarget = try detachedSleep(dev)
        #expect(try ctl(admin, ["kill", adminTarget]).status == 0)
        let own = try detachedSleep(dev)
        #expect(try ctl(dev, ["kill", own]).status == 0)
        let operOwn = try detachedSleep(oper)
        let devKill = try ctl(dev, ["kill", operOwn])
        // The developer may not see the operator's execution: it is answered as one that does not exist.
        #expect(devKill.status == 125 && devKill.stderrText.contains("no_such_execution"))
        #expect(try ctl(oper, ["kill", operOwn]).status == 0)
        let devList = try JSONDecoder().decode(
            ListResult.self, from: try ctl(dev, ["list", "--json", "--limit", "1000"]).stdout)
        #expect(!devList.executions.contains { $0.executionId == operOwn })
    }

    @Test func usersExplainAndReloadFollowTheRoleTable() throws {
        for user in [admin, oper] {
            let out = try ctl(user, ["users", "--json"])
            #expect(out.status == 0, "\(user): \(out.stderrText)")
            let result = try JSONDecoder().decode(UsersResult.self, from: out.stdout)
            #expect(result.users.contains { $0.user == oper && $0.roles == ["operator"] })
            #expect(result.users.contains { $0.user == "root" && $0.roles == ["admin"] })
            #expect(!result.users.contains { $0.user == none })
            #expect(result.bindings.map(\.role) == ["admin", "operator", "developer", "viewer"])
        }
        for user in [dev, viewer, none] {
            let out = try ctl(user, ["users"])
            #expect(out.status == 125 && out.stderrText.contains("permission_denied"), "\(user)")
        }
        // This daemon's only: other suites running at the same time refuse `users` too (GrantTests).
        let refusals = try Harness.journal(
            ["RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=users", "_PID=\(daemon.process.pid)"]
        ) { $0.count >= 3 }
        #expect(Set(refusals.compactMap { $0["RUNVOY_CALLER_USER"] }) == [dev, viewer, none])
        #expect(
            refusals.allSatisfy {
                $0["RUNVOY_REASON"]?.contains("users_read") == true
                    || $0["RUNVOY_REASON"]?.contains("no runvoy role") == true
            })

        let asked = try ctl(admin, ["explain", "--json", "--user", dev, "-e", "ops", "--", "echo", "x"])
        let explained = try JSONDecoder().decode(ExplainResult.self, from: asked.stdout)
        #expect(explained.decision == "deny" && explained.user == dev && explained.roles == ["developer"])
        let operAsks = try ctl(oper, ["explain", "--user", dev, "--", "true"])
        #expect(operAsks.status == 125 && operAsks.stderrText.contains("explain_others"))
        let selfAsk = try ctl(dev, ["explain", "--", "true"])
        #expect(selfAsk.status == 0 && selfAsk.stdoutText.hasPrefix("allow: \(dev)"))

        #expect(try ctl(admin, ["reload"]).status == 0)
        let operReload = try ctl(oper, ["reload"])
        #expect(operReload.status == 125 && operReload.stderrText.contains("config_reload"))

        let capabilities = try JSONDecoder().decode(
            CapabilitiesResult.self, from: try ctl(oper, ["capabilities", "--json"]).stdout)
        #expect(capabilities.roles == ["operator"])
        #expect(capabilities.executors.map(\.name) == ["default", "limited", "ops"])
        let ops = try #require(capabilities.executors.last)
        #expect(ops.rules.map(\.pattern) == ["deny rm *", "echo *", "sleep *"])
        #expect(ops.rules.first?.effect == "deny")
        let human = try ctl(dev, ["capabilities"])
        #expect(human.stdoutText.contains("roles: developer"))
        #expect(!human.stdoutText.contains("executor ops"))
    }

    @Test func explainAgreesWithExecForGeneratedCommands() throws {
        let words = ["echo", "sleep", "rm", "true", "-rf", "0", "x", "/nonexistent"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<25 {
            let count = Int.random(in: 1...3, using: &generator)
            let argv = (0..<count).map { _ in words.randomElement(using: &generator)! }
            for user in [oper, dev] {
                let explained = try ctl(user, ["explain", "-e", "ops", "--"] + argv)
                let executed = try ctl(user, ["exec", "-q", "-e", "ops", "--"] + argv)
                let refused =
                    executed.status == 125 && executed.stderrText.contains("runvoyctl:")
                    && (executed.stderrText.contains("permission_denied")
                        || executed.stderrText.contains("command_not_allowed"))
                #expect(
                    (explained.status == 0) == !refused,
                    "\(user) \(argv): \(explained.stdoutText) / \(executed.stderrText)")
            }
        }
    }
}

private func opsGroupName(_ suffix: String) -> String { "rvt\(suffix)-ops" }

extension DaemonFixture {
    /// The line of the configuration file that contains `text`.
    func ruleLine(_ text: String) -> Int {
        let config = (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? ""
        return (config.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(text) } ?? -1)
            + 1
    }
}

/// Policy expectations gate `--check-config`, start and reload; reloads audit the grants gained and lost.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
struct PolicyReloadTests {
    static func config(_ directory: String, rules: String, extra: String = "") -> String {
        """
        socket: {path: \(directory)/runvoyd.sock, mode: "0666"}
        state_directory: \(directory)/state
        roles:
          developer: {users: [daemon]}
        executors:
          default:
            default: true
            run_as: {user: nobody}
            environment: {PATH: /usr/bin:/bin}
            allow: {users: ["*"]}
            commands:
        \(rules)
        \(extra)
        expect:
          - {user: daemon, argv: [echo, hi], result: allow}
          - {user: daemon, argv: [rm, -rf, /], result: deny}
        """
    }

    @Test func expectationsGateEveryLoadAndReloadsAuditGrantChanges() throws {
        let daemon = try DaemonFixture(config: { Self.config($0, rules: "      - [echo, \"*\"]") })
        defer { daemon.stop() }
        let started = try Harness.journal(["RUNVOY_EVENT=policy_loaded", "_PID=\(daemon.process.pid)"])
        let digest = try #require(started.first?["RUNVOY_POLICY_DIGEST"])
        #expect(digest.count == 16)

        // A rule that breaks an expectation: rejected by reload, --check-config and a fresh start.
        let bad = Self.config(daemon.directory, rules: "      - [echo, \"*\"]\n      - [rm, \"*\"]")
        try bad.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let reload = try daemon.ctl(["reload"])
        #expect(reload.status == 125)
        #expect(reload.stderrText.contains("expected deny, got allow"))
        #expect(reload.stderrText.contains("runvoyd.yaml:"))
        let stillDenied = try daemon.ctl(["exec", "--", "rm", "-rf", "/nonexistent"], asUser: "daemon")
        #expect(stillDenied.status == 125 && stillDenied.stderrText.contains("command_not_allowed"))
        let rejected = try Harness.journal(["RUNVOY_EVENT=config_rejected", "_PID=\(daemon.process.pid)"])
        #expect(rejected.first?["RUNVOY_ERRORS"]?.contains("expected deny") == true)
        let check = try Harness.run([Harness.runvoyd, "--check-config", "--config", daemon.configPath])
        #expect(check.status == 1)
        #expect(check.stdoutText.contains("expected deny, got allow"))
        let start = try Harness.run(
            [Harness.runvoyd, "--config", daemon.configPath], environment: ["RUNVOYD_LOG_STDERR": "1"], timeout: 30)
        #expect(start.status == 78)
        #expect(start.stderrText.contains("policy expectation(s) failed; not starting"))

        // A change that keeps the expectations: applied, with the grants it moved in the journal.
        let good = Self.config(
            daemon.directory, rules: "      - [echo, [hi, there]]",
            extra: "  extra: {run_as: {user: nobody}, allow: {users: [daemon]}, commands: [[true]]}")
        try good.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let applied = try daemon.ctl(["reload"])
        #expect(applied.status == 0, "\(applied.stderrText)")
        #expect(applied.stdoutText.contains("executors default, extra"))
        let changed = try Harness.journal(["RUNVOY_EVENT=policy_loaded", "_PID=\(daemon.process.pid)"]) {
            $0.count >= 2
        }
        let record = try #require(changed.last)
        #expect(record["RUNVOY_PREVIOUS_POLICY_DIGEST"] == digest)
        #expect(record["RUNVOY_POLICY_DIGEST"] != digest)
        let gained = try #require(record["RUNVOY_GRANTS_GAINED"])
        let lost = try #require(record["RUNVOY_GRANTS_LOST"])
        #expect(
            gained.contains("\"daemon\":[") && gained.contains("extra: true")
                && gained.contains("default: echo {hi|there}"))
        #expect(lost.contains("\"daemon\":[\"default: echo *\"]"))
        // Root is admin and may use every executor: its grants moved too.
        #expect(gained.contains("\"root\":["))
        #expect(try daemon.ctl(["exec", "-e", "extra", "--", "true"], asUser: "daemon").status == 0)

        // docs/AUDIT.md's priorities for these kinds: policy_loaded 5, config_rejected 3, config_reloaded 5,
        // daemon_started 6.
        #expect(started.first?["PRIORITY"] == "5")
        #expect(changed.allSatisfy { $0["PRIORITY"] == "5" })
        #expect(rejected.first?["PRIORITY"] == "3")
        let reloaded = try Harness.journal(["RUNVOY_EVENT=config_reloaded", "_PID=\(daemon.process.pid)"])
        #expect(!reloaded.isEmpty && reloaded.allSatisfy { $0["PRIORITY"] == "5" })
        let began = try Harness.journal(["RUNVOY_EVENT=daemon_started", "_PID=\(daemon.process.pid)"])
        #expect(began.count == 1 && began.first?["PRIORITY"] == "6")
    }
}
