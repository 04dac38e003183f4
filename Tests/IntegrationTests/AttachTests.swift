import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl attach` against a real runvoyd, as real Unix users made for the test (useradd; removed after):
/// who may watch whose execution live, who may write to it, what a watcher that never reads costs, and that
/// every attach and its end is audited.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class AttachTests {
    let daemon: DaemonFixture
    let suffix: String
    /// World-readable, so that the commands (run as nobody) see the files the test makes to pace them.
    let gates: String
    var admin: String { "rva\(suffix)-adm" }
    var oper: String { "rva\(suffix)-op" }
    var owner: String { "rva\(suffix)-dev" }
    var otherDev: String { "rva\(suffix)-dev2" }
    var viewer: String { "rva\(suffix)-view" }
    var none: String { "rva\(suffix)-none" }
    var users: [String] { [admin, oper, owner, otherDev, viewer, none] }

    init() throws {
        let suffix = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        self.suffix = suffix
        try TestUsers.add(["adm", "op", "dev", "dev2", "view", "none"].map { "rva\(suffix)-\($0)" })
        gates = try Harness.makeTemporaryDirectory()
        chmod(gates, 0o755)
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(
                    of: "roles:\n  developer: {users: [\"*\"]}\n",
                    with: """
                        roles:
                          admin: {users: [rva\(suffix)-adm]}
                          operator: {users: [rva\(suffix)-op]}
                          developer: {users: [rva\(suffix)-dev, rva\(suffix)-dev2]}
                          viewer: {users: [rva\(suffix)-view]}

                        """)
        })
    }

    deinit {
        daemon.stop()
        TestUsers.remove(users)
        try? FileManager.default.removeItem(atPath: gates)
    }

    func ctl(_ user: String?, _ arguments: [String]) throws -> Harness.Output {
        try daemon.ctl(arguments, asUser: user)
    }

    /// runvoyctl in the background as `user` (root when nil), with its stdin from `stdinPath`.
    func background(
        _ user: String?, _ arguments: [String], stdinPath: String? = nil
    ) throws
        -> DaemonFixture
        .BackgroundCtl
    {
        let base = "\(daemon.directory)/bg-\(UUID().uuidString)"
        var argv = [Harness.runvoyctl, arguments[0], "--socket", daemon.socketPath] + arguments.dropFirst()
        if let user { argv = ["/usr/sbin/runuser", "-u", user, "--"] + argv }
        let process = try ChildProcess(argv, stdinPath: stdinPath, stdoutPath: base + ".out", stderrPath: base + ".err")
        return DaemonFixture.BackgroundCtl(process: process, stdoutPath: base + ".out", stderrPath: base + ".err")
    }

    /// A shell command that prints `first`, waits for the gate file `name`, prints `second` and exits 3.
    func gated(_ name: String) -> [String] {
        ["sh", "-c", "echo first; while [ ! -e \(gates)/\(name) ]; do sleep 0.02; done; echo second; exit 3"]
    }

    func open(_ name: String) { _ = FileManager.default.createFile(atPath: "\(gates)/\(name)", contents: Data()) }

    func detached(_ user: String, _ argv: [String]) throws -> String {
        let out = try ctl(user, ["exec", "--detach", "--"] + argv)
        guard out.status == 0 else { throw HarnessError("exec as \(user): \(out.stderrText)") }
        return out.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func whoMayWatchFollowsTheRoleTableAndEveryAttachIsAudited() throws {
        let id = try detached(owner, gated("roles"))
        let watchers = try [owner, oper, viewer, admin].map { ($0, try background($0, ["attach", id])) }
        for (user, watcher) in watchers {
            #expect(
                Harness.waitUntil { watcher.stdout.contains("first") }, "\(user): \(watcher.stderr)")
        }
        let otherDeveloper = try ctl(otherDev, ["attach", id])
        #expect(otherDeveloper.status == 125 && otherDeveloper.stderrText.contains("no_such_execution"))
        let noRole = try ctl(none, ["attach", id])
        #expect(noRole.status == 125 && noRole.stderrText.contains("has no runvoy role"))
        let viewerWrites = try ctl(viewer, ["attach", "--write", id])
        #expect(viewerWrites.status == 125 && viewerWrites.stderrText.contains("only the user who started"))
        let adminWrites = try ctl(admin, ["attach", "--write", id])
        #expect(adminWrites.status == 125 && adminWrites.stderrText.contains("permission_denied"))

        open("roles")
        for (user, watcher) in watchers {
            #expect(watcher.process.wait(seconds: 30) == 3, "\(user): \(watcher.stderr)")
            #expect(watcher.stdout == "first\nsecond\n", "\(user)")
        }
        let attached = try Harness.journal(["RUNVOY_EVENT=execution_attached", "RUNVOY_EXECUTION_ID=\(id)"]) {
            $0.count >= 4
        }
        #expect(Set(attached.compactMap { $0["RUNVOY_CALLER_USER"] }) == [owner, oper, viewer, admin])
        #expect(
            attached.allSatisfy {
                $0["RUNVOY_MODE"] == "read" && $0["MESSAGE_ID"] == "be54e9df1fb846fe9523f7184eb3a8bd"
            })
        let detached = try Harness.journal(["RUNVOY_EVENT=execution_detached", "RUNVOY_EXECUTION_ID=\(id)"]) {
            $0.count >= 4
        }
        #expect(detached.count == 4 && detached.allSatisfy { $0["RUNVOY_REASON"] == "ended" })
        #expect(
            Set(detached.compactMap { $0["RUNVOY_ATTACH_ID"] }) == Set(attached.compactMap { $0["RUNVOY_ATTACH_ID"] }))
        let refused = try Harness.journal([
            "RUNVOY_EVENT=request_denied", "RUNVOY_METHOD=attach", "RUNVOY_EXECUTION_ID=\(id)",
        ]) { $0.count >= 3 }
        #expect(Set(refused.compactMap { $0["RUNVOY_CALLER_USER"] }) == [otherDev, viewer, admin])

        let ended = try ctl(owner, ["attach", id])
        #expect(ended.status == 125 && ended.stderrText.contains("is not running"))
    }

    @Test func aWatcherThatNeverReadsHoldsUpNoOne() throws {
        // 16 MB of output, far more than the socket and the connection's buffers hold (2 MiB).
        let argv = [
            "sh", "-c",
            "echo ready; while [ ! -e \(gates)/flood ]; do sleep 0.02; done; head -c 16000000 /dev/zero | tr '\\0' x",
        ]
        let id = try detached(owner, argv)
        let stalled = try RawConnection(path: daemon.socketPath)
        var small: Int32 = 4096
        setsockopt(stalled.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        try stalled.sendFrame(#"{"v":1,"id":1,"method":"attach","params":{"execution_id":"\#(id)"}}"#)
        #expect(try stalled.readFrame()?["event"] as? String == "attached")
        let watcher = try background(owner, ["attach", id])
        #expect(Harness.waitUntil { watcher.stdout.contains("ready") })
        open("flood")
        // The command ends and the other watcher gets all of it while the stalled one still holds its stream.
        #expect(watcher.process.wait(seconds: 60) == 0, "\(watcher.stderr)")
        let seen = try Data(contentsOf: URL(fileURLWithPath: watcher.stdoutPath))
        #expect(seen.count == 16_000_006 && seen.prefix(6) == Data("ready\n".utf8))
        #expect(seen.dropFirst(6).allSatisfy { $0 == UInt8(ascii: "x") })
        let status = try JSONDecoder().decode(
            ExecutionInfo.self, from: try ctl(owner, ["status", "--json", id]).stdout)
        #expect(status.status == .succeeded)
        stalled.closeNow()
        let detached = try Harness.journal(
            ["RUNVOY_EVENT=execution_detached", "RUNVOY_EXECUTION_ID=\(id)"], until: { $0.count >= 2 }, seconds: 20)
        #expect(detached.compactMap { $0["RUNVOY_REASON"] }.sorted() == ["client_gone", "ended"], "\(detached)")
    }

    @Test func theOwnerTypesIntoATerminalSessionWithWrite() throws {
        // The session's own client keeps its input open (a FIFO the test holds) and sends nothing.
        let fifo = "\(daemon.directory)/tty-input"
        #expect(mkfifo(fifo, 0o644) == 0)
        let holder = Glibc.open(fifo, O_RDWR)
        defer { close(holder) }
        let session = try background(
            owner,
            [
                "exec", "-t", "--", "sh", "-c",
                "echo ready; read line; echo \"got:$line\"; read more; echo \"more:$more\"; exit 4",
            ], stdinPath: fifo)
        let id = try session.executionID()
        #expect(Harness.waitUntil { session.stdout.contains("ready") })
        let argv = [
            "/usr/sbin/runuser", "-u", owner, "--", Harness.runvoyctl, "attach", "--socket", daemon.socketPath,
            "--write", id,
        ]
        // Typed keys reach the command; Ctrl-] detaches, and the terminal is put back.
        let first = try PtyDriver.run(
            argv, steps: [.expect("ready"), .send("hello\r"), .expect("got:hello"), .send("\u{1D}")])
        #expect(first.status == 0, "\(first.output)")
        #expect(first.rawSeen && first.restored)
        #expect(first.output.contains("detached from execution"))
        // The slot is free again once the writer detached: a new writer takes it and sees the end.
        let second = try PtyDriver.run(argv, steps: [.expect("got:hello"), .send("again\r"), .expect("more:again")])
        #expect(second.status == 4 && second.restored)
        #expect(session.process.wait(seconds: 30) == 4)
        let modes = try Harness.journal(["RUNVOY_EVENT=execution_attached", "RUNVOY_EXECUTION_ID=\(id)"]) {
            $0.count >= 2
        }
        #expect(modes.allSatisfy { $0["RUNVOY_MODE"] == "write" && $0["RUNVOY_CALLER_USER"] == owner })
    }

    @Test func ctrlCDetachesAReadOnlyWatcherAndTheCommandGoesOn() throws {
        let id = try detached(owner, gated("ctrlc"))
        let watched = try PtyDriver.run(
            [Harness.runvoyctl, "attach", "--socket", daemon.socketPath, id],
            steps: [.expect("first"), .send("\u{03}")])
        #expect(watched.status == 0 && watched.restored)
        #expect(watched.output.contains("detached from execution \(id); it goes on running"))
        let info = try JSONDecoder().decode(ExecutionInfo.self, from: try ctl(owner, ["status", "--json", id]).stdout)
        #expect(info.status == .running)
        let gone = try Harness.journal([
            "RUNVOY_EVENT=execution_detached", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_REASON=client_gone",
        ])
        #expect(gone.count == 1)
        open("ctrlc")
    }

    @Test func onePipeWriterAtATimeAndItCannotCloseTheInput() throws {
        let fifo = "\(daemon.directory)/pipe-input"
        #expect(mkfifo(fifo, 0o644) == 0)
        let holder = Glibc.open(fifo, O_RDWR)
        defer { close(holder) }
        let session = try background(
            nil, ["exec", "--", "sh", "-c", "echo ready; read line; echo \"got:$line\""], stdinPath: fifo)
        let id = try session.executionID()
        let writer = try RawConnection(path: daemon.socketPath)
        try writer.sendFrame(
            #"{"v":1,"id":1,"method":"attach","params":{"execution_id":"\#(id)","write":true}}"#)
        let attached = try #require(try writer.readFrame())
        #expect(attached["event"] as? String == "attached" && attached["write"] as? Bool == true)
        #expect(attached["terminal"] as? Bool == false)

        let second = try ctl(nil, ["attach", "--write", id])
        #expect(second.status == 125 && second.stderrText.contains("already has a writer"))
        let stranger = try RawConnection(path: daemon.socketPath)
        try stranger.sendFrame(
            #"{"v":1,"id":2,"method":"stdin","params":{"execution_id":"\#(id)","data":"eA=="}}"#)
        #expect((try stranger.readReply(id: 2)?["error"] as? [String: Any])?["code"] as? String == "invalid_state")
        try writer.sendFrame(#"{"v":1,"id":2,"method":"stdin","params":{"execution_id":"\#(id)","eof":true}}"#)
        #expect((try writer.readReply(id: 2)?["error"] as? [String: Any])?["code"] as? String == "invalid_argument")

        let typed = Base64.encode(Array("typed\n".utf8))
        try writer.sendFrame(
            #"{"v":1,"id":3,"method":"stdin","params":{"execution_id":"\#(id)","data":"\#(typed)"}}"#)
        let reply = try #require(try writer.readReply(id: 1))
        #expect((reply["result"] as? [String: Any])?["execution"] != nil)
        #expect(session.process.wait(seconds: 30) == 0)
        #expect(session.stdout == "ready\ngot:typed\n")
    }

    @Test func runvoyctlWritesItsLinesToAPipeExecutionAndLeavesItsInputOpen() throws {
        let fifo = "\(daemon.directory)/lines-input"
        #expect(mkfifo(fifo, 0o644) == 0)
        let holder = Glibc.open(fifo, O_RDWR)
        defer { close(holder) }
        let session = try background(
            owner, ["exec", "--", "sh", "-c", "echo ready; read a; echo \"got:$a\"; read b; echo \"then:$b\"; exit 5"],
            stdinPath: fifo)
        let id = try session.executionID()
        let typed = "\(daemon.directory)/typed"
        try "one\n".write(toFile: typed, atomically: true, encoding: .utf8)
        // The writer's input ends after one line: that ends its writing, not the command's input, and it stays
        // attached until the command ends.
        let writer = try background(owner, ["attach", "--write", id], stdinPath: typed)
        #expect(Harness.waitUntil { writer.stdout.contains("got:one") }, "\(writer.stderr)")
        #expect(writer.process.isRunning)
        _ = "two\n".withCString { Glibc.write(holder, $0, 4) }
        #expect(writer.process.wait(seconds: 30) == 5, "\(writer.stderr)")
        #expect(writer.stdout == "ready\ngot:one\nthen:two\n")
        #expect(session.process.wait(seconds: 30) == 5)

        let detachedID = try detached(owner, gated("noinput"))
        let noInput = try ctl(owner, ["attach", "--write", detachedID])
        #expect(noInput.status == 125 && noInput.stderrText.contains("without standard input"))
        open("noinput")
    }
}
