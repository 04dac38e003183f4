import Foundation
import Glibc
import RunvoyKit
import Testing

/// Hooks against a real runvoyd, run as a real user made for the test (useradd; removed after): a `pre_exec`
/// veto whose reason reaches the client cleaned, timeouts under `on_error: deny` and `allow`, the JSON a hook
/// reads (no secret's value, no environment value), the user it runs as, `post_exec` told the result, the
/// approval gate's `on_approval_request` and `on_break_glass`, and what a caller can and cannot do to a hook.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class HookTests {
    let daemon: DaemonFixture
    let suffix: String
    /// Where the hooks write what they saw: owned by the hook user.
    let spool: String
    static let secretValue = "hook-secret-Zq81xk"
    static let envValue = "caller-env-value-3kd9"

    func user(_ name: String) -> String { "rvh\(suffix)-\(name)" }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        for name in ["alice", "bob", "hooks"] {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin rvh\(suffix)-\(name)")
        }
        var template = Array("/tmp/runvoy-hook-spool-XXXXXX".utf8CString)
        spool = String(cString: mkdtemp(&template)!)
        chmod(spool, 0o755)
        try AuthorizationTests.sh("chown rvh\(suffix)-hooks \(spool)")
        let spool = self.spool
        daemon = try DaemonFixture(config: { Self.config(suffix: suffix, spool: spool, directory: $0) })
        let value = daemon.directory + "/secret-value"
        try (Self.secretValue + "\n").write(toFile: value, atomically: true, encoding: .utf8)
        let set = try daemon.ctl(["secrets", "set", "hook-token"], stdinPath: value)
        #expect(set.status == 0, "\(set.stderrText)")
    }

    deinit {
        daemon.stop()
        for name in ["alice", "bob", "hooks"] { try? AuthorizationTests.sh("userdel \(user(name))") }
        try? AuthorizationTests.sh("rm -rf '\(spool)'")
    }

    static func config(suffix: String, spool: String, directory: String) -> String {
        let hooks = "rvh\(suffix)-hooks"
        let rawRecord =
            #"cat > \#(spool)/$RUNVOY_HOOK_EVENT-$RUNVOY_EXECUTION_ID.json; id -un > \#(spool)/$RUNVOY_HOOK_EVENT-$RUNVOY_EXECUTION_ID.user"#
        let rawWindow =
            #"test -e \#(spool)/window-open || { printf '\n\033[31mout\033]0;pwned\007side the change window\r\nsecond line\n'; exit 1; }"#
        let quoted = { (script: String) in script.replacingOccurrences(of: "'", with: "''") }
        let (record, window) = (quoted(rawRecord), quoted(rawWindow))
        return DaemonFixture.standardConfig(directory: directory)
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: """
                    roles:
                      admin: {users: [rvh\(suffix)-alice]}
                      developer: {users: ["*"]}
                    hooks:
                      - {name: record, event: pre_exec, command: [/bin/sh, -c, '\(record)'], user: \(hooks)}
                      - {name: record-post, event: post_exec, command: [/bin/sh, -c, '\(record)'], user: \(hooks)}

                    """)
                + """
                  hooked:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin, TOKEN: {secret: hook-token}}
                    allow_env: [CALLER_VAR]
                    allow: {users: ["*"]}
                    commands: any
                    hooks:
                      - {name: window, event: pre_exec, command: [/bin/sh, -c, '\(window)'], user: \(hooks)}
                  slow-deny:
                    run_as: {user: nobody}
                    allow: {users: ["*"]}
                    commands: any
                    hooks:
                      - {name: slow, event: pre_exec, command: [/bin/sh, -c, 'sleep 1000 & sleep 1000'], user: \(hooks), timeout: 1s}
                  slow-allow:
                    run_as: {user: nobody}
                    allow: {users: ["*"]}
                    commands: any
                    hooks:
                      - {name: slow, event: pre_exec, command: [/bin/sh, -c, 'sleep 1000'], user: \(hooks), timeout: 1s, on_error: allow}
                  slowpost:
                    run_as: {user: nobody}
                    allow: {users: ["*"]}
                    commands: any
                    hooks:
                      - {name: late, event: post_exec, command: [/bin/sh, -c, 'sleep 2; cat > \(spool)/late-$RUNVOY_EXECUTION_ID.json'], user: \(hooks)}
                  gated:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: ["*"]}
                    approval: {count: 1, approvers: {users: [rvh\(suffix)-bob]}, expires: 10m}
                    break_glass: {roles: [admin]}
                    commands: any
                    hooks:
                      - {name: ticket, event: on_approval_request, command: [/bin/sh, -c, '\(record); grep -q veto-me \(spool)/$RUNVOY_HOOK_EVENT-$RUNVOY_EXECUTION_ID.json && { echo no tickets for you; exit 1; }; exit 0'], user: \(hooks)}
                      - {name: page, event: on_break_glass, command: [/bin/sh, -c, '\(record)'], user: \(hooks)}

                """
    }

    func ctl(_ who: String, _ arguments: [String]) throws -> Harness.Output {
        try daemon.ctl(arguments, asUser: user(who))
    }

    /// What the hook of `event` wrote for execution `id` (waited for: post_exec runs after the client is told).
    func spooled(_ event: String, _ id: String, _ ext: String = "json") throws -> String {
        let path = "\(spool)/\(event)-\(id).\(ext)"
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty { return text }
            usleep(20_000)
        }
        throw HarnessError("no \(path)")
    }

    @Test func aPreExecVetoReachesTheClientCleanedAndTheRowEndsFailed() throws {
        let out = try ctl("alice", ["exec", "-e", "hooked", "--", "echo", "ran"])
        #expect(out.status != 0)
        #expect(!out.stdoutText.contains("ran"))
        #expect(
            out.stderrText.contains("pre_exec hook 'window' refused: [31mout]0;pwnedside the change window"),
            "\(out.stderrText)")
        #expect(
            !out.stderrText.contains("\u{1B}") && !out.stderrText.contains("\u{07}")
                && !out.stderrText.contains("second line"))
        let records = try Harness.journal([
            "RUNVOY_EVENT=hook_ran", "RUNVOY_HOOK=window", "RUNVOY_CALLER_USER=\(user("alice"))",
        ])
        let record = try #require(records.first)
        #expect(record["RUNVOY_OUTCOME"] == "veto" && record["RUNVOY_REFUSED"] == "1" && record["PRIORITY"] == "4")
        #expect(
            record["RUNVOY_REASON"]?.contains("\u{1B}") == false && record["RUNVOY_REASON"]?.contains("\n") == false)
        let id = try #require(record["RUNVOY_EXECUTION_ID"])
        // A denial record, and never an allowing one.
        #expect(try Harness.journal(["RUNVOY_EVENT=decision", "RUNVOY_EXECUTION_ID=\(id)"], seconds: 1).isEmpty)
        let denials = try Harness.journal(
            ["RUNVOY_EVENT=decision", "RUNVOY_DECISION=deny", "RUNVOY_CALLER_USER=\(user("alice"))"])
        #expect(denials.contains { $0["RUNVOY_REASON"]?.hasPrefix("hook_refused: pre_exec hook 'window'") == true })
        let status = try ctl("alice", ["status", "--json", id])
        #expect(status.stdoutText.contains(#""status":"failed""#), "\(status.stdoutText)")
        #expect(status.stdoutText.contains("hook_refused"), "\(status.stdoutText)")
        #expect(status.stdoutText.contains(#""outcome":"veto""#), "\(status.stdoutText)")
        // Secrets were never injected: no file, no value anywhere in what the hooks saw.
        #expect(!(try spooled("pre_exec", id)).contains(Self.secretValue))
        let human = try ctl("alice", ["status", id])
        #expect(human.stdoutText.contains("pre_exec window as \(user("hooks")): veto"), "\(human.stdoutText)")
        #expect(!human.stdoutText.contains("\u{1B}"))
    }

    @Test func theHookReadsTheRightJSONAsItsUserAndPostExecSeesTheResult() throws {
        FileManager.default.createFile(atPath: "\(spool)/window-open", contents: nil)
        defer { unlink("\(spool)/window-open") }
        let out = try ctl(
            "alice", ["exec", "-e", "hooked", "--env", "CALLER_VAR=\(Self.envValue)", "--", "sh", "-c", "exit 3"])
        #expect(out.status == 3, "\(out.stderrText)")
        let started = try Harness.journal(["RUNVOY_EVENT=execution_started", "RUNVOY_CALLER_USER=\(user("alice"))"])
        let id = try #require(started.last?["RUNVOY_EXECUTION_ID"])
        let pre = try spooled("pre_exec", id)
        #expect(try spooled("pre_exec", id, "user") == "\(user("hooks"))\n")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(pre.utf8)) as? [String: Any])
        #expect(
            json["version"] as? Int == 1 && json["event"] as? String == "pre_exec"
                && json["hook"] as? String == "record")
        let execution = try #require(json["execution"] as? [String: Any])
        #expect(execution["id"] as? String == id && execution["executor"] as? String == "hooked")
        #expect(execution["argv"] as? [String] == ["sh", "-c", "exit 3"])
        #expect(execution["env_keys"] as? [String] == ["CALLER_VAR"])
        #expect(execution["secrets"] as? [String] == ["hook-token"])
        #expect((json["caller"] as? [String: Any])?["user"] as? String == user("alice"))
        #expect(json["approval"] is NSNull && json["break_glass"] as? Bool == false && json["result"] == nil)
        #expect(!pre.contains(Self.secretValue) && !pre.contains(Self.envValue))
        let post = try spooled("post_exec", id)
        #expect(!post.contains(Self.secretValue) && !post.contains(Self.envValue))
        let result = try #require(
            (try JSONSerialization.jsonObject(with: Data(post.utf8)) as? [String: Any])?["result"] as? [String: Any])
        #expect(result["status"] as? String == "failed" && result["exit_code"] as? Int == 3, "\(post)")
    }

    @Test func aTimeoutRefusesUnderDenyAndLetsItRunUnderAllow() throws {
        let denied = try ctl("alice", ["exec", "-e", "slow-deny", "--", "/bin/echo", "denied-ran"])
        #expect(denied.status != 0 && !denied.stdoutText.contains("denied-ran"))
        #expect(
            denied.stderrText.contains("pre_exec hook 'slow' failed (on_error: deny): timed out after 1s"),
            "\(denied.stderrText)")
        let allowed = try ctl("alice", ["exec", "-e", "slow-allow", "--", "/bin/echo", "allowed-ran"])
        #expect(allowed.status == 0 && allowed.stdoutText.contains("allowed-ran"), "\(allowed.stderrText)")
        let records = try Harness.journal(
            ["RUNVOY_EVENT=hook_ran", "RUNVOY_HOOK=slow", "RUNVOY_CALLER_USER=\(user("alice"))"],
            until: { $0.count >= 2 })
        #expect(records.allSatisfy { $0["RUNVOY_TIMED_OUT"] == "1" && $0["RUNVOY_OUTCOME"] == "error" })
        #expect(Set(records.compactMap { $0["RUNVOY_REFUSED"] }) == ["0", "1"])
        // The fail-open is in the record that must be written, not only in the best-effort hook_ran (review of
        // hooks, L4); the refused one has no such field.
        let decisions = try Harness.journal(
            ["RUNVOY_EVENT=decision", "RUNVOY_EXECUTOR=slow-allow", "RUNVOY_CALLER_USER=\(user("alice"))"])
        #expect(decisions.map { $0["RUNVOY_HOOKS_FAILED_OPEN"] } == ["slow"], "\(decisions)")
        // The daemon still answers, and nothing of the hooks is left running.
        #expect(try ctl("alice", ["exec", "--", "/bin/true"]).status == 0)
        #expect(Self.noneLeft(uid: try #require(UserDatabase.user(named: user("hooks"))).uid))
    }

    @Test func approvalRequestsAndBreakGlassRunTheirHooks() throws {
        let vetoed = try ctl("alice", ["exec", "-e", "gated", "--detach", "--reason", "veto-me", "--", "echo", "x"])
        #expect(vetoed.status != 0)
        #expect(
            vetoed.stderrText.contains("on_approval_request hook 'ticket' refused: no tickets for you"),
            "\(vetoed.stderrText)")
        let out = try ctl("alice", ["exec", "-e", "gated", "--detach", "--reason", "INC-7", "--", "echo", "x"])
        #expect(out.status == 0, "\(out.stderrText)")
        let id = out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let ticket = try spooled("on_approval_request", id)
        let approval = try #require(
            (try JSONSerialization.jsonObject(with: Data(ticket.utf8)) as? [String: Any])?["approval"] as? [String: Any]
        )
        #expect(approval["id"] as? String == id && approval["required"] as? Int == 1)
        #expect((approval["digest"] as? String)?.hasPrefix("sha256:") == true)
        let glass = try ctl(
            "alice", ["exec", "-e", "gated", "--break-glass", "--reason", "fire", "--", "echo", "glass"])
        #expect(glass.status == 0 && glass.stdoutText.contains("glass"), "\(glass.stderrText)")
        let records = try Harness.journal(["RUNVOY_EVENT=break_glass", "RUNVOY_CALLER_USER=\(user("alice"))"])
        let glassID = try #require(records.first?["RUNVOY_APPROVAL_ID"])
        let paged = try spooled("on_break_glass", glassID)
        let page = try #require(try JSONSerialization.jsonObject(with: Data(paged.utf8)) as? [String: Any])
        #expect(page["break_glass"] as? Bool == true && page["reason"] as? String == "fire")
        let ran = try Harness.journal(["RUNVOY_EVENT=hook_ran", "RUNVOY_HOOK=page", "RUNVOY_APPROVAL_ID=\(glassID)"])
        #expect(ran.first?["RUNVOY_OUTCOME"] == "ok", "\(ran)")
        // The run's own pre_exec and post_exec hooks know it broke the glass, and an approved run who approved it.
        let glassPre = try #require(
            try JSONSerialization.jsonObject(with: Data(try spooled("pre_exec", glassID).utf8)) as? [String: Any])
        #expect(glassPre["break_glass"] as? Bool == true)
        #expect((glassPre["approval"] as? [String: Any])?["state"] as? String == "break_glass")
        #expect(try ctl("bob", ["approve", id, "--comment", "ok"]).status == 0)
        let post = try #require(
            try JSONSerialization.jsonObject(with: Data(try spooled("post_exec", id).utf8)) as? [String: Any])
        let approved = try #require(post["approval"] as? [String: Any])
        #expect(approved["state"] as? String == "approved" && approved["id"] as? String == id)
        let by = (approved["approved_by"] as? [[String: Any]])?.compactMap { $0["user"] as? String }
        #expect(by == [user("bob")], "\(approved)")
        #expect(post["break_glass"] as? Bool == false)
    }

    /// Whether no live process of `uid` is left (zombies waiting for init do not count), polled for a while:
    /// the kill has been sent, the kernel's delivery is what is waited for.
    static func noneLeft(uid: uid_t) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        repeat {
            let live = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { name in
                guard Int32(name) != nil,
                    let status = try? String(contentsOfFile: "/proc/\(name)/status", encoding: .utf8)
                else { return false }
                let lines = status.split(separator: "\n")
                let owner = lines.first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first
                let state = lines.first { $0.hasPrefix("State:") } ?? ""
                return owner == "\(uid)" && !state.contains("Z")
            }
            if live?.isEmpty == true { return true }
            usleep(20_000)
        } while Date() < deadline
        return false
    }

    /// Shutdown waits for a `post_exec` hook still running (within its timeout) before runvoyd exits.
    @Test func shutdownWaitsForPostExecHooks() throws {
        let out = try ctl("alice", ["exec", "-e", "slowpost", "--", "/bin/true"])
        #expect(out.status == 0, "\(out.stderrText)")
        let started = try Harness.journal(["RUNVOY_EVENT=execution_started", "RUNVOY_CALLER_USER=\(user("alice"))"])
        let id = try #require(started.last?["RUNVOY_EXECUTION_ID"])
        #expect(daemon.stop() == 0)
        let text = try? String(contentsOfFile: "\(spool)/late-\(id).json", encoding: .utf8)
        #expect(text?.contains(#""event":"post_exec""#) == true, "\(text ?? "no file")")
    }

    /// Nothing a caller sends reaches a hook's argv or environment: only the fixed environment and the config's argv.
    @Test func aCallerCannotReachTheHooksArgvOrEnvironment() throws {
        FileManager.default.createFile(atPath: "\(spool)/window-open", contents: nil)
        defer { unlink("\(spool)/window-open") }
        let out = try ctl(
            "alice",
            [
                "exec", "-e", "hooked", "--env", "CALLER_VAR=$(touch \(spool)/pwned)", "--", "echo",
                "; touch \(spool)/pwned2",
            ])
        #expect(out.status == 0, "\(out.stderrText)")
        let started = try Harness.journal(["RUNVOY_EVENT=execution_started", "RUNVOY_CALLER_USER=\(user("alice"))"])
        let id = try #require(started.last?["RUNVOY_EXECUTION_ID"])
        _ = try spooled("post_exec", id)
        #expect(!FileManager.default.fileExists(atPath: "\(spool)/pwned"))
        #expect(!FileManager.default.fileExists(atPath: "\(spool)/pwned2"))
    }
}
