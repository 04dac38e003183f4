import Foundation
import Glibc
import RunvoyKit
import Testing

/// The queue against a real runvoyd, as three real Unix users made for the test (useradd; removed after)
/// contending for an executor with `concurrency: 1`: waiters run first come first served within a user and
/// round-robin across users, hear where they stand, give up on `--no-wait` and `--wait-timeout`, leave on
/// `cancel` and when their client goes, and a daemon that stops with waiters tells each one and runs none of them.
/// Needs root (useradd, setpriv) and a journal.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class QueueTests {
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var users: [String] { ["rvq\(suffix)-a", "rvq\(suffix)-b", "rvq\(suffix)-c"] }
    var none: String { "rvq\(suffix)-none" }
    /// Where the commands leave their marks (writable by nobody, who runs them).
    let marks: String

    init() throws {
        marks = try Harness.makeTemporaryDirectory()
        chmod(marks, 0o777)
        for user in users + [none] {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
    }

    deinit {
        for user in users + [none] { try? AuthorizationTests.sh("userdel \(user)") }
        try? FileManager.default.removeItem(atPath: marks)
    }

    /// A daemon where the three users are developers, `none` has no role, and `serial` runs one at a time.
    func daemon() throws -> DaemonFixture {
        let developers = users.joined(separator: ", ")
        return try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(
                directory: directory,
                extra: """
                      serial:
                        run_as: {user: nobody, group: nogroup}
                        environment: {PATH: /usr/bin:/bin}
                        concurrency: 1
                        allow: {users: ["*"]}
                        commands: any
                    """
            )
            .replacingOccurrences(
                of: "roles:\n  developer: {users: [\"*\"]}\n", with: "roles:\n  developer: {users: [\(developers)]}\n")
        })
    }

    /// runvoyctl in the background as `user` (root when nil), its output in files; setpriv execs it, so a
    /// signal sent to the process reaches runvoyctl itself.
    final class Client {
        let process: ChildProcess
        let base: String
        init(_ daemon: DaemonFixture, _ user: String?, _ arguments: [String]) throws {
            base = daemon.directory + "/client-\(UInt32.random(in: 0..<UInt32.max))"
            var argv = [Harness.runvoyctl, arguments[0], "--socket", daemon.socketPath] + arguments.dropFirst()
            if let user {
                argv = ["/usr/bin/setpriv", "--reuid", user, "--regid", "nogroup", "--clear-groups"] + argv
            }
            process = try ChildProcess(argv, stdoutPath: base + ".out", stderrPath: base + ".err")
        }
        var stderr: String { (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "" }
        var stdout: String { (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "" }

        /// Waits until the daemon has queued it, and returns its execution id.
        func queuedID() throws -> String {
            guard Harness.waitUntil(seconds: 30, { stderr.contains("waits in the queue") }) else {
                throw HarnessError("not queued; stderr: \(stderr)")
            }
            return try #require(ExecTests.executionID(stderr))
        }

        func finish() -> Int32 { process.wait(seconds: 60) ?? -1 }
    }

    /// Starts a command on `serial` that runs until `go` exists; returns its id.
    func block(_ daemon: DaemonFixture, go: String) throws -> String {
        let out = try daemon.ctl([
            "exec", "-e", "serial", "--detach", "--", "/bin/sh", "-c", "while [ ! -e \(go) ]; do sleep 0.05; done",
        ])
        #expect(out.status == 0, "\(out.stderrText)")
        return out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A waiter on `serial` that appends `tag` to the marks file when it runs.
    func waiter(_ daemon: DaemonFixture, _ user: String?, _ tag: String, _ options: [String] = []) throws -> Client {
        try Client(
            daemon, user,
            ["exec", "-e", "serial"] + options + ["--", "/bin/sh", "-c", "echo \(tag) >> \(marks)/ran"])
    }

    var ran: [String] {
        ((try? String(contentsOfFile: marks + "/ran", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func status(_ daemon: DaemonFixture, _ id: String) throws -> String {
        try daemon.ctl(["status", id]).stdoutText
    }

    @Test func waitersRunFirstComeFirstServedPerUserAndRoundRobinAcrossUsers() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let go = marks + "/go"
        let blocker = try block(daemon, go: go)
        let (a, b, c) = (users[0], users[1], users[2])
        var clients: [Client] = []
        var ids: [String] = []
        for (user, tag) in [(a, "a1"), (a, "a2"), (a, "a3"), (b, "b1"), (b, "b2"), (c, "c1")] {
            // A detached one waits the same way, and its id is printed once it has started.
            let client = try waiter(daemon, user, tag, tag == "b2" ? ["--detach"] : [])
            ids.append(try client.queuedID())
            clients.append(client)
        }
        // The last one hears its place, what it waits for and who holds it.
        let last = clients[5].stderr
        #expect(
            // root's execution, to a developer (no `view_all`): held, and for how long, but not whose nor which.
            last.contains("queued: 6th for serial (concurrency 1); running: another user's execution for"),
            "\(last)")
        #expect(!last.contains(blocker.prefix(8) + "…"), "\(last)")
        #expect(try status(daemon, ids[0]).contains("queued"))
        let listed = try daemon.ctl(["list", "--status", "queued"]).stdoutText
        #expect(ids.allSatisfy { listed.contains($0.prefix(12)) }, "\(listed)")
        FileManager.default.createFile(atPath: go, contents: nil)
        for client in clients { #expect(client.finish() == 0, "\(client.stderr)") }
        #expect(clients[4].stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ids[4])
        // Finished in turn; the detached one may still be writing its mark when its client returns.
        #expect(Harness.waitUntil(seconds: 30) { ran.count == 6 })
        // uids grow in the order the users were made: a, b, c.
        #expect(ran == ["a1", "b1", "c1", "a2", "b2", "a3"])
        for id in ids { #expect(try status(daemon, id).contains("succeeded")) }
    }

    /// A user's execution that waits for `serial` (`concurrency: 1`, held by root) does not hold up that user's
    /// executions on another executor: they start at once, `--no-wait` too. (Before, only each user's oldest
    /// waiter was considered: the second was refused with "executor 'default' is running its limit of 0
    /// (concurrency)".)
    @Test func aWaiterDoesNotHoldUpItsUsersExecutionsOnOtherExecutors() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let go = marks + "/go"
        _ = try block(daemon, go: go)
        let first = try waiter(daemon, users[0], "a1")
        _ = try first.queuedID()
        let other = try daemon.ctl(["exec", "--no-wait", "-e", "default", "--", "true"], asUser: users[0])
        #expect(other.status == 0, "\(other.stderrText)")
        #expect(!other.stderrText.contains("limit of 0"), "\(other.stderrText)")
        // One for the same executor still waits behind it, and is told what it really waits for.
        let same = try daemon.ctl(["exec", "--no-wait", "-e", "serial", "--", "true"], asUser: users[0])
        #expect(same.status == 125 && same.stderrText.contains("running its limit of 1"), "\(same.stderrText)")
        FileManager.default.createFile(atPath: go, contents: nil)
        #expect(first.finish() == 0, "\(first.stderr)")
    }

    /// A waiter is decided again when its turn comes: one whose caller lost the role while it waited (a reload)
    /// is refused `permission_denied` and never runs. (It ran under the policy it was queued with before.)
    @Test func aWaiterWhoseAccessWasRevokedWhileItWaitedNeverRuns() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let go = marks + "/go"
        _ = try block(daemon, go: go)
        let user = users[0]
        let client = try waiter(daemon, user, "revoked")
        _ = try client.queuedID()
        var text = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        let before = text
        text = text.replacingOccurrences(of: "developer: {users: [\(user), ", with: "developer: {users: [")
        #expect(text != before)
        try text.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        #expect(try daemon.ctl(["reload"]).status == 0)
        FileManager.default.createFile(atPath: go, contents: nil)
        #expect(client.finish() == 125, "\(client.stderr)")
        #expect(client.stderr.contains("[permission_denied]"), "\(client.stderr)")
        #expect(!ran.contains("revoked"), "the revoked waiter ran")
    }

    /// Complete requests sent behind an `exec` that waits in the queue wait in the connection's inbound buffer:
    /// it holds two frames, not sixteen (16 waiting connections of one user, each sending 1 MiB requests until the
    /// daemon stops reading, took runvoyd from 45 MB to 298 MB; now they stay under 100 MB more).
    @Test func requestsSentBehindAWaitingExecAreBoundedInMemory() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        _ = try block(daemon, go: marks + "/go")
        func anonymousKiB() -> Int {
            let text = (try? String(contentsOfFile: "/proc/\(daemon.process.pid)/status", encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix("RssAnon:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        let before = anonymousKiB()
        let script = """
            import socket,struct,json,sys
            path=sys.argv[1]
            def frame(o):
              p=json.dumps(o).encode(); return struct.pack(">I",len(p))+p
            big=frame({"v":1,"id":2,"method":"ping","params":{"pad":"x"*1040000}})
            socks=[]
            for i in range(16):
              s=socket.socket(socket.AF_UNIX); s.connect(path)
              s.sendall(frame({"v":1,"id":1,"method":"exec","params":{"argv":["/bin/true"],"executor":"serial","wait":True}}))
              s.recv(65536)
              socks.append(s)
            total=0
            for s in socks:
              s.settimeout(1)
              for j in range(20):
                try:
                  s.sendall(big); total+=len(big)
                except Exception:
                  break
            print("sent", total, flush=True)
            sys.stdin.read()
            """
        let out = daemon.directory + "/pileup"
        let client = try ChildProcess(
            [
                "/usr/sbin/runuser", "-u", users[0], "--", "/usr/bin/python3", "-c", script, daemon.socketPath,
            ], stdoutPath: out + ".out", stderrPath: out + ".err")
        defer {
            client.signal(SIGKILL)
            _ = client.wait(seconds: 10)
        }
        let sent = Harness.waitUntil(seconds: 120) {
            ((try? String(contentsOfFile: out + ".out", encoding: .utf8)) ?? "").contains("sent")
        }
        #expect(sent, "\((try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")")
        let growth = anonymousKiB() - before
        #expect(growth < 100 << 10, "runvoyd grew by \(growth) KiB")
    }

    @Test func noWaitFailsAtOnceAndWaitTimeoutGivesUp() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let go = marks + "/go"
        let blocker = try block(daemon, go: go)
        let refused = try daemon.ctl(["exec", "-e", "serial", "--no-wait", "--", "true"], asUser: users[0])
        #expect(refused.status == 125)
        // The blocker is root's: a developer is told it is another user's execution, not which.
        #expect(
            refused.stderrText.contains("[busy]") && refused.stderrText.contains("concurrency")
                && refused.stderrText.contains("another user's execution") && !refused.stderrText.contains(blocker),
            "\(refused.stderrText)")
        let timedOut = try daemon.ctl(
            ["exec", "-e", "serial", "--wait-timeout", "1s", "--", "/bin/sh", "-c", "echo late >> \(marks)/ran"],
            asUser: users[1])
        #expect(timedOut.status == 125)
        #expect(timedOut.stderrText.contains("[queue_timeout]"), "\(timedOut.stderrText)")
        let id = try #require(ExecTests.executionID(timedOut.stderrText))
        #expect(try status(daemon, id).contains("cancelled"))
        FileManager.default.createFile(atPath: go, contents: nil)
        let after = try daemon.ctl(["exec", "-e", "serial", "--", "/bin/sh", "-c", "echo next >> \(marks)/ran"])
        #expect(after.status == 0, "\(after.stderrText)")
        #expect(ran == ["next"])
    }

    @Test func ownersAndAdministratorsCancelAWaiterOthersAreRefused() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let go = marks + "/go"
        _ = try block(daemon, go: go)
        let first = try waiter(daemon, users[0], "first")
        let firstID = try first.queuedID()
        let second = try waiter(daemon, users[0], "second")
        let secondID = try second.queuedID()
        // Another developer may not see it; a member of the socket's group with no role may do nothing.
        let other = try daemon.ctl(["cancel", firstID], asUser: users[1])
        #expect(other.status != 0 && other.stderrText.contains("no_such_execution"), "\(other.stderrText)")
        let roleless = try daemon.ctl(["cancel", firstID], asUser: none)
        #expect(roleless.status != 0 && roleless.stderrText.contains("permission_denied"), "\(roleless.stderrText)")
        #expect(try status(daemon, firstID).contains("queued"))
        // kill is for what runs.
        let kill = try daemon.ctl(["kill", firstID])
        #expect(kill.status != 0 && kill.stderrText.contains("use cancel"), "\(kill.stderrText)")
        // The owner may.
        let own = try daemon.ctl(["cancel", firstID], asUser: users[0])
        #expect(own.status == 0, "\(own.stderrText)")
        #expect(first.finish() == 125)
        #expect(
            first.stderr.contains("[cancelled]") && first.stderr.contains("cancelled by \(users[0])"), "\(first.stderr)"
        )
        // An administrator may cancel anyone's.
        let admin = try daemon.ctl(["cancel", secondID])
        #expect(admin.status == 0, "\(admin.stderrText)")
        #expect(second.finish() == 125)
        #expect(try daemon.ctl(["cancel", secondID]).stderrText.contains("invalid_state"))
        FileManager.default.createFile(atPath: go, contents: nil)
        #expect(try daemon.ctl(["exec", "-e", "serial", "--", "true"]).status == 0)
        #expect(ran.isEmpty, "\(ran)")
        for id in [firstID, secondID] { #expect(try status(daemon, id).contains("cancelled")) }
    }

    @Test func aClientThatGoesAwayLeavesTheQueue() throws {
        let daemon = try daemon()
        defer { daemon.stop() }
        let go = marks + "/go"
        _ = try block(daemon, go: go)
        let interrupted = try waiter(daemon, users[0], "interrupted")
        let interruptedID = try interrupted.queuedID()
        let killed = try waiter(daemon, users[1], "killed")
        let killedID = try killed.queuedID()
        interrupted.process.signal(SIGINT)
        #expect(interrupted.finish() == 128 + SIGINT)
        #expect(interrupted.stderr.contains("left the queue"), "\(interrupted.stderr)")
        killed.process.signal(SIGKILL)
        _ = killed.finish()
        for id in [interruptedID, killedID] {
            #expect(try Harness.waitUntil(seconds: 30) { try status(daemon, id).contains("cancelled") })
        }
        FileManager.default.createFile(atPath: go, contents: nil)
        #expect(try daemon.ctl(["exec", "-e", "serial", "--", "true"]).status == 0)
        #expect(ran.isEmpty, "\(ran)")
    }

    @Test func aDaemonThatStopsTellsEveryWaiterAndRunsNoneOfThem() throws {
        let daemon = try daemon()
        let go = marks + "/go"
        _ = try block(daemon, go: go)
        var clients: [Client] = []
        for (index, user) in users.enumerated() { clients.append(try waiter(daemon, user, "w\(index)")) }
        let ids = try clients.map { try $0.queuedID() }
        daemon.process.signal(SIGTERM)
        // Told at once, while what runs still has its shutdown grace.
        for client in clients {
            #expect(client.finish() == 125)
            #expect(
                client.stderr.contains("runvoyd is stopping") && client.stderr.contains("did not run"),
                "\(client.stderr)")
        }
        FileManager.default.createFile(atPath: go, contents: nil)
        #expect(daemon.stop() == 0)
        let again = try restart(daemon)
        defer {
            again.signal(SIGTERM)
            again.wait()
        }
        for id in ids { #expect(try status(daemon, id).contains("cancelled")) }
        #expect(ran.isEmpty, "\(ran)")
    }

    @Test func aDaemonThatCrashesWithWaitersCancelsThemAtItsNextStart() throws {
        let daemon = try daemon()
        let go = marks + "/go"
        _ = try block(daemon, go: go)
        var clients: [Client] = []
        for (index, user) in users.enumerated() { clients.append(try waiter(daemon, user, "w\(index)")) }
        let ids = try clients.map { try $0.queuedID() }
        daemon.process.signal(SIGKILL)
        daemon.process.wait()
        for client in clients {
            #expect(client.finish() == 125)
            #expect(client.stderr.contains("waited in the queue; it did not run"), "\(client.stderr)")
        }
        FileManager.default.createFile(atPath: go, contents: nil)
        let again = try restart(daemon)
        defer {
            again.signal(SIGTERM)
            again.wait()
        }
        for id in ids {
            let shown = try status(daemon, id)
            #expect(shown.contains("cancelled") && shown.contains("runvoyd stopped while"), "\(shown)")
        }
        #expect(ran.isEmpty, "\(ran)")
    }

    /// Starts runvoyd again on `daemon`'s configuration and state, and waits until it serves.
    private func restart(_ daemon: DaemonFixture) throws -> ChildProcess {
        var env = ProcessInfo.processInfo.environment
        env["RUNVOYD_LOG_STDERR"] = "1"
        let process = try ChildProcess(
            [Harness.runvoyd, "--config", daemon.configPath], environment: env, stdoutPath: daemon.logPath + ".2",
            stderrPath: daemon.logPath + ".2.err")
        let served = Harness.waitUntil(seconds: 30) {
            (try? RunvoyClient(socketPath: daemon.socketPath))
                .flatMap { try? $0.call(.hello, params: NoParams(), result: HelloResult.self) } != nil
        }
        if !served { throw HarnessError("runvoyd did not start again") }
        return process
    }
}
