import Foundation
import Glibc
import RunvoyKit
import Testing

/// Fair shares against a real runvoyd, as real Unix users made for the test (useradd; removed after): a user with
/// no role cannot hold the connections, one developer cannot take every execution slot, and administrators keep a
/// reserve. Needs root (useradd, runuser) and a journal.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class FairShareTests {
    let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
    var dev: String { "rvf\(suffix)-dev" }
    var dev2: String { "rvf\(suffix)-dev2" }
    var none: String { "rvf\(suffix)-none" }

    init() throws {
        for user in [dev, dev2, none] {
            try AuthorizationTests.sh("useradd -M -N -g nogroup -s /usr/sbin/nologin \(user)")
        }
    }

    deinit {
        for user in [dev, dev2, none] { try? AuthorizationTests.sh("userdel \(user)") }
    }

    /// A daemon where `dev` and `dev2` are developers and `none` has no role, with `limits` added.
    func daemon(limits: String, idleTimeout: String = "30s", extra: String = "") throws -> DaemonFixture {
        let (dev, dev2) = (dev, dev2)
        return try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory, extra: extra, idleTimeout: idleTimeout)
                .replacingOccurrences(
                    of: "  max_connections: 4096\n", with: limits.split(separator: "\n").map { "  \($0)\n" }.joined()
                )
                .replacingOccurrences(
                    of: "roles:\n  developer: {users: [\"*\"]}\n",
                    with: "roles:\n  developer: {users: [\(dev), \(dev2)]}\n")
        })
    }

    /// Holds `count` connections as `user` and sends `hello` on each every 200 ms until `stop` exists; prints
    /// `served N` after the first round, `past N` once it has flooded for N seconds, and at the end what each
    /// connection was last told.
    static let flooder = #"""
        import json, os, socket, struct, sys, time
        path, count, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        def frame(obj):
            b = json.dumps(obj).encode(); return struct.pack(">I", len(b)) + b
        def read(s):
            s.settimeout(5)
            try:
                h = b""
                while len(h) < 4:
                    c = s.recv(4 - len(h))
                    if not c: return None
                    h += c
                (n,) = struct.unpack(">I", h); b = b""
                while len(b) < n:
                    c = s.recv(n - len(b))
                    if not c: return None
                    b += c
                return json.loads(b)
            except OSError:
                return None
        alive, ends = [], {}
        for i in range(count):
            s = socket.socket(socket.AF_UNIX); s.connect(path); alive.append(s)
        start, rounds = time.time(), 0
        while not os.path.exists(stop) and time.time() - start < 120:
            for s in list(alive):
                try: s.sendall(frame({"v": 1, "id": 1, "method": "hello"}))
                except OSError: pass
                f = read(s)
                if f is None or "error" in f:
                    code = "closed" if f is None else f["error"]["code"]
                    ends[code] = ends.get(code, 0) + 1; alive.remove(s); s.close()
            rounds += 1
            if rounds == 1: print("served", len(alive), flush=True)
            print("past", int(time.time() - start), flush=True)
            time.sleep(0.2)
        print("held", len(alive), "ends", json.dumps(ends, sort_keys=True), flush=True)
        """#

    /// Starts the flooding script as `user` with `connections` connections; returns it, the file whose creation
    /// stops it, and what it has printed so far.
    static func flood(
        _ daemon: DaemonFixture, as user: String, connections: Int
    ) throws -> (ChildProcess, String, () -> String) {
        let script = daemon.directory + "/flood.py"
        try flooder.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(daemon.directory, 0o755)
        chmod(script, 0o644)
        let stop = daemon.directory + "/stop-flood"
        let output = daemon.directory + "/flood.out"
        let flood = try ChildProcess(
            [
                "/usr/sbin/runuser", "-u", user, "--", "/usr/bin/python3", script, daemon.socketPath,
                String(connections), stop,
            ],
            stdoutPath: output, stderrPath: output + ".err")
        return (flood, stop, { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" })
    }

    /// Issue 14's first reproduction: a role-less member of the socket's group opens 40 connections and says
    /// `hello` on each every 200 ms. It may hold only `max_connections_without_role` of them, greetings do not keep
    /// them from the idle timeout, and a developer and root are served throughout.
    @Test func aHelloFloodWithoutARoleDeniesNoOne() throws {
        let daemon = try daemon(limits: "max_connections: 32", idleTimeout: "1s")
        defer { daemon.stop() }
        let (flood, stop, printed) = try Self.flood(daemon, as: none, connections: 40)
        // Wait until the flood has gone on for more than twice the idle timeout.
        let flooding = Harness.waitUntil(seconds: 60) { printed().contains("past 3") }
        #expect(flooding, "the flood did not start: \(printed()) \(daemon.log)")

        let developer = try daemon.ctl(["exec", "--", "true"], asUser: dev)
        #expect(developer.status == 0, "a developer during the flood: \(developer.stderrText)")
        let root = try daemon.ctl(["exec", "--", "true"])
        #expect(root.status == 0, "root during the flood: \(root.stderrText)")

        FileManager.default.createFile(atPath: stop, contents: nil)
        flood.wait()
        let served = printed().split(separator: "\n").first { $0.hasPrefix("served ") }.map { Int($0.dropFirst(7)) }
        #expect(served == 4, "connections the role-less user held at first: \(printed())")
        #expect(printed().contains("held 0 "), "greetings kept connections open: \(printed())")
        #expect(printed().contains("\"busy\": 36"), "\(printed())")
    }

    /// Connections refused at the fair shares are audited, coalesced: the role-less user's first refusal is a
    /// `connection_refused` record naming the limit, the rest are counted in one summary with the count (written
    /// at the latest when the daemon stops). (Before, they were only counted in the metrics.)
    @Test func connectionsRefusedAtTheFairSharesAreAuditedCoalesced() throws {
        let daemon = try daemon(limits: "max_connections: 32")
        let pid = daemon.process.pid
        let (flood, stop, printed) = try Self.flood(daemon, as: none, connections: 10)
        #expect(Harness.waitUntil(seconds: 60) { printed().contains("past ") }, "\(printed())")
        FileManager.default.createFile(atPath: stop, contents: nil)
        flood.wait()
        #expect(printed().contains("\"busy\": 6"), "\(printed())")
        let matches = ["RUNVOY_EVENT=connection_refused", "_PID=\(pid)", "RUNVOY_CALLER_USER=\(none)"]
        let first = try Harness.journal(matches)
        #expect(first.count == 1, "\(first)")
        #expect(first.first?["RUNVOY_LIMIT"] == "limits.max_connections_without_role", "\(first)")
        #expect(first.first?["MESSAGE_ID"] == "195bace4d778400ab3932aa7cedec38c")
        daemon.stop()
        let all = try Harness.journal(matches) { $0.count >= 2 }
        #expect(all.count == 2 && all.last?["RUNVOY_SUPPRESSED"] == "5", "\(all)")
    }

    /// A caller without a role cannot keep connections from the idle timeout with requests it is refused or that
    /// do nothing (`stdin` with nothing attached, answered `invalid_state`): only callers with a role count as
    /// active. (Before, `stdin` every 300 ms held the role-less user's 4 connections for ever.)
    @Test func requestsOfACallerWithoutARoleDoNotKeepItsConnections() throws {
        let daemon = try daemon(limits: "max_connections: 32", idleTimeout: "1s")
        defer { daemon.stop() }
        let script = daemon.directory + "/stdin-flood.py"
        try #"""
        import json, socket, struct, sys, time
        def frame(obj):
            b = json.dumps(obj).encode(); return struct.pack(">I", len(b)) + b
        alive = []
        for i in range(4):
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(0.2); alive.append(s)
        start = time.time()
        while time.time() - start < 5 and alive:
            for s in list(alive):
                try:
                    s.sendall(frame({"v": 1, "id": 1, "method": "stdin", "params": {"data": "aGk="}}))
                    while True:
                        if not s.recv(65536): alive.remove(s); break
                except socket.timeout:
                    pass
                except OSError:
                    alive.remove(s)
            time.sleep(0.1)
        print("held", len(alive), flush=True)
        """#.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(daemon.directory, 0o755)
        chmod(script, 0o644)
        let out = try Harness.run([
            "/usr/sbin/runuser", "-u", none, "--", "/usr/bin/python3", script, daemon.socketPath,
        ])
        #expect(out.stdoutText.contains("held 0"), "\(out.stdoutText) \(out.stderrText)")
    }

    /// Issue 14's second reproduction: one developer starts detached commands until refused; it gets its share,
    /// and another developer and root still run commands.
    @Test func oneDeveloperCannotTakeEveryExecutionSlot() throws {
        let daemon = try daemon(limits: "max_connections: 4096\nmax_executions: 8")
        defer { daemon.stop() }
        var started: [String] = []
        var refusal = ""
        for _ in 0..<10 {
            let out = try daemon.ctl(["exec", "--detach", "--no-wait", "--", "sleep", "60"], asUser: dev)
            guard out.status == 0 else {
                refusal = out.stderrText
                break
            }
            started.append(out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        // Left out, a user's share is a quarter of max_executions.
        #expect(started.count == 2, "the developer started \(started.count): \(refusal)")
        #expect(refusal.contains("[busy]") && refusal.contains("limits.max_executions_per_user"), "\(refusal)")
        let other = try daemon.ctl(["exec", "--", "true"], asUser: dev2)
        #expect(other.status == 0, "another developer: \(other.stderrText)")
        let root = try daemon.ctl(["exec", "--", "true"])
        #expect(root.status == 0, "root: \(root.stderrText)")
        for id in started { _ = try daemon.ctl(["kill", "--signal", "KILL", id]) }
    }

    /// The last execution slots are kept for administrators: developers together cannot take them.
    @Test func administratorsKeepTheirReserveOfExecutions() throws {
        let daemon = try daemon(
            limits: "max_connections: 4096\nmax_executions: 4\nmax_executions_per_user: 4\nreserved_admin_executions: 1"
        )
        defer { daemon.stop() }
        var started: [String] = []
        for user in [dev, dev, dev2] {
            let out = try daemon.ctl(["exec", "--detach", "--", "sleep", "60"], asUser: user)
            #expect(out.status == 0, "\(user): \(out.stderrText)")
            started.append(out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let refused = try daemon.ctl(["exec", "--no-wait", "--", "true"], asUser: dev2)
        #expect(refused.status != 0 && refused.stderrText.contains("kept for administrators"), "\(refused.stderrText)")
        let root = try daemon.ctl(["exec", "--", "true"])
        #expect(root.status == 0, "root: \(root.stderrText)")
        for id in started { _ = try daemon.ctl(["kill", "--signal", "KILL", id]) }
    }

    /// The last connections are kept for administrators, and a developer holds at most its share.
    @Test func administratorsKeepTheirReserveOfConnections() throws {
        let daemon = try daemon(
            limits: "max_connections: 8\nmax_connections_per_user: 8\nreserved_admin_connections: 2")
        defer { daemon.stop() }
        let (flood, stop, printed) = try Self.flood(daemon, as: dev, connections: 10)
        #expect(Harness.waitUntil(seconds: 60) { printed().contains("served ") }, "\(printed())")
        #expect(printed().contains("served 6\n"), "\(printed())")
        let root = try daemon.ctl(["exec", "--", "true"])
        #expect(root.status == 0, "root: \(root.stderrText)")
        // The refusal is the first frame on the connection, sent before any request is read (a client whose
        // request write races the close may see only a broken pipe, so this reads it raw).
        let other = try Harness.run([
            "/usr/sbin/runuser", "-u", dev2, "--", "/usr/bin/python3", "-c",
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(20); "
                + "print(s.recv(4096)[4:].decode())",
            daemon.socketPath,
        ])
        #expect(other.stdoutText.contains("kept for administrators"), "\(other.stdoutText) \(other.stderrText)")
        FileManager.default.createFile(atPath: stop, contents: nil)
        flood.wait()
    }

    /// Review 17: the per-user share counted uids, and one account is not one uid. An account with a subordinate
    /// uid range (useradd gives it 65,536 in /etc/subuid) connects from a user namespace (`unshare --map-auto`) as
    /// 16 uids with no passwd entry, 4 connections each: it held every connection but the administrators' reserve,
    /// and a developer was refused. Now all uids with no passwd entry share one role-less share.
    @Test func oneAccountCannotHoldTheConnectionsThroughSubordinateUIDs() throws {
        try #require(access("/usr/bin/newuidmap", X_OK) == 0, "needs newuidmap (Debian's uidmap package)")
        let daemon = try daemon(limits: "max_connections: 32\nreserved_admin_connections: 4")
        defer { daemon.stop() }
        let spot = daemon.directory + "/holder"
        mkdir(spot, 0o777)
        chmod(spot, 0o777)
        let (ready, done) = (spot + "/held", spot + "/done")
        let holder = """
            import os, select, socket, time
            def dial():
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect("\(daemon.socketPath)")
                    return s
                except OSError:
                    s.close()
                    return None
            def hold(uid):
                os.setgid(0)
                os.setuid(uid)
                held = [s for s in (dial() for _ in range(4)) if s]
                open("\(spot)/held-%d" % uid, "w").write(str(len(held)))
                deadline = time.time() + 120
                while not os.path.exists("\(done)") and time.time() < deadline:
                    closed = [s for s in held if select.select([s], [], [], 0)[0] and not s.recv(4096)]
                    for s in closed:
                        held.remove(s)
                        s.close()
                    held += [s for s in (dial() for _ in range(4 - len(held))) if s]
                    time.sleep(0.05)
                os._exit(0)
            children = []
            for uid in range(1, 17):
                pid = os.fork()
                if pid == 0:
                    hold(uid)
                children.append(pid)
            while len([n for n in os.listdir("\(spot)") if n.startswith("held-")]) < 16:
                time.sleep(0.05)
            time.sleep(0.5)
            open("\(ready)", "w").write("ok")
            for pid in children:
                os.waitpid(pid, 0)
            """
        let process = try ChildProcess(
            [
                "/usr/sbin/runuser", "-u", none, "--", "/usr/bin/unshare", "--map-auto", "--map-root-user",
                "/usr/bin/python3", "-c", holder,
            ],
            environment: ProcessInfo.processInfo.environment, stdoutPath: daemon.directory + "/holder.out",
            stderrPath: daemon.directory + "/holder.err")
        defer {
            FileManager.default.createFile(atPath: done, contents: nil)
            _ = process.wait(seconds: 30)
        }
        #expect(Harness.waitUntil(seconds: 30) { access(ready, F_OK) == 0 }, "the holder did not start")
        let developer = try daemon.ctl(["exec", "--", "true"], asUser: dev)
        #expect(developer.status == 0, "a developer: \(developer.stderrText)")
    }

    /// Opens `count` connections as the user running it, sends the header of a `length`-byte frame and its first
    /// `sent` bytes on each, prints `sent`, waits for `go` to exist, then finishes each frame (a `ping`) and prints
    /// what each connection answered.
    static let halfSender = #"""
        import json, os, socket, struct, sys, time
        path, count, length, sent, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        body = json.dumps({"v": 1, "id": 1, "method": "ping"}).encode()
        body += b" " * (length - len(body))
        conns = []
        for i in range(count):
            s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(20)
            try: s.sendall(struct.pack(">I", length) + body[:sent])
            except OSError: pass  # refused and closed already: the answer is read below
            conns.append(s)
        print("sent", flush=True)
        while not os.path.exists(go): time.sleep(0.05)
        answers = {}
        for s in conns:
            try: s.sendall(body[sent:])
            except OSError: pass
            try:
                h = b""
                while len(h) < 4: h += s.recv(4 - len(h)) or b"!" * 4
                (n,) = struct.unpack(">I", h[:4]); b = b""
                while len(b) < n:
                    c = s.recv(n - len(b))
                    if not c: break
                    b += c
                f = json.loads(b)
                key = "pong" if "result" in f else f["error"]["code"] + ":" + f["error"]["message"]
            except Exception as e:
                key = "closed"
            answers[key] = answers.get(key, 0) + 1
        print(json.dumps(answers, sort_keys=True), flush=True)
        """#

    /// Half-sent large frames hold daemon memory until they complete: one user's together are bounded by
    /// `max_pending_bytes_per_user`, beyond which a connection gets `busy` and is closed, while another user's
    /// large frames are served. Prints the daemon's resident memory with the frames held, as a measurement.
    @Test func halfSentLargeFramesAreBoundedPerUser() throws {
        let daemon = try daemon(limits: "max_connections: 4096\nmax_pending_bytes_per_user: 2MiB")
        defer { daemon.stop() }
        let script = daemon.directory + "/half.py"
        try Self.halfSender.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(daemon.directory, 0o755)
        chmod(script, 0o644)
        func rss() -> String {
            let status = (try? String(contentsOfFile: "/proc/\(daemon.process.pid)/status", encoding: .utf8)) ?? ""
            return status.split(separator: "\n").first { $0.hasPrefix("VmRSS") }.map(String.init) ?? "?"
        }
        let before = rss()
        var senders: [(ChildProcess, String, String)] = []
        for user in [dev, dev2] {
            let output = daemon.directory + "/half-\(user).out"
            let go = daemon.directory + "/go-\(user)"
            let process = try ChildProcess(
                [
                    "/usr/sbin/runuser", "-u", user, "--", "/usr/bin/python3", script, daemon.socketPath,
                    user == dev ? "5" : "2", "1000000", "900000", go,
                ], stdoutPath: output, stderrPath: output + ".err")
            senders.append((process, output, go))
        }
        func printed(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        for (_, output, _) in senders {
            #expect(Harness.waitUntil(seconds: 60) { printed(output).contains("sent") }, "\(printed(output + ".err"))")
        }
        print("FairShareTests: daemon VmRSS before the half-sent frames: \(before); with them: \(rss())")
        for (process, _, go) in senders {
            FileManager.default.createFile(atPath: go, contents: nil)
            process.wait()
        }
        let mine = printed(senders[0].1)
        #expect(mine.contains("\"pong\": 2"), "\(mine)")
        #expect(mine.contains("max_pending_bytes_per_user") && mine.contains(": 3"), "\(mine)")
        #expect(printed(senders[1].1).contains("{\"pong\": 2}"), "\(printed(senders[1].1))")
    }

    /// An executor with `concurrency: 1` runs one execution at a time, whoever asks (root too); the refusal
    /// names what runs, and once it ends the next one runs.
    @Test func anExecutorsConcurrencyHoldsForEveryone() throws {
        let daemon = try daemon(
            limits: "max_connections: 4096",
            extra: """
                  serial:
                    run_as: {user: nobody}
                    environment: {PATH: /usr/bin:/bin}
                    concurrency: 1
                    allow: {users: ["*"]}
                    commands: any
                """)
        defer { daemon.stop() }
        let first = try daemon.ctl(["exec", "-e", "serial", "--detach", "--", "sleep", "60"], asUser: dev)
        #expect(first.status == 0, "\(first.stderrText)")
        let id = first.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        for user in [dev2, nil] {
            let second = try daemon.ctl(["exec", "-e", "serial", "--no-wait", "--", "true"], asUser: user)
            #expect(second.status != 0, "\(user ?? "root") ran beside the first")
            // Named to root; to another developer only as another user's execution.
            let holder = user == nil ? "\(id) by \(dev)" : "another user's execution"
            #expect(second.stderrText.contains("concurrency") && second.stderrText.contains(holder))
            if user != nil { #expect(!second.stderrText.contains(id), "\(second.stderrText)") }
        }
        // Another executor is not held up.
        #expect(try daemon.ctl(["exec", "--", "true"], asUser: dev2).status == 0)
        #expect(try daemon.ctl(["kill", "--signal", "KILL", id]).status == 0)
        let ended = try Harness.waitUntil(seconds: 30) {
            try daemon.ctl(["status", id]).stdoutText.contains("killed")
        }
        #expect(ended)
        let after = try daemon.ctl(["exec", "-e", "serial", "--", "true"], asUser: dev2)
        #expect(after.status == 0, "\(after.stderrText)")
    }
}
