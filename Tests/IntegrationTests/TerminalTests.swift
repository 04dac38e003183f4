import Foundation
import Glibc
import RunvoyKit
import Testing

/// `runvoyctl exec -t` against a real runvoyd, driven through real pseudo-terminals (a Python `pty` driver): the
/// command's terminal, window size changes, control characters as bytes, the local terminal put back however the
/// session ends, the executor's `tty` rule, and who may touch whose terminal. Needs root (the daemon runs commands
/// as nobody) and a journal.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class TerminalTests {
    let daemon: DaemonFixture

    static let executors = """
          interactive:
            run_as: {user: nobody, group: nogroup}
            environment:
              PATH: /usr/local/bin:/usr/bin:/bin
            allow_env: [TERM]
            allow:
              users: ["*"]
            tty: require
            commands: any
          piped:
            run_as: {user: nobody}
            environment:
              PATH: /usr/bin:/bin
            allow:
              users: ["*"]
            tty: deny
            commands: any
        """

    init() throws {
        daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0, extra: TerminalTests.executors)
        })
    }

    deinit {
        daemon.stop()
    }

    /// runvoyctl on a terminal of its own, as a person would start it.
    func ctlOnTerminal(
        _ arguments: [String], rows: Int = 24, cols: Int = 80, steps: [PtyDriver.Step]
    ) throws -> PtyDriver.Result {
        let argv = [
            "/usr/bin/env", "TERM=xterm-256color", Harness.runvoyctl, arguments[0], "--socket", daemon.socketPath,
        ]
        return try PtyDriver.run(argv + arguments.dropFirst(), rows: rows, cols: cols, steps: steps)
    }

    @Test func theCommandRunsOnATerminalOfItsOwnOwnedByTheRunAsUser() throws {
        let script =
            "tty; stat -c 'owner=%U mode=%a' $(tty); readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2; "
            + "echo TERM=$TERM; ps -o sid= -o tpgid= -o pgid= -p $$"
        let result = try ctlOnTerminal(
            ["exec", "-t", "-q", "-e", "interactive", "--", "sh", "-c", script], steps: [.expect("TERM=")])
        #expect(result.status == 0)
        let lines = result.output.split(whereSeparator: \.isNewline).map(String.init)
        let tty = try #require(lines.first)
        #expect(tty.hasPrefix("/dev/pts/"))
        // Only the run-as user may open or write the terminal: not the tty group, not another user.
        #expect(lines.contains("owner=nobody mode=600"))
        #expect(lines.filter { $0 == tty }.count == 4)
        #expect(lines.contains("TERM=xterm-256color"))
        // The shell leads its own session and is the terminal's foreground process group.
        let ids = try #require(lines.last).split(separator: " ").map(String.init)
        #expect(ids.count == 3 && Set(ids).count == 1)
        #expect(result.restored)
    }

    @Test func termPassesOnlyWhereTheExecutorAllowsIt() throws {
        let result = try ctlOnTerminal(["exec", "-t", "-q", "--", "sh", "-c", "echo TERM=$TERM."], steps: [])
        #expect(result.status == 0)
        #expect(result.output.contains("TERM=."))
    }

    @Test func sttySizeFollowsTheWindow() throws {
        let result = try ctlOnTerminal(
            // The size is read again when the command gets SIGWINCH, which the kernel sends once runvoyd has set
            // the new size: no race between the resize and a keystroke sent after it.
            [
                "exec", "-t", "-q", "-e", "interactive", "--", "sh", "-c",
                "trap 'stty size; exit 0' WINCH; stty size; while :; do sleep 0.05; done",
            ],
            rows: 30, cols: 100,
            steps: [.expect("30 100"), .resize(rows: 40, cols: 120), .expect("40 120")])
        #expect(result.status == 0)
        #expect(result.restored)
    }

    @Test func theHistoryKeepsTheWindowSizeATerminalSessionStartedWith() throws {
        let result = try ctlOnTerminal(
            ["exec", "-t", "-q", "-e", "interactive", "--", "sh", "-c", "stty size; echo window-kept"],
            rows: 33, cols: 111, steps: [.expect("window-kept")])
        #expect(result.status == 0)
        let listed = try daemon.ctl(["list", "--json", "--limit", "1"])
        let executions = try #require(
            (try JSONSerialization.jsonObject(with: listed.stdout) as? [String: Any])?["executions"]
                as? [[String: Any]], "\(listed.stdoutText)")
        let terminal = try #require(executions.first?["terminal"] as? [String: Any], "\(listed.stdoutText)")
        #expect(terminal["rows"] as? Int == 33 && terminal["cols"] as? Int == 111)
        let id = try #require(executions.first?["execution_id"] as? String)
        let status = try daemon.ctl(["status", id])
        #expect(status.stdoutText.contains("33 rows x 111 columns at start"), "\(status.stdoutText)")
        let piped = try daemon.ctl(["exec", "--", "true"])
        #expect(piped.status == 0)
        let pipes = try daemon.ctl(["list", "--json", "--limit", "1"])
        let latest = (try JSONSerialization.jsonObject(with: pipes.stdout) as? [String: Any])?["executions"]
        #expect((latest as? [[String: Any]])?.first?["terminal"] is NSNull)
    }

    @Test func ctrlCTravelsAsAByte() throws {
        let result = try ctlOnTerminal(
            [
                "exec", "-t", "-q", "-e", "interactive", "--", "sh", "-c",
                "stty raw -echo; echo ready; head -c3 | od -An -tx1",
            ],
            steps: [.expect("ready"), .send("\u{03}\u{1A}\u{1C}"), .expect("03 1a 1c")])
        #expect(result.status == 0)
        #expect(result.restored)
    }

    @Test func ctrlCInterruptsTheCommandThroughItsTerminal() throws {
        let result = try ctlOnTerminal(
            ["exec", "-t", "-q", "-e", "interactive", "--", "sh", "-c", "echo ready; sleep 60"],
            steps: [.expect("ready"), .send("\u{03}")])
        #expect(result.status == 128 + SIGINT)
        #expect(result.restored)
    }

    @Test func theLocalTerminalIsRestoredWhenTheDaemonDropsTheConnection() throws {
        let result = try ctlOnTerminal(
            ["exec", "-t", "-q", "-e", "interactive", "--", "sh", "-c", "echo ready; sleep 20"],
            steps: [.expect("ready"), .kill(pid: daemon.process.pid)])
        #expect(result.rawSeen)
        #expect(result.status == CtlExitCodes.failure)
        #expect(result.restored)
        #expect(result.output.contains("runvoyd closed the connection"))
    }

    @Test func theExecutorsTTYRuleIsEnforced() throws {
        let denied = try daemon.ctl(["exec", "-t", "-q", "-e", "piped", "--", "true"])
        #expect(denied.status == CtlExitCodes.failure)
        #expect(denied.stderrText.contains("does not give commands a terminal"))
        let required = try daemon.ctl(["exec", "-q", "-e", "interactive", "--", "true"])
        #expect(required.status == CtlExitCodes.failure)
        #expect(required.stderrText.contains("only on a terminal"))
        let overridden = try daemon.ctl(["exec", "-t", "-T", "-q", "-e", "piped", "--", "true"])
        #expect(overridden.status == 0)
    }

    @Test func timeoutsAndExitStatusesWorkOnATerminal() throws {
        // stdin is not a terminal here: the daemon still gives the command one, and runvoyctl changes nothing.
        let timedOut = try daemon.ctl(["exec", "-t", "-q", "--timeout", "1s", "--", "sleep", "30"])
        #expect(timedOut.status == 124)
        let exited = try daemon.ctl(["exec", "-t", "-q", "--", "sh", "-c", "test -t 0 && test -t 1 && exit 7"])
        #expect(exited.status == 7)
    }

    /// The daemon keeps no descriptor of the terminal's slave (only the command has it), the output is stored
    /// like any other, and only the user who started an execution may resize its terminal.
    @Test func theDaemonHoldsOnlyTheMasterAndOnlyTheOwnerResizes() throws {
        let started = try daemon.ctl(["exec", "-t", "-d", "--", "sh", "-c", "tty; echo marker; sleep 30"])
        #expect(started.status == 0)
        let id = started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        var logs = ""
        _ = try Harness.waitUntil {
            logs = try daemon.ctl(["logs", id]).stdoutText
            return logs.contains("marker")
        }
        let tty = try #require(logs.split(whereSeparator: \.isNewline).first.map(String.init))
        #expect(tty.hasPrefix("/dev/pts/"))
        let fdDirectory = "/proc/\(daemon.process.pid)/fd"
        let links = try FileManager.default.contentsOfDirectory(atPath: fdDirectory).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: fdDirectory + "/" + $0)
        }
        #expect(!links.contains(tty))
        #expect(!links.contains { $0.hasPrefix("/dev/pts/") && $0 != "/dev/pts/ptmx" })
        #expect(links.filter { $0 == "/dev/ptmx" || $0 == "/dev/pts/ptmx" }.count == 3)

        let request =
            "{\"v\":1,\"id\":1,\"method\":\"resize\",\"params\":{\"rows\":10,\"cols\":20,\"execution_id\":\"\(id)\"}}"
        let other = try rawRequest(request, asUser: "daemon")
        #expect(other.contains("\"invalid_argument\""))
        let owner = try rawRequest(request, asUser: nil)
        #expect(owner.contains("\"applied\":true"))
        #expect(try daemon.ctl(["kill", id]).status == 0)
    }

    /// A client that stops reading a terminal session's output slows only that command: the daemon reads the
    /// terminal no further than the connection takes (its output stops growing, within a few MiB of buffers).
    @Test func aClientThatStopsReadingStallsTheCommandNotTheDaemon() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"argv":["yes","0123456789abcdef"],"binary_output":true,"tty":{"rows":24,"cols":80}}}"#
        )
        let started = try #require(try connection.readFrame())
        let id = try #require(started["execution_id"] as? String)
        func outputSoFar() throws -> Int {
            let text = try daemon.ctl(["status", "--json", id]).stdoutText
            let info = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            return info?["stdout_bytes"] as? Int ?? -1
        }
        var previous = -1
        let stalled = try Harness.waitUntil(seconds: 60) {
            let now = try outputSoFar()
            defer { previous = now }
            return now > 0 && now == previous
        }
        #expect(stalled)
        #expect(previous < 32 << 20)
        #expect(try daemon.ctl(["kill", "--signal", "KILL", id]).status == 0)
    }

    /// A terminal session is stored as one stream with its timing: `logs --replay` gives back exactly what the
    /// terminal showed, and `logs --format asciicast` is asciicast v2 whose text is that output and whose times
    /// rise within the execution's duration.
    @Test func aTerminalSessionReplaysIdenticallyAndAsAsciicast() throws {
        let screen = "printf '\\033[?1049h\\033[2J\\033[Hfull screen\\n'; sleep 1; printf '\\033[?1049lbye'"
        let run = try daemon.ctl(["exec", "-t", "--", "sh", "-c", screen])
        #expect(run.status == 0)
        let id = try #require(ExecTests.executionID(run.stderrText))
        #expect(run.stdoutText.contains("full screen\r\n"))
        let replay = try daemon.ctl(["logs", "--replay", "--max-pause", "100ms", id])
        #expect(replay.status == 0)
        #expect(replay.stdout == run.stdout)

        let cast = try daemon.ctl(["logs", "--format", "asciicast", "--size", "100x30", id])
        #expect(cast.status == 0)
        let lines = cast.stdoutText.split(separator: "\n").map(String.init)
        let header = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(header["version"] as? Int == 2)
        #expect(header["width"] as? Int == 100)
        #expect(header["height"] as? Int == 30)
        var text = ""
        var last = 0.0
        for line in lines.dropFirst() {
            let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Any])
            #expect(event.count == 3 && event[1] as? String == "o")
            let time = try #require(event[0] as? Double)
            #expect(time >= last)
            last = time
            text += try #require(event[2] as? String)
        }
        #expect(text == run.stdoutText)
        let status = try daemon.ctl(["status", "--json", id]).stdoutText
        let info = try #require(try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])
        let duration = Double(try #require(info["duration_usec"] as? Int)) / 1_000_000
        #expect(last >= 1 && last < duration + 1)
    }

    /// One request frame on a fresh connection, as `user` (root when nil), and the first frame of the answer.
    func rawRequest(_ json: String, asUser user: String?) throws -> String {
        let client = """
            import socket, struct, sys
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); b = sys.argv[2].encode()
            s.sendall(struct.pack(">I", len(b)) + b); n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
            print(s.recv(n, socket.MSG_WAITALL).decode())
            """
        var argv = ["/usr/bin/python3", "-c", client, daemon.socketPath, json]
        if let user { argv = ["/usr/sbin/runuser", "-u", user, "--"] + argv }
        return try Harness.run(argv).stdoutText
    }
}

enum CtlExitCodes {
    /// runvoyctl's status when runvoyd refused or failed, or the connection was lost.
    static let failure: Int32 = 125
}
