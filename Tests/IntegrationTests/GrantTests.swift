import Foundation
import Glibc
import RunvoyKit
import Testing

/// Temporary grants against a real runvoyd, as real Unix users made for the test (useradd; removed after): alice
/// is an administrator who grants; bob, carol and dave are developers. `prod` admits only root, so bob reaches it
/// only through a grant of the executor. A grant that expires while bob stays connected refuses his next request
/// on the same connection; a revoked grant ends at once; bob asks for one, carol approves, bob never may. Then the
/// attacks: grants to oneself, what is not requestable, longer than allowed, floods, restarts.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class GrantTests {
    let daemon: DaemonFixture
    let suffix: String
    func user(_ name: String) -> String { "rvg\(suffix)-\(name)" }
    var users: [String] { Self.names.map(user) }

    static let names = ["alice", "bob", "carol", "dave"]

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        for name in Self.names {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin rvg\(suffix)-\(name)")
        }
        daemon = try DaemonFixture(config: { Self.config(suffix: suffix, directory: $0) })
    }

    deinit {
        daemon.stop()
        for name in users { try? AuthorizationTests.sh("userdel \(name)") }
    }

    static func config(suffix: String, directory: String) -> String {
        DaemonFixture.standardConfig(directory: directory)
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n",
                with: """
                    approvals: {max_pending_per_user: 3}
                    grants:
                      max_duration: 1h
                      requestable_roles: [operator]
                      requestable_executors: [prod]
                      approval: {count: 1, approvers: {users: [rvg\(suffix)-bob, rvg\(suffix)-carol]}, expires: 10m}
                    roles:
                      admin: {users: [rvg\(suffix)-alice]}
                      developer: {users: [rvg\(suffix)-bob, rvg\(suffix)-carol, rvg\(suffix)-dave]}

                    """)
                + """
                  prod:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: [root]}
                    concurrency: 1
                    commands: any

                """
    }

    func ctl(_ who: String, _ arguments: [String]) throws -> Harness.Output {
        try daemon.ctl(arguments, asUser: user(who))
    }

    /// alice grants; the grant's id.
    func grant(_ arguments: [String], to who: String = "bob") throws -> String {
        let out = try ctl("alice", ["grant", "--json", "--user", user(who), "--reason", "INC-9: test"] + arguments)
        #expect(out.status == 0, "\(out.stderrText)")
        let reply = try JSONSerialization.jsonObject(with: Data(out.stdout)) as? [String: Any]
        return try #require((reply?["grant"] as? [String: Any])?["id"] as? String, "\(out.stdoutText)")
    }

    /// The `grant_changed` records of grant `id` once one says `change`.
    func changed(_ id: String, _ change: String, seconds: Double = 30) throws -> [[String: String]] {
        try Harness.journal(
            ["RUNVOY_EVENT=grant_changed", "RUNVOY_GRANT_ID=\(id)"],
            until: { $0.contains { $0["RUNVOY_CHANGE"] == change } }, seconds: seconds)
    }

    /// A client of bob's that stays connected: it runs `echo` on `prod` at once, and again once `go` exists; each
    /// reply is printed as a line of JSON.
    func heldConnection() throws -> (ChildProcess, go: String, printed: () -> String) {
        let script = daemon.directory + "/held.py"
        let go = daemon.directory + "/go"
        let output = daemon.directory + "/held.out"
        try #"""
        import json, os, socket, struct, sys, time
        def frame(obj):
            b = json.dumps(obj).encode(); return struct.pack(">I", len(b)) + b
        def reply(s, rid):
            while True:
                head = b""
                while len(head) < 4: head += s.recv(4 - len(head))
                n = struct.unpack(">I", head)[0] & 0x7fffffff
                body = b""
                while len(body) < n: body += s.recv(n - len(body))
                obj = json.loads(body)
                if obj.get("id") == rid and "event" not in obj: return obj
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
        run = {"argv": ["echo", "granted"], "executor": "prod", "detach": True}
        s.sendall(frame({"v": 1, "id": 1, "method": "exec", "params": run}))
        print(json.dumps(reply(s, 1)), flush=True)
        while not os.path.exists(sys.argv[2]): time.sleep(0.02)
        s.sendall(frame({"v": 1, "id": 2, "method": "exec", "params": run}))
        print(json.dumps(reply(s, 2)), flush=True)
        """#.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(daemon.directory, 0o755)
        chmod(script, 0o644)
        let process = try ChildProcess(
            ["/usr/sbin/runuser", "-u", user("bob"), "--", "/usr/bin/python3", script, daemon.socketPath, go],
            stdoutPath: output, stderrPath: output + ".err")
        return (process, go, { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" })
    }

    /// A client of bob's that runs an interactive command on `prod` (each line read is echoed as `got:LINE`),
    /// types `one`, and once `go` exists types `two`; it prints `got:two` if the command read it, or the error
    /// the daemon answered the input with.
    func interactiveSession() throws -> (ChildProcess, go: String, printed: () -> String) {
        let script = daemon.directory + "/typing.py"
        let go = daemon.directory + "/typing-go"
        let output = daemon.directory + "/typing.out"
        try #"""
        import base64, json, os, socket, struct, sys, time
        def frame(obj):
            b = json.dumps(obj).encode(); return struct.pack(">I", len(b)) + b
        def read(s):
            head = b""
            while len(head) < 4: head += s.recv(4 - len(head))
            n = struct.unpack(">I", head)[0] & 0x7fffffff
            body = b""
            while len(body) < n: body += s.recv(n - len(body))
            return json.loads(body)
        def until(s, line, rid):
            seen = ""
            while True:
                obj = read(s)
                if obj.get("event") == "output": seen += base64.b64decode(obj["data"]).decode()
                if line in seen: print(line, flush=True); return
                if obj.get("id") == rid and "error" in obj: print(json.dumps(obj), flush=True); return
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
        run = {"argv": ["sh", "-c", "while read l; do echo got:$l; done"], "executor": "prod", "stdin": True,
               "binary_output": False}
        s.sendall(frame({"v": 1, "id": 1, "method": "exec", "params": run}))
        s.sendall(frame({"v": 1, "id": 2, "method": "stdin", "params": {"data": "b25lCg=="}}))
        until(s, "got:one", 2)
        while not os.path.exists(sys.argv[2]): time.sleep(0.02)
        s.sendall(frame({"v": 1, "id": 3, "method": "stdin", "params": {"data": "dHdvCg=="}}))
        until(s, "got:two", 3)
        """#.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(daemon.directory, 0o755)
        chmod(script, 0o644)
        let process = try ChildProcess(
            ["/usr/sbin/runuser", "-u", user("bob"), "--", "/usr/bin/python3", script, daemon.socketPath, go],
            stdoutPath: output, stderrPath: output + ".err")
        return (process, go, { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" })
    }

    /// Rewrites the daemon's configuration file (`replacing` with `with`, which must be there) and reloads it.
    func reload(replacing: String, with: String) throws {
        let text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        let changed = text.replacingOccurrences(of: replacing, with: with)
        #expect(changed != text, "the configuration has no \(replacing)")
        try changed.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let out = try daemon.ctl(["reload"])
        #expect(out.status == 0, "\(out.stderrText)")
    }

    /// REVIEW-grants G1: input to a command started under an executor grant stops when the grant is revoked (the
    /// user may no longer use the executor): the running command, kept (`end_running: keep`), no longer reads
    /// what the user types.
    @Test func aRevokedExecutorGrantEndsTheInputOfTheCommandItStarted() throws {
        try reload(
            replacing: "  requestable_executors: [prod]\n",
            with: "  requestable_executors: [prod]\n  end_running: keep\n")
        let id = try grant(["--executor", "prod", "--for", "10m"])
        let (session, go, printed) = try interactiveSession()
        defer { session.signal(SIGKILL) }
        #expect(Harness.waitUntil { printed().contains("got:one") }, "\(printed())")
        #expect(try ctl("alice", ["revoke", id]).status == 0)
        FileManager.default.createFile(atPath: go, contents: nil)
        #expect(Harness.waitUntil { printed().split(separator: "\n").count >= 2 }, "\(printed())")
        #expect(!printed().contains("got:two"), "\(printed())")
        #expect(printed().contains("permission_denied"), "\(printed())")
    }

    /// REVIEW-grants G1: what an executor grant admitted that still runs when the grant is revoked is terminated
    /// (`grants.end_running: kill`, the default) and audited; what bob may still run is left alone.
    @Test func aRevokedExecutorGrantEndsWhatItAdmittedThatStillRuns() throws {
        let id = try grant(["--executor", "prod", "--for", "10m"])
        func start(_ executor: String) throws -> String {
            let out = try ctl("bob", ["exec", "--detach", "-e", executor, "--", "sleep", "600"])
            #expect(out.status == 0, "\(out.stderrText)")
            return out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let onProd = try start("prod")
        let elsewhere = try start("default")
        func status(_ execution: String) throws -> String {
            let out = try ctl("alice", ["status", "--json", execution])
            let info = try JSONSerialization.jsonObject(with: Data(out.stdout)) as? [String: Any]
            return info?["status"] as? String ?? "?"
        }
        #expect(try status(onProd) == "running")
        #expect(try ctl("alice", ["revoke", id]).status == 0)
        let killed = try Harness.journal([
            "RUNVOY_EVENT=execution_kill", "RUNVOY_EXECUTION_ID=\(onProd)", "RUNVOY_REASON=grant_ended",
        ])
        #expect(killed.first?["RUNVOY_GRANT_ID"] == id && killed.first?["RUNVOY_CHANGE"] == "revoked")
        #expect(Harness.waitUntil { (try? status(onProd)) != "running" })
        #expect(try status(elsewhere) == "running")
        #expect(try ctl("alice", ["kill", elsewhere]).status == 0)
    }

    @Test func aGrantThatExpiresWhileTheUserStaysConnectedRefusesTheSameConnection() throws {
        let refused = try ctl("bob", ["exec", "-e", "prod", "--", "echo", "x"])
        #expect(refused.status != 0, "prod admits only root before the grant")
        let id = try grant(["--executor", "prod", "--for", "8s"])
        let shown = try ctl("bob", ["capabilities"])
        #expect(shown.stdoutText.contains("temporary: executor prod until"), "\(shown.stdoutText)")
        #expect(shown.stdoutText.contains("executor prod runs as nobody"), "\(shown.stdoutText)")
        let (client, go, printed) = try heldConnection()
        #expect(Harness.waitUntil(seconds: 30) { printed().contains("\n") }, "\(printed())")
        #expect(printed().contains("\"execution_id\""), "the first exec, under the grant: \(printed())")
        // Ended by the daemon's timer, without a reload: its record is the signal.
        let records = try changed(id, "expired")
        let expired = try #require(records.first { $0["RUNVOY_CHANGE"] == "expired" })
        #expect(expired["RUNVOY_GRANTS_LOST"]?.contains("prod") == true, "\(expired)")
        #expect(expired["MESSAGE_ID"] == "854e8e351e8a479a83c315bca97cf176")
        FileManager.default.createFile(atPath: go, contents: nil)
        client.wait()
        let lines = printed().split(separator: "\n")
        #expect(lines.count == 2, "\(printed())")
        #expect(lines.last?.contains("permission_denied") == true, "the same connection after the grant: \(printed())")
        #expect(try ctl("bob", ["capabilities"]).stdoutText.contains("temporary") == false)
    }

    @Test func aRevokedGrantEndsAtOnceAndIsAuditedWithWhatWasLost() throws {
        let id = try grant(["--role", "operator", "--for", "1h"])
        let users = try ctl("bob", ["users"])
        #expect(users.status == 0, "an operator reads users: \(users.stderrText)")
        #expect(users.stdoutText.contains(id) && users.stdoutText.contains("role operator"), "\(users.stdoutText)")
        let revoked = try ctl("alice", ["revoke", id, "--comment", "done early"])
        #expect(revoked.status == 0, "\(revoked.stderrText)")
        let after = try ctl("bob", ["users"])
        #expect(after.status != 0 && after.stderrText.contains("users_read"), "\(after.stderrText)")
        let record = try #require(try changed(id, "revoked").first { $0["RUNVOY_CHANGE"] == "revoked" })
        #expect(record["RUNVOY_COMMENT"] == "done early" && record["RUNVOY_ROLE"] == "operator", "\(record)")
        let again = try ctl("alice", ["revoke", id])
        #expect(again.status != 0 && again.stderrText.contains("already ended"), "\(again.stderrText)")
    }

    @Test func aRequestedGrantIsMadeOnceAnotherApprovesAndNeverByItsRequester() throws {
        let asked = try ctl(
            "bob", ["request-grant", "--json", "--detach", "--executor", "prod", "--for", "10m", "--reason", "INC-3"])
        #expect(asked.status == 0, "\(asked.stderrText)")
        let reply = try JSONSerialization.jsonObject(with: Data(asked.stdout)) as? [String: Any]
        let id = try #require(reply?["id"] as? String, "\(asked.stdoutText)")
        let listed = try ctl("carol", ["approvals"])
        #expect(listed.stdoutText.contains("temporary grant of executor prod for 10m"), "\(listed.stdoutText)")
        let own = try ctl("bob", ["approve", id])
        #expect(own.status != 0 && own.stderrText.contains("your own request"), "\(own.stderrText)")
        #expect(try ctl("bob", ["exec", "-e", "prod", "--", "echo", "x"]).status != 0)
        let approved = try ctl("carol", ["approve", id])
        #expect(approved.status == 0, "\(approved.stderrText)")
        let made = try Harness.journal(
            ["RUNVOY_EVENT=grant_changed", "RUNVOY_APPROVAL_ID=\(id)"], seconds: 30)
        #expect(made.first?["RUNVOY_CHANGE"] == "created" && made.first?["RUNVOY_EXECUTOR"] == "prod", "\(made)")
        let run = try ctl("bob", ["exec", "-e", "prod", "--", "echo", "granted"])
        #expect(run.status == 0 && run.stdoutText == "granted\n", "\(run.stderrText)")
        let decided = try Harness.journal(
            ["RUNVOY_EVENT=approval_decided", "RUNVOY_APPROVAL_ID=\(id)"], until: { $0.count >= 2 })
        #expect(decided.map { $0["RUNVOY_STATE"] } == ["approved", "fulfilled"], "\(decided)")
    }

    @Test func aWaitingRequestGetsItsGrantInTheReply() throws {
        let waiting = try daemon.startCtl(
            ["request-grant", "--role", "operator", "--for", "5m", "--reason", "INC-4"])
        // startCtl runs as root, who may ask too (and never approve their own).
        #expect(Harness.waitUntil(seconds: 30) { waiting.stderr.contains("waiting for approval") }, "\(waiting.stderr)")
        let listed = try ctl("carol", ["approvals", "--json"])
        let requests = try JSONSerialization.jsonObject(with: Data(listed.stdout)) as? [String: Any]
        let id = try #require(
            ((requests?["requests"] as? [[String: Any]])?.first { $0["kind"] as? String == "grant" })?["id"] as? String)
        #expect(try ctl("carol", ["approve", id]).status == 0)
        waiting.process.wait()
        #expect(waiting.stdout.contains("role operator for root"), "\(waiting.stdout) \(waiting.stderr)")
    }

    /// Approved after a reload took its executor off the requestable list: no grant is made (the request is
    /// invalidated), and bob still may not use the executor.
    @Test func aRequestApprovedAfterItsSubjectStoppedBeingRequestableMakesNoGrant() throws {
        let asked = try ctl(
            "bob", ["request-grant", "--json", "--detach", "--executor", "prod", "--for", "10m", "--reason", "INC-5"])
        let reply = try JSONSerialization.jsonObject(with: Data(asked.stdout)) as? [String: Any]
        let id = try #require(reply?["id"] as? String, "\(asked.stdoutText) \(asked.stderrText)")
        let text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
            .replacingOccurrences(of: "requestable_executors: [prod]", with: "requestable_executors: []")
        try text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let reload = try daemon.ctl(["reload"])
        #expect(reload.status == 0, "\(reload.stderrText)")
        #expect(try ctl("carol", ["approve", id]).status == 0)
        let decided = try Harness.journal(
            ["RUNVOY_EVENT=approval_decided", "RUNVOY_APPROVAL_ID=\(id)"],
            until: { $0.contains { $0["RUNVOY_STATE"] == "invalidated" } }, seconds: 30)
        #expect(decided.contains { $0["RUNVOY_STATE"] == "invalidated" }, "\(decided)")
        #expect(try ctl("bob", ["exec", "-e", "prod", "--", "true"]).status != 0)
        #expect(!(try ctl("alice", ["users"]).stdoutText.contains("executor prod")))
    }

    /// A waiting request that is denied tells its client why, and makes nothing.
    @Test func aDeniedRequestTellsItsWaitingClient() throws {
        let waiting = try daemon.startCtl(["request-grant", "--role", "operator", "--for", "5m", "--reason", "INC-6"])
        #expect(Harness.waitUntil(seconds: 30) { waiting.stderr.contains("waiting for approval") }, "\(waiting.stderr)")
        let listed = try ctl("carol", ["approvals", "--json"])
        let requests = try JSONSerialization.jsonObject(with: Data(listed.stdout)) as? [String: Any]
        let id = try #require(
            ((requests?["requests"] as? [[String: Any]])?.first { $0["kind"] as? String == "grant" })?["id"]
                as? String)
        #expect(try ctl("carol", ["deny", id, "--comment", "not now"]).status == 0)
        let status = waiting.process.wait(seconds: 30)
        #expect(status != nil && status != 0, "\(waiting.stdout)")
        #expect(waiting.stderr.contains("denied"), "\(waiting.stderr)")
    }

    // MARK: - Attackers

    @Test func aDeveloperGrantsNothingToThemselvesOrOthers() throws {
        for target in ["dave", "bob"] {
            let out = try ctl(
                "dave", ["grant", "--user", user(target), "--role", "admin", "--for", "1h", "--reason", "x"])
            #expect(out.status != 0 && out.stderrText.contains("grants_manage"), "\(out.stderrText)")
        }
        let revoke = try ctl("dave", ["revoke", "anything"])
        #expect(revoke.status != 0 && revoke.stderrText.contains("grants_manage"), "\(revoke.stderrText)")
        let denied = try Harness.journal(
            ["RUNVOY_EVENT=request_denied", "RUNVOY_CALLER_USER=\(user("dave"))", "RUNVOY_METHOD=grant"])
        #expect(!denied.isEmpty)
    }

    /// A temporary administrator makes no grants (review 3 of grants): dave, admin for ten minutes, can neither
    /// renew his own grant nor pass the role on to bob to outlast it. Refused and audited; a revoke is still his.
    @Test func aTemporaryAdministratorMakesNoGrants() throws {
        let id = try grant(["--role", "admin", "--for", "10m"], to: "dave")
        defer { _ = try? ctl("alice", ["revoke", id]) }
        for target in ["dave", "bob"] {
            let out = try ctl(
                "dave", ["grant", "--user", user(target), "--role", "admin", "--for", "1h", "--reason", "renew"])
            #expect(out.status != 0, "\(out.stdoutText)")
            #expect(out.stderrText.contains("only through a temporary grant"), "\(out.stderrText)")
        }
        let denied = try Harness.journal(
            ["RUNVOY_EVENT=request_denied", "RUNVOY_CALLER_USER=\(user("dave"))", "RUNVOY_METHOD=grant"],
            until: { $0.contains { $0["RUNVOY_REASON"]?.contains("temporary grant") == true } })
        #expect(denied.contains { $0["RUNVOY_REASON"]?.contains("temporary grant") == true }, "\(denied)")
    }

    @Test func onlyWhatIsRequestableMayBeAskedForAndNoLongerThanAllowed() throws {
        let admin = try ctl("bob", ["request-grant", "--role", "admin", "--for", "10m", "--reason", "x", "--detach"])
        #expect(admin.status != 0 && admin.stderrText.contains("may not be asked for"), "\(admin.stderrText)")
        let viewer = try ctl("bob", ["request-grant", "--role", "viewer", "--for", "10m", "--reason", "x", "--detach"])
        #expect(viewer.status != 0, "\(viewer.stderrText)")
        let other = try ctl(
            "bob", ["request-grant", "--executor", "root", "--for", "10m", "--reason", "x", "--detach"])
        #expect(other.status != 0 && other.stderrText.contains("may not be asked for"), "\(other.stderrText)")
        let long = try ctl("bob", ["request-grant", "--role", "operator", "--for", "2h", "--reason", "x", "--detach"])
        #expect(long.status != 0 && long.stderrText.contains("max_duration"), "\(long.stderrText)")
        let longGrant = try ctl(
            "alice", ["grant", "--user", user("bob"), "--role", "operator", "--for", "61m", "--reason", "x"])
        #expect(longGrant.status != 0 && longGrant.stderrText.contains("max_duration"), "\(longGrant.stderrText)")
        // Past what a duration may be: refused before anything is sent (and the daemon bounds for_ms itself).
        let overflow = try ctl(
            "alice", ["grant", "--user", user("bob"), "--role", "operator", "--for", "99999999999d", "--reason", "x"])
        #expect(overflow.status != 0, "\(overflow.stderrText)")
        let noReason = try ctl(
            "bob", ["request-grant", "--role", "operator", "--for", "10m", "--reason", " ", "--detach"])
        #expect(noReason.status != 0 && noReason.stderrText.contains("reason"), "\(noReason.stderrText)")
        #expect(try ctl("carol", ["approvals", "--json"]).stdoutText.contains("\"kind\":\"grant\"") == false)
    }

    @Test func aFloodOfRequestsMeetsTheApprovalsBounds() throws {
        for index in 0..<3 {
            let out = try ctl(
                "dave",
                ["request-grant", "--role", "operator", "--for", "10m", "--reason", "flood \(index)", "--detach"])
            #expect(out.status == 0, "\(out.stderrText)")
        }
        let fourth = try ctl(
            "dave", ["request-grant", "--role", "operator", "--for", "10m", "--reason", "x", "--detach"])
        #expect(fourth.status != 0 && fourth.stderrText.contains("busy"), "\(fourth.stderrText)")
        // Its requester withdraws one (others may not, nor learn of it), which makes room for another.
        let listed = try ctl("carol", ["approvals", "--json"])
        let requests = try JSONSerialization.jsonObject(with: Data(listed.stdout)) as? [String: Any]
        let id = try #require(
            ((requests?["requests"] as? [[String: Any]])?.first { $0["kind"] as? String == "grant" })?["id"]
                as? String)
        let stranger = try ctl("bob", ["cancel", id])
        #expect(stranger.status != 0 && stranger.stderrText.contains("no execution"), "\(stranger.stderrText)")
        let withdrawn = try ctl("dave", ["cancel", id])
        #expect(withdrawn.status == 0, "\(withdrawn.stderrText)")
        let late = try ctl("carol", ["approve", id])
        #expect(late.status != 0, "\(late.stdoutText)")
        let fifth = try ctl(
            "dave", ["request-grant", "--role", "operator", "--for", "10m", "--reason", "x", "--detach"])
        #expect(fifth.status == 0, "\(fifth.stderrText)")
    }

    /// Revoke against use: bob's command waits in the queue under his grant; the grant is revoked; when its turn
    /// comes it is decided again without the grant and never runs.
    @Test func aCommandQueuedUnderARevokedGrantNeverRuns() throws {
        let busy = try daemon.ctl(["exec", "-e", "prod", "--detach", "--", "sleep", "60"])
        #expect(busy.status == 0, "\(busy.stderrText)")
        let holder = busy.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        let id = try grant(["--executor", "prod", "--for", "1h"])
        let output = daemon.directory + "/queued.out"
        let waiting = try ChildProcess(
            [
                "/usr/sbin/runuser", "-u", user("bob"), "--", Harness.runvoyctl, "exec", "--socket",
                daemon.socketPath, "-e", "prod", "--", "echo", "queued-run",
            ], stdoutPath: output, stderrPath: output + ".err")
        _ = try Harness.journal(["RUNVOY_EVENT=execution_queued", "RUNVOY_CALLER_USER=\(user("bob"))"], seconds: 30)
        #expect(try ctl("alice", ["revoke", id]).status == 0)
        #expect(try daemon.ctl(["kill", holder]).status == 0)
        let status = waiting.wait(seconds: 60)
        let stderr = (try? String(contentsOfFile: output + ".err", encoding: .utf8)) ?? ""
        let stdout = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(status != nil && status != 0, "\(stdout) \(stderr)")
        #expect(!stdout.contains("queued-run"), "\(stdout)")
        #expect(stderr.contains("may not use executor 'prod'"), "\(stderr)")
    }

    @Test func aGrantSurvivesARestartAndOneDueMeanwhileEndsAtTheNextStart() throws {
        let kept = try grant(["--role", "operator", "--for", "1h"])
        let short = try grant(["--executor", "prod", "--for", "2s"], to: "carol")
        daemon.stop()
        // The short one's time passes while no daemon runs (waiting for the clock, which is what is tested).
        let expiresAt = Date().addingTimeInterval(2.5)
        while Date() < expiresAt { usleep(100_000) }
        let state = daemon.directory + "/state"
        let second = try DaemonFixture(config: { directory in
            Self.config(suffix: self.suffix, directory: directory)
                .replacingOccurrences(of: "state_directory: \(directory)/state", with: "state_directory: \(state)")
        })
        defer { second.stop() }
        let users = try second.ctl(["users"], asUser: user("bob"))
        #expect(users.status == 0 && users.stdoutText.contains(kept), "\(users.stdoutText) \(users.stderrText)")
        #expect(!users.stdoutText.contains(short), "\(users.stdoutText)")
        let ended = try changed(short, "expired")
        #expect(ended.contains { $0["RUNVOY_CHANGE"] == "expired" }, "\(ended)")
        #expect(try second.ctl(["exec", "-e", "prod", "--", "true"], asUser: user("carol")).status != 0)
    }
}
