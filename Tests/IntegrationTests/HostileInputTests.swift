import Foundation
import Glibc
import RunvoyKit
import Testing

/// Garbage, oversized, truncated and idle input gets a specific error or a close, and never disturbs other clients.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class HostileInputTests {
    let daemon: DaemonFixture

    init() throws {
        Harness.raiseDescriptorLimit()
        daemon = try DaemonFixture(config: { DaemonFixture.standardConfig(directory: $0, idleTimeout: "2s") })
    }

    deinit {
        daemon.stop()
    }

    private func wellBehavedClientWorks() throws {
        try Self.wellBehavedClientWorks(socket: daemon.socketPath)
    }

    static func wellBehavedClientWorks(socket: String) throws {
        let out = try Harness.run([Harness.runvoyctl, "exec", "--socket", socket, "-q", "--", "echo", "still serving"])
        #expect(out.status == 0)
        #expect(out.stdoutText == "still serving\n")
    }

    @Test func helloReportsVersions() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(#"{"v":1,"id":1,"method":"hello","params":{"versions":[1]}}"#)
        let reply = try #require(try connection.readFrame())
        let result = try #require(reply["result"] as? [String: Any])
        #expect(result["daemon"] as? String == "runvoyd")
        #expect(result["protocols"] as? [Int] == [1])
        #expect(result["max_frame_bytes"] as? Int == 1_048_576)
    }

    @Test func binaryOutputFramesCarryRawBytes() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":5,"method":"exec","params":{"argv":["sh","-c","printf 'a\\000b'; printf E >&2"],"binary_output":true}}"#
        )
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var exit: [String: Any]?
        while exit == nil, let frame = try connection.readRawFrame() {
            if frame.binary {
                if frame.payload[0] == BinaryOutputFrame.stdoutTag {
                    stdout += frame.payload.dropFirst()
                } else {
                    #expect(frame.payload[0] == BinaryOutputFrame.stderrTag)
                    stderr += frame.payload.dropFirst()
                }
                continue
            }
            let object = try JSONSerialization.jsonObject(with: Data(frame.payload)) as? [String: Any]
            #expect(object?["id"] as? Int == 5)
            #expect(object?["event"] as? String != "output")
            if object?["event"] as? String == "exit" { exit = object }
        }
        #expect(stdout == [0x61, 0, 0x62])
        #expect(stderr == [0x45])
        #expect(exit?["exit_code"] as? Int == 0)
    }

    @Test func aTwoGibibyteHeaderIsRejectedAtOnce() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.send([0x80, 0x00, 0x00, 0x00])
        let reply = try #require(try connection.readFrame())
        let error = try #require(reply["error"] as? [String: Any])
        #expect(error["code"] as? String == "frame_too_large")
        #expect(connection.readsEOF())
        try wellBehavedClientWorks()
    }

    @Test func garbageBytesAreAnsweredAndClosed() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let reply = try #require(try connection.readFrame())
        #expect((reply["error"] as? [String: Any])?["code"] as? String == "frame_too_large")
        #expect(connection.readsEOF())
        try wellBehavedClientWorks()
    }

    @Test func malformedJSONIsABadRequestAndTheConnectionStaysUsable() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame("{not json")
        let first = try #require(try connection.readFrame())
        #expect((first["error"] as? [String: Any])?["code"] as? String == "bad_request")
        try connection.sendFrame(#"[1,2,3]"#)
        let second = try #require(try connection.readFrame())
        #expect((second["error"] as? [String: Any])?["code"] as? String == "bad_request")
        try connection.sendFrame(#"{"v":1,"id":7,"method":"whoami"}"#)
        let third = try #require(try connection.readFrame())
        #expect(third["id"] as? Int == 7)
        #expect((third["result"] as? [String: Any])?["uid"] as? Int == 0)
    }

    /// Durations beyond any real use (`timeout_ms`, `wait_timeout_ms` at 2^63 - 1) are refused with
    /// `invalid_argument`; they crashed runvoyd with an arithmetic overflow (exit 132) when the executor set no
    /// `max_timeout`.
    @Test func hugeDurationsAreRefusedAndDoNotCrashTheDaemon() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(
                directory: $0,
                extra: """
                      serial:
                        run_as: {user: nobody}
                        allow: {users: ["*"]}
                        commands: any
                        concurrency: 1
                    """)
        })
        defer { daemon.stop() }
        let holder = try daemon.ctl(["exec", "-e", "serial", "--detach", "--", "sleep", "60"])
        #expect(holder.status == 0, "\(holder.stderrText)")
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"executor":"serial","argv":["true"],"timeout_ms":9223372036854775807}}"#
        )
        let timeout = try #require(try connection.readReply(id: 1))
        #expect((timeout["error"] as? [String: Any])?["code"] as? String == "invalid_argument", "\(timeout)")
        try connection.sendFrame(
            #"{"v":1,"id":2,"method":"exec","params":{"executor":"serial","argv":["true"],"wait":true,"wait_timeout_ms":9223372036854775807}}"#
        )
        let wait = try #require(try connection.readReply(id: 2))
        #expect((wait["error"] as? [String: Any])?["code"] as? String == "invalid_argument", "\(wait)")
        #expect(daemon.process.status == nil, "runvoyd is still running")
        try Self.wellBehavedClientWorks(socket: daemon.socketPath)
    }

    @Test func unknownMethodsAndVersionsGetSpecificErrors() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(#"{"v":1,"id":"a","method":"format_disk"}"#)
        let unknown = try #require(try connection.readFrame())
        #expect(unknown["id"] as? String == "a")
        #expect((unknown["error"] as? [String: Any])?["code"] as? String == "unknown_method")
        try connection.sendFrame(#"{"v":99,"id":"b","method":"hello"}"#)
        let version = try #require(try connection.readFrame())
        #expect(version["id"] as? String == "b")
        #expect((version["error"] as? [String: Any])?["code"] as? String == "unsupported_version")
        try connection.sendFrame(#"{"v":1,"id":"c","method":"exec","params":{"argv":"rm -rf /"}}"#)
        let badParams = try #require(try connection.readFrame())
        #expect((badParams["error"] as? [String: Any])?["code"] as? String == "bad_request")
        try connection.sendFrame(#"{"v":1,"id":"d","method":"stdin","params":{"data":"aGk="}}"#)
        let stdin = try #require(try connection.readFrame())
        #expect((stdin["error"] as? [String: Any])?["code"] as? String == "invalid_state")
    }

    @Test func nulBytesAndBadEnvironmentNamesAreRefused() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        for params in [
            #"{"argv":["echo","a\u0000b"]}"#, #"{"argv":["echo"],"env":{"LANG":"C\u0000X"}}"#,
            #"{"argv":["echo"],"env":{"TF_VAR_a=b":"x"}}"#, #"{"argv":["echo"],"env":{"":"x"}}"#,
        ] {
            try connection.sendFrame(#"{"v":1,"id":1,"method":"exec","params":"# + params + "}")
            let reply = try #require(try connection.readFrame())
            #expect((reply["error"] as? [String: Any])?["code"] as? String == "bad_request", "\(params)")
        }
        // This daemon's refusals only: the journal is shared with every other suite.
        let denials = try Harness.journal(
            ["_PID=\(daemon.process.pid)", "RUNVOY_EVENT=decision", "RUNVOY_DECISION=deny"], until: { $0.count >= 4 })
        #expect(denials.count == 4, "\(denials.map { $0["RUNVOY_REASON"] ?? "" })")
        #expect(denials.allSatisfy { $0["RUNVOY_REASON"]?.contains("bad_request") == true })
        let reasons = denials.map { $0["RUNVOY_REASON"] ?? "" }
        #expect(reasons.filter { $0.contains("an argument contains a NUL byte") }.count == 1, "\(reasons)")
        #expect(reasons.filter { $0.contains("values have no NUL") }.count == 3, "\(reasons)")
    }

    @Test func aTruncatedFrameIsDroppedWithoutHarm() throws {
        do {
            let connection = try RawConnection(path: daemon.socketPath)
            try connection.send([0, 0, 0, 100] + Array("{\"v\":1".utf8))
        }
        try wellBehavedClientWorks()
    }

    @Test func idleAndSlowClientsTimeOut() throws {
        let idle = try RawConnection(path: daemon.socketPath)
        let slow = try RawConnection(path: daemon.socketPath)
        // The slow client trickles a frame's bytes, one every 250 ms, for far longer than the 2 s idle timeout:
        // completing no frame counts as idle, so the daemon must close it while it is still trickling (a daemon
        // that reset its timer on every byte never would, and this loop would run to its end).
        let bytes = [UInt8](Frame.header(length: 4000)) + [UInt8](repeating: 0x20, count: 76)
        var closedWhileTrickling = false
        for byte in bytes {
            guard (try? slow.send([byte])) != nil else {
                closedWhileTrickling = true
                break
            }
            usleep(250_000)
        }
        #expect(closedWhileTrickling)
        let reply = try #require(try idle.readFrame())
        #expect((reply["error"] as? [String: Any])?["code"] as? String == "timeout")
        #expect(idle.readsEOF())
        try wellBehavedClientWorks()
    }

    @Test func aThousandIdleConnectionsDoNotStopAWellBehavedClient() throws {
        var idle: [RawConnection] = []
        for _ in 0..<1000 { idle.append(try RawConnection(path: daemon.socketPath)) }
        for _ in 0..<3 { try wellBehavedClientWorks() }
        // The daemon really holds them: a descriptor each (plus its own few).
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.process.pid)/fd")
        #expect(descriptors.count >= 1000, "\(descriptors.count)")
        idle.removeAll()
        try wellBehavedClientWorks()
    }

    @Test func aClientThatStopsReadingSlowsOnlyItsOwnCommand() throws {
        let stalled = try RawConnection(path: daemon.socketPath)
        try stalled.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"argv":["head","-c","67108864","/dev/zero"],"binary_output":true}}"#
        )
        // Read only the started event; 64 MiB then back up into the socket and the pipe.
        let started = try #require(try stalled.readRawFrame())
        #expect(!started.binary)
        let event = try JSONSerialization.jsonObject(with: Data(started.payload)) as? [String: Any]
        let id = try #require(event?["execution_id"] as? String)
        let pid = try #require(event?["pid"] as? Int)
        // Backed up: head is blocked writing into its full pipe.
        var wchan = ""
        let blocked = Harness.waitUntil(seconds: 60) {
            wchan = (try? String(contentsOfFile: "/proc/\(pid)/wchan", encoding: .utf8)) ?? ""
            return wchan.hasSuffix("pipe_write")
        }
        #expect(blocked, "head is not blocked on its pipe (wchan \(wchan))")
        for _ in 0..<3 { try wellBehavedClientWorks() }
        // Vanishing without reading: the daemon drops the output and the command runs to its end.
        stalled.closeNow()
        let finished = try Harness.journal(
            ["_PID=\(daemon.process.pid)", "RUNVOY_EXECUTION_ID=\(id)", "RUNVOY_EVENT=execution_finished"],
            seconds: 20)
        #expect(finished.first?["RUNVOY_EXIT_STATUS"] == "0")
    }

    @Test func manyConcurrentExecutionsAllFinish() throws {
        let dir = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let children = try (0..<24).map { index in
            try ChildProcess(
                [
                    Harness.runvoyctl, "exec", "--socket", daemon.socketPath, "-q", "--", "sh", "-c",
                    "echo \(index); exit \(index % 5)",
                ],
                stdoutPath: "\(dir)/\(index).out")
        }
        for (index, child) in children.enumerated() {
            #expect(child.wait(seconds: 60) == Int32(index % 5))
            #expect((try? String(contentsOfFile: "\(dir)/\(index).out", encoding: .utf8)) == "\(index)\n")
        }
    }

    @Test func hostileClientsInParallelWithAWellBehavedOne() async throws {
        let path = daemon.socketPath
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for index in 0..<200 {
                    let connection = try RawConnection(path: path)
                    switch index % 4 {
                    case 0: try connection.send([0xFF, 0xFF, 0xFF, 0xFF])
                    case 1: try connection.sendFrame("\u{0}\u{1}garbage")
                    case 2: try connection.send([0, 0, 1])
                    default: try connection.sendFrame(#"{"v":1,"id":1,"method":"exec","params":{"argv":[]}}"#)
                    }
                }
            }
            group.addTask {
                for _ in 0..<10 { try Self.wellBehavedClientWorks(socket: path) }
            }
            try await group.waitForAll()
        }
    }
}
