import Foundation
import Glibc
import RunvoyKit
import Testing

/// Second review of the temporary grants (docs/REVIEW-grants2.md): proofs of the ways around the fixes of the
/// first review (G1: `grants.end_running`, input after a grant ends). Each test fails on the code under review and
/// states what should hold instead. Real Unix users made for the test (useradd; removed after): alice is an
/// administrator who grants; bob and carol are developers. `gated` (a `pre_exec` hook that waits for a file),
/// `prod` admit only root, so bob reaches them only through an executor grant; `guarded` admits bob, needs
/// carol's approval, and lets `operator` break glass.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class GrantsReview2Tests {
    let daemon: DaemonFixture
    let suffix: String
    func user(_ name: String) -> String { "rg2\(suffix)-\(name)" }
    var users: [String] { Self.names.map(user) }

    static let names = ["alice", "bob", "carol"]

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        for name in Self.names {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin rg2\(suffix)-\(name)")
        }
        daemon = try DaemonFixture(config: { Self.config(suffix: suffix, directory: $0) })
        chmod(daemon.directory, 0o755)
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
                    grants:
                      max_duration: 1h
                    roles:
                      admin: {users: [rg2\(suffix)-alice]}
                      developer: {users: [rg2\(suffix)-bob, rg2\(suffix)-carol]}

                    """)
                + """
                  gated:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: [root]}
                    commands: any
                    hooks:
                      - name: window
                        event: pre_exec
                        user: root
                        timeout: 5m
                        command: [/bin/sh, -c, "touch \(directory)/hook-started; while [ ! -e \(directory)/hook-go ]; do sleep 0.05; done"]
                  prod:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: [root]}
                    commands: any
                  guarded:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    allow: {users: [rg2\(suffix)-bob]}
                    approval: {count: 1, approvers: {users: [rg2\(suffix)-carol]}, expires: 10m}
                    break_glass: {roles: [operator]}
                    commands: any

                """
    }

    func ctl(_ who: String, _ arguments: [String]) throws -> Harness.Output {
        try daemon.ctl(arguments, asUser: user(who))
    }

    /// `runvoyctl ARGS` as `who` in the background, its stdout and stderr in files.
    func background(_ who: String, _ arguments: [String], name: String) throws -> (ChildProcess, () -> String) {
        let output = daemon.directory + "/\(name).out"
        let argv =
            [
                "/usr/sbin/runuser", "-u", user(who), "--", Harness.runvoyctl, arguments[0], "--socket",
                daemon.socketPath,
            ]
            + arguments.dropFirst()
        let process = try ChildProcess(argv, stdoutPath: output, stderrPath: output + ".err")
        return (process, { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" })
    }

    /// alice grants; the grant's id.
    func grant(_ arguments: [String], to who: String = "bob") throws -> String {
        let out = try ctl("alice", ["grant", "--json", "--user", user(who), "--reason", "INC-9: test"] + arguments)
        #expect(out.status == 0, "\(out.stderrText)")
        let reply = try JSONSerialization.jsonObject(with: Data(out.stdout)) as? [String: Any]
        return try #require((reply?["grant"] as? [String: Any])?["id"] as? String, "\(out.stdoutText)")
    }

    func status(_ execution: String) throws -> String {
        let out = try ctl("alice", ["status", "--json", execution])
        let info = try JSONSerialization.jsonObject(with: Data(out.stdout)) as? [String: Any]
        return info?["status"] as? String ?? "?"
    }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: daemon.directory + "/" + name) }
    func touch(_ name: String) { FileManager.default.createFile(atPath: daemon.directory + "/" + name, contents: nil) }

    // MARK: - R1: an execution still launching when its grant ends is never ended

    /// R1: `endRunning` looks only at `ExecutionManager.running`. An execution decided under the grant but still
    /// launching (its `pre_exec` hooks, secrets, audit, spawn; or, queued, from its turn on) when the grant is
    /// revoked or expires is not there yet, and nothing decides it again once it is: it runs to its end (no
    /// timeout by default) though its grant ended before it started. bob starts a command on `gated` (reached only
    /// through his grant), alice revokes the grant while the executor's `pre_exec` hook runs, then the hook lets
    /// it go: the command should be ended (or never start), as one that was running when the grant ended is.
    @Test func anExecutionStillLaunchingWhenItsGrantIsRevokedDoesNotOutliveIt() throws {
        let id = try grant(["--executor", "gated", "--for", "10m"])
        let (client, printed) = try background(
            "bob", ["exec", "--detach", "-e", "gated", "--", "sleep", "600"], name: "launching")
        defer { if client.isRunning { client.signal(SIGKILL) } }
        #expect(Harness.waitUntil(seconds: 60) { exists("hook-started") }, "the pre_exec hook did not start")
        #expect(try ctl("alice", ["revoke", id]).status == 0)
        // The grant has ended: bob may not start anything on `gated` any more.
        #expect(try ctl("bob", ["exec", "-e", "gated", "--", "true"]).status != 0)
        touch("hook-go")
        #expect(client.wait(seconds: 60) != nil, "the client did not return")
        let execution = printed().trimmingCharacters(in: .whitespacesAndNewlines)
        guard !execution.isEmpty else { return }  // refused at its start: what should hold
        // It started after its grant ended: it must not keep running on access bob no longer has.
        let ended = Harness.waitUntil(seconds: 20) { (try? self.status(execution)) != "running" }
        #expect(ended, "execution \(execution) started after grant \(id) was revoked and still runs")
        _ = try? ctl("alice", ["kill", execution])
    }

    // MARK: - R2: the kill waits on the database

    /// R2: `expireDue` ends the running executions only after `store.expireGrants` has written the expiry. While
    /// that write fails (a database error, a full disk, a lock held), it only tries again every second: the
    /// grant counts for nothing by the clock, yet what it admitted keeps running for as long as the fault lasts.
    /// (A revoke in the same position is refused as a whole and says so.) The fault is a trigger that aborts every
    /// update of the grants table. bob's command on `prod`, reached only through a grant that has expired, should
    /// be ended once the grant's time has passed, whatever the database does.
    @Test func anExpiredGrantEndsWhatItAdmittedEvenWhenItsExpiryCannotBeWritten() throws {
        let id = try grant(["--executor", "prod", "--for", "15s"])
        let out = try ctl("bob", ["exec", "--detach", "-e", "prod", "--", "sleep", "600"])
        #expect(out.status == 0, "\(out.stderrText)")
        let execution = out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? ctl("alice", ["kill", execution]) }
        #expect(try status(execution) == "running")
        try Self.sqlite(
            daemon.directory + "/state/history.sqlite",
            "CREATE TRIGGER review_boom BEFORE UPDATE ON grants BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
        // The grant's time passes: by the clock it gives nothing (bob is refused) ...
        #expect(
            Harness.waitUntil(seconds: 60) {
                (try? self.ctl("bob", ["exec", "-e", "prod", "--", "true"]))?.status != 0
            })
        // ... and the daemon has tried to end it, and failed, more than once.
        #expect(
            Harness.waitUntil(seconds: 60) {
                self.daemon.log.components(separatedBy: "cannot end the grants due").count > 2
            }, "\(daemon.log)")
        let ended = Harness.waitUntil(seconds: 20) { (try? self.status(execution)) != "running" }
        #expect(ended, "execution \(execution), admitted by grant \(id) which has expired, still runs")
        try Self.sqlite(daemon.directory + "/state/history.sqlite", "DROP TRIGGER review_boom")
    }

    static func sqlite(_ path: String, _ sql: String) throws {
        let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()\n"
        let out = try Harness.run(["/usr/bin/python3", "-c", script, path, sql])
        #expect(out.status == 0, "\(out.stderrText)")
    }

    // MARK: - R3: a role grant's view outlives it

    /// R3: `attach` (and `logs --follow`) checks that the caller may see the execution when it starts, never
    /// again. With a temporary `operator` (`view_all`) bob attaches to alice's commands; after the grant is
    /// revoked (a fresh attach is refused) the attach he opened goes on streaming their output until they end.
    /// It should end when the grant that let him see them does.
    @Test func anAttachOpenedUnderARoleGrantStopsShowingOthersOutputWhenTheGrantEnds() throws {
        let script =
            "echo before-revoke; while [ ! -e \(daemon.directory)/after ]; do sleep 0.05; done; "
            + "echo after-revoke; sleep 600"
        let started = try ctl("alice", ["exec", "--detach", "--", "/bin/sh", "-c", script])
        #expect(started.status == 0, "\(started.stderrText)")
        let execution = started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? ctl("alice", ["kill", execution]) }
        let refused = try ctl("bob", ["logs", execution])
        #expect(refused.status != 0, "a developer sees only his own executions")
        let id = try grant(["--role", "operator", "--for", "10m"])
        let (client, printed) = try background("bob", ["attach", execution], name: "watching")
        defer { if client.isRunning { client.signal(SIGKILL) } }
        #expect(Harness.waitUntil(seconds: 30) { printed().contains("before-revoke") }, "\(printed())")
        #expect(try ctl("alice", ["revoke", id]).status == 0)
        #expect(try ctl("bob", ["attach", execution]).status != 0, "a new attach is refused after the revoke")
        touch("after")
        #expect(
            Harness.waitUntil(seconds: 30) {
                (try? self.ctl("alice", ["logs", execution]))?.stdoutText.contains("after-revoke") == true
            })
        // Either the attach ended, or it showed what alice's command printed after bob lost the right to see it.
        #expect(Harness.waitUntil(seconds: 30) { !client.isRunning || printed().contains("after-revoke") })
        #expect(!printed().contains("after-revoke"), "bob still watches execution \(execution): \(printed())")
    }

    /// R3 for `logs --follow`: a follow bob opened under a temporary `operator` ends when the grant is revoked, with
    /// `permission_denied` saying why, audited as `request_denied`, before alice's later output reaches him.
    @Test func aFollowOpenedUnderARoleGrantEndsWhenTheGrantEnds() throws {
        let script =
            "echo before-revoke; while [ ! -e \(daemon.directory)/after-follow ]; do sleep 0.05; done; "
            + "echo after-revoke; sleep 600"
        let started = try ctl("alice", ["exec", "--detach", "--", "/bin/sh", "-c", script])
        #expect(started.status == 0, "\(started.stderrText)")
        let execution = started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? ctl("alice", ["kill", execution]) }
        let id = try grant(["--role", "operator", "--for", "10m"])
        let (client, printed) = try background("bob", ["logs", "-f", execution], name: "following")
        defer { if client.isRunning { client.signal(SIGKILL) } }
        #expect(Harness.waitUntil(seconds: 30) { printed().contains("before-revoke") }, "\(printed())")
        #expect(try ctl("alice", ["revoke", id]).status == 0)
        touch("after-follow")
        #expect(Harness.waitUntil(seconds: 30) { !client.isRunning }, "the follow goes on: \(printed())")
        #expect(!printed().contains("after-revoke"), "bob still follows execution \(execution): \(printed())")
        let told = (try? String(contentsOfFile: daemon.directory + "/following.out.err", encoding: .utf8)) ?? ""
        #expect(told.contains("may no longer see execution \(execution)"), "\(told)")
        let denied = try Harness.journal(
            ["RUNVOY_EVENT=request_denied", "RUNVOY_EXECUTION_ID=\(execution)", "RUNVOY_CALLER_USER=\(user("bob"))"])
        #expect(!denied.isEmpty)
    }

    // MARK: - R4: break-glass under a role grant is not decided again

    /// R4: the re-decision (`Grants.stillAllowed`) asks only `Authorizer.decide(...).allowed`, which is true for a
    /// command that needs approval. bob may use `guarded` only with carol's approval; a temporary `operator`
    /// lets him break glass (`break_glass: {roles: [operator]}`) and run at once. When the grant is revoked, his
    /// unapproved command is not ended (and, `guarded` still being his, it would take his input): what only the
    /// grant allowed (running without approval) outlives it.
    @Test func aBreakGlassRunThatOnlyARoleGrantAllowedEndsWithTheGrant() throws {
        let id = try grant(["--role", "operator", "--for", "10m"])
        let out = try ctl(
            "bob", ["exec", "--detach", "--break-glass", "--reason", "INC-4", "-e", "guarded", "--", "sleep", "600"])
        #expect(out.status == 0, "\(out.stderrText)")
        let execution = out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? ctl("alice", ["kill", execution]) }
        #expect(try status(execution) == "running")
        #expect(try ctl("alice", ["revoke", id]).status == 0)
        let again = try ctl(
            "bob", ["exec", "--detach", "--break-glass", "--reason", "INC-4", "-e", "guarded", "--", "true"])
        #expect(again.status != 0, "without the grant bob may not break glass: \(again.stdoutText)")
        let ended = Harness.waitUntil(seconds: 20) { (try? self.status(execution)) != "running" }
        #expect(ended, "break-glass execution \(execution), allowed only by grant \(id), still runs")
    }
}
