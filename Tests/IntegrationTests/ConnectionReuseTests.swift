import Foundation
import Glibc
import RunvoyKit
import Testing

/// Issue 11, items 5 and 6: the connection is free when `exit` arrives, requests for an execution that ended
/// are refused with `invalid_state`, and a client that goes away closes its command's standard input.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class ConnectionReuseTests {
    let daemon: DaemonFixture

    init() throws {
        // `lingering` keeps an execution running while a process it started outlives its main process
        // (`leftovers: kill`, the default, ends such a process the moment the main process exits).
        daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(
                directory: $0,
                extra: [
                    "  lingering:", "    run_as: {user: nobody}", "    environment: {PATH: /usr/bin:/bin}",
                    "    leftovers: wait", "    allow: {users: [\"*\"]}", "    commands: any",
                ].joined(separator: "\n"))
        })
    }

    deinit { daemon.stop() }

    /// Reads frames until the `exit` event of request `id`; returns it.
    static func exit(_ connection: RawConnection, id: Int) throws -> [String: Any] {
        while let frame = try connection.readFrame() {
            if frame["id"] as? Int == id && frame["event"] as? String == "exit" { return frame }
            if frame["error"] != nil { throw HarnessError("request \(id) refused: \(frame)") }
        }
        throw HarnessError("connection closed before the exit of \(id)")
    }

    @Test func backToBackExecutionsOnOneConnectionAreNeverRefused() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        // Sent the moment the previous `exit` arrives; before the fix 1-4 % were refused as still attached.
        for id in 1...10000 {
            try connection.sendFrame(#"{"v":1,"id":\#(id),"method":"exec","params":{"argv":["true"]}}"#)
            let exit = try Self.exit(connection, id: id)
            #expect(exit["exit_code"] as? Int == 0)
        }
    }

    @Test func stdinAndSignalAfterExitAreInvalidState() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(#"{"v":1,"id":1,"method":"exec","params":{"argv":["cat"],"stdin":true}}"#)
        try connection.sendFrame(#"{"v":1,"id":2,"method":"stdin","params":{"eof":true}}"#)
        _ = try Self.exit(connection, id: 1)
        try connection.sendFrame(#"{"v":1,"id":3,"method":"stdin","params":{"data":"aGkK"}}"#)
        let stdin = try #require(try connection.readReply(id: 3))
        #expect((stdin["error"] as? [String: Any])?["code"] as? String == "invalid_state", "\(stdin)")
        try connection.sendFrame(#"{"v":1,"id":4,"method":"signal","params":{"signal":"TERM"}}"#)
        let signal = try #require(try connection.readReply(id: 4))
        #expect((signal["error"] as? [String: Any])?["code"] as? String == "invalid_state", "\(signal)")
    }

    /// docs/PROTOCOL.md: one execution per connection; another `exec` while one runs is `invalid_state`, starts
    /// nothing, and leaves the running one attached.
    @Test func aSecondExecWhileOneRunsIsInvalidStateAndTheFirstGoesOn() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"argv":["cat"],"stdin":true,"binary_output":false}}"#)
        let started = try #require(try connection.readFrame())
        #expect(started["event"] as? String == "started", "\(started)")
        try connection.sendFrame(#"{"v":1,"id":2,"method":"exec","params":{"argv":["true"]}}"#)
        let second = try #require(try connection.readFrame())
        #expect(second["id"] as? Int == 2 && second["event"] == nil, "\(second)")
        #expect((second["error"] as? [String: Any])?["code"] as? String == "invalid_state", "\(second)")
        // The first execution is still the connection's: its input reaches it, and it ends as usual.
        try connection.sendFrame(#"{"v":1,"id":3,"method":"stdin","params":{"data":"aGkK","eof":true}}"#)
        var output = ""
        var exit: [String: Any]?
        while let frame = try connection.readFrame() {
            #expect(frame["id"] as? Int == 1, "a frame for another request: \(frame)")
            if frame["event"] as? String == "output", let data = frame["data"] as? String,
                let bytes = Data(base64Encoded: data)
            {
                output += String(decoding: bytes, as: UTF8.self)
            }
            if frame["event"] as? String == "exit" {
                exit = frame
                break
            }
        }
        #expect(output == "hi\n")
        #expect(exit?["exit_code"] as? Int == 0, "\(exit ?? [:])")
    }

    /// docs/PROTOCOL.md, "Connection end": frames are processed in order, and a `signal` sent after `stdin` data
    /// waits until that data is in the command's input pipe. The command blocks the signal and reads slowly; once
    /// it sees the signal pending, everything sent before it must already be read or waiting in the pipe.
    @Test func aSignalAfterStdinWaitsUntilThatDataIsInTheCommandsInput() throws {
        let script = """
            import os, select, signal, time
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
            os.set_blocking(0, False)
            total = 0
            print("ready", flush=True)
            while signal.SIGUSR1 not in signal.sigpending():
                try:
                    chunk = os.read(0, 4096)
                except BlockingIOError:
                    select.select([0], [], [], 0.01)
                    continue
                total += len(chunk)
                time.sleep(0.0005)
            while True:
                try:
                    chunk = os.read(0, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                total += len(chunk)
            print(total, flush=True)
            """
        let argv = try JSONSerialization.data(withJSONObject: ["python3", "-c", script])
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"argv":\#(String(decoding: argv, as: UTF8.self)),"stdin":true,"binary_output":false}}"#
        )
        var output = ""
        func readOutput(until done: (String) -> Bool) throws -> [String: Any]? {
            while let frame = try connection.readFrame() {
                if frame["event"] as? String == "output", let data = frame["data"] as? String,
                    let bytes = Data(base64Encoded: data)
                {
                    output += String(decoding: bytes, as: UTF8.self)
                    if done(output) { return nil }
                }
                if frame["event"] as? String == "exit" || frame["error"] != nil { return frame }
            }
            return nil
        }
        let early = try readOutput { $0.contains("ready\n") }
        #expect(early == nil, "\(early ?? [:])")
        // 1 MiB in small frames, then the signal, in one write: the daemon reads them in order.
        let chunk = Base64.encode([UInt8](repeating: 0x61, count: 4096))
        var frames: [UInt8] = []
        for id in 0..<256 {
            let json = Array(#"{"v":1,"id":\#(10 + id),"method":"stdin","params":{"data":"\#(chunk)"}}"#.utf8)
            frames += Frame.header(length: json.count) + json
        }
        let signal = Array(#"{"v":1,"id":2,"method":"signal","params":{"signal":"USR1"}}"#.utf8)
        frames += Frame.header(length: signal.count) + signal
        try connection.send(frames)
        let exit = try readOutput { _ in false }
        #expect(exit?["event"] as? String == "exit", "\(exit ?? [:])")
        // Before the fix the signal overtook queued input (the command had 430080 of 1048576 bytes).
        #expect(output == "ready\n\(256 * 4096)\n")
    }

    @Test func aClientThatGoesAwayClosesItsCommandsInput() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"argv":["cat"],"stdin":true,"binary_output":false}}"#)
        let started = try #require(try connection.readFrame())
        let id = try #require(started["execution_id"] as? String, "\(started)")
        try connection.sendFrame(#"{"v":1,"id":2,"method":"stdin","params":{"data":"aGkK"}}"#)
        _ = try connection.readFrame()  // the echo
        connection.closeNow()
        // cat reads EOF and exits 0; before the fix it ran on until its timeout.
        let deadline = Date().addingTimeInterval(20)
        var status = ""
        while Date() < deadline {
            let out = try daemon.ctl(["status", "--json", id])
            status = out.stdoutText
            if !status.contains(#""status":"running""#) { break }
            usleep(50_000)
        }
        #expect(status.contains(#""status":"succeeded""#), "\(status)")
    }
    /// Review of issue 10: after a command's leader exited, output could drain for 2 s more while the execution
    /// was still running; the leader was already reaped, so its pid (and process group id) could be reused and a
    /// `kill` in that window reached an unrelated process group. The leader now stays a zombie until the
    /// execution has ended, so its pid cannot be reused while anything may still signal its group.
    @Test func theLeadersPidStaysReservedUntilTheExecutionEnds() throws {
        let gate = daemon.directory + "/leader-gate"
        let connection = try RawConnection(path: daemon.socketPath)
        // The leader exits at once; a process in a session of its own keeps the execution running (`leftovers:
        // wait`) until the gate opens.
        let script = "setsid sh -c 'while [ ! -e \(gate) ]; do sleep 0.02; done' & echo started"
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"executor":"lingering","argv":["sh","-c","\#(script)"]}}"#)
        let started = try #require(try connection.readFrame())
        let pid = try #require(started["pid"] as? Int, "\(started)")
        _ = try connection.readFrame()  // "started\n"
        func state() -> String {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return stat.split(separator: ")").last.map { String($0.prefix(2)) } ?? "gone"
        }
        // Wait for the leader to exit, then watch its pid for a while: it must stay a zombie (never reaped and
        // free for another process) while the execution runs.
        while state() != " Z" && state() != "gone" { usleep(5_000) }
        var states: [String] = []
        for _ in 0..<20 {
            states.append(state())
            usleep(10_000)
        }
        #expect(states.allSatisfy { $0 == " Z" }, "\(states)")
        FileManager.default.createFile(atPath: gate, contents: nil)
        let exit = try Self.exit(connection, id: 1)
        #expect(exit["exit_code"] as? Int == 0)
    }
}
