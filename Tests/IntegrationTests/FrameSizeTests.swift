import Foundation
import Glibc
import RunvoyKit
import Testing

/// docs/PROTOCOL.md, "Framing": frames the daemon sends are at most 1 MiB, except `output` events, which carry at
/// most 256 KiB of data; a binary output frame's length is at most 256 KiB + 1. Read raw from the socket while a
/// command writes 12 MB as fast as it can (both output encodings), and while that output is replayed (`logs`) and
/// backed up (`backup`).
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class FrameSizeTests {
    let daemon: DaemonFixture
    static let megabyte = 1 << 20
    static let outputLimit = 256 << 10

    init() throws {
        daemon = try DaemonFixture()
    }

    deinit { daemon.stop() }

    /// The sizes seen on one request's frames.
    struct Sizes {
        var largestFrame = 0
        var largestOutputData = 0
        var outputBytes = 0
        var frames = 0
        var reply: [String: Any]?
        var exit: [String: Any]?

        mutating func add(_ frame: (binary: Bool, payload: [UInt8])) throws {
            frames += 1
            if frame.binary {
                // The stream byte, then the data.
                largestOutputData = max(largestOutputData, frame.payload.count - 1)
                outputBytes += frame.payload.count - 1
                largestFrame = max(largestFrame, frame.payload.count)
                return
            }
            largestFrame = max(largestFrame, frame.payload.count)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(frame.payload)) as? [String: Any])
            switch object["event"] as? String {
            case "output":
                let text = try #require(object["data"] as? String)
                let data = try #require(Data(base64Encoded: text))
                largestOutputData = max(largestOutputData, data.count)
                outputBytes += data.count
            case "exit": exit = object
            case nil: reply = object
            default: break
            }
        }
    }

    /// Reads every frame of request 1 until its reply (or `exit` for an attached `exec`).
    static func read(_ connection: RawConnection) throws -> Sizes {
        var sizes = Sizes()
        while sizes.reply == nil && sizes.exit == nil {
            try sizes.add(try #require(try connection.readRawFrame(), "the stream ended early"))
        }
        return sizes
    }

    func exec(binary: Bool) throws -> (Sizes, String) {
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"argv":["head","-c","12000000","/dev/urandom"],"#
                + #""binary_output":\#(binary)}}"#)
        let sizes = try Self.read(connection)
        #expect(sizes.exit?["exit_code"] as? Int == 0, "\(String(describing: sizes.exit))")
        return (sizes, try #require(sizes.exit?["execution_id"] as? String))
    }

    @Test func noFrameIsLargerThanTheProtocolAllows() throws {
        let (json, id) = try exec(binary: false)
        let (binary, _) = try exec(binary: true)
        for sizes in [json, binary] {
            #expect(sizes.outputBytes == 12_000_000)
            #expect(sizes.largestOutputData <= Self.outputLimit, "an output frame carried \(sizes.largestOutputData)")
            #expect(sizes.largestFrame <= Self.megabyte, "a frame of \(sizes.largestFrame) bytes")
        }
        // Binary frames: the stream byte and at most 256 KiB.
        #expect(binary.largestFrame <= Self.outputLimit + 1)

        let logs = try RawConnection(path: daemon.socketPath)
        try logs.sendFrame(#"{"v":1,"id":1,"method":"logs","params":{"execution_id":"\#(id)"}}"#)
        let replay = try Self.read(logs)
        #expect(replay.reply?["result"] != nil, "\(String(describing: replay.reply))")
        #expect(replay.largestOutputData <= Self.outputLimit, "a replayed chunk of \(replay.largestOutputData)")
        #expect(replay.largestFrame <= Self.megabyte, "a replay frame of \(replay.largestFrame) bytes")

        let backup = try RawConnection(path: daemon.socketPath)
        try backup.sendFrame(#"{"v":1,"id":1,"method":"backup","params":{}}"#)
        let archive = try Self.read(backup)
        #expect(archive.reply?["result"] != nil, "\(String(describing: archive.reply))")
        #expect(archive.frames > 10, "the archive came in \(archive.frames) frames")
        #expect(archive.largestFrame <= Self.megabyte, "a backup frame of \(archive.largestFrame) bytes")
    }

    /// Replies that carried execution objects carried their whole argv (up to `max_argv_bytes`, 1 MiB by default),
    /// and `list` up to 1000 of them: two executions with 600 KiB of arguments made a `list` reply of 1,230,251
    /// bytes (issue 18). Each execution in a `list` now carries a bounded argv, and the reply stops before its
    /// byte budget (`more`).
    @Test func aListOfExecutionsWithLongArgvStaysWithinTheLimit() throws {
        // Six arguments of 100 KiB (one argument may not pass the kernel's 128 KiB).
        let words = Array(repeating: "\"" + String(repeating: "a", count: 100 << 10) + "\"", count: 6)
        var ids: [String] = []
        for id in 1...2 {
            let connection = try RawConnection(path: daemon.socketPath)
            try connection.sendFrame(
                #"{"v":1,"id":\#(id),"method":"exec","params":{"argv":["true",\#(words.joined(separator: ","))]}}"#)
            let run = try Self.read(connection)
            #expect(run.exit?["exit_code"] as? Int == 0, "\(String(describing: run.reply))")
            ids.append(try #require(run.exit?["execution_id"] as? String))
        }
        // The whole argv stays in the audit trail (and in the history, which `status` cuts for the reply).
        let fullArgv = ["true"] + Array(repeating: String(repeating: "a", count: 100 << 10), count: 6)
        let records = try Harness.journal(["RUNVOY_EXECUTION_ID=\(ids[0])"]) {
            $0.contains { $0["RUNVOY_EVENT"] == "execution_started" }
        }
        let started = try #require(records.first { $0["RUNVOY_EVENT"] == "execution_started" })
        let audited = try JSONSerialization.jsonObject(with: Data((started["RUNVOY_ARGV"] ?? "").utf8)) as? [String]
        #expect(audited == fullArgv)
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(#"{"v":1,"id":1,"method":"list","params":{"limit":2}}"#)
        let list = try Self.read(connection)
        let result = try #require(list.reply?["result"] as? [String: Any], "\(String(describing: list.reply))")
        #expect(list.largestFrame <= Self.megabyte, "a list reply of \(list.largestFrame) bytes")
        let executions = try #require(result["executions"] as? [[String: Any]])
        #expect(executions.count == 2)
        for execution in executions {
            #expect(execution["argv_truncated"] as? Bool == true)
            #expect((execution["argv"] as? [String])?.first == "true")
        }
    }

    /// One execution whose argv is 1 MiB of control characters (each `\u0001` in JSON: 6 MiB of text, far over
    /// the frame limit if sent whole): `status` while it runs, `attach`'s and `logs`' final replies, `export`'s
    /// event, `list` and `kill`'s reply all stay within 1 MiB, and the execution objects say `argv_truncated`.
    @Test func everyReplyAboutAnExecutionWithAMebibyteOfControlCharactersStaysWithinTheLimit() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0).replacingOccurrences(
                of: "max_frame_bytes: 1048576", with: "max_frame_bytes: 8388608")
        })
        defer { daemon.stop() }
        // `sh -c 'sleep 30' ARG0 ARG...`: eight arguments of 128 KiB - 3 bytes each (the kernel takes at most
        // 128 KiB with the NUL), in all just under the default `max_argv_bytes` of 1 MiB (1,048,575 bytes).
        let word = "\"" + String(repeating: "\\u0001", count: (128 << 10) - 3) + "\""
        let argv = #"["sh","-c","sleep 30","# + Array(repeating: word, count: 8).joined(separator: ",") + "]"
        let started = try RawConnection(path: daemon.socketPath)
        try started.sendFrame(#"{"v":1,"id":1,"method":"exec","params":{"argv":\#(argv),"detach":true}}"#)
        let detached = try Self.read(started)
        let id = try #require(
            (detached.reply?["result"] as? [String: Any])?["execution_id"] as? String,
            "\(String(describing: detached.reply))")

        func request(_ method: String, _ params: String) throws -> Sizes {
            let connection = try RawConnection(path: daemon.socketPath)
            try connection.sendFrame(#"{"v":1,"id":1,"method":"\#(method)","params":\#(params)}"#)
            return try Self.read(connection)
        }
        func expectBounded(_ sizes: Sizes, _ what: String, _ execution: (Any?) -> Any?) {
            #expect(sizes.largestFrame <= Self.megabyte, "\(what): a frame of \(sizes.largestFrame) bytes")
            let object = execution(sizes.reply?["result"]) as? [String: Any]
            #expect(object?["argv_truncated"] as? Bool == true, "\(what)")
            let argv = object?["argv"] as? [String] ?? []
            #expect(argv.prefix(3) == ["sh", "-c", "sleep 30"], "\(what)")
            #expect(argv.reduce(0) { $0 + $1.utf8.count + 1 } <= 64 << 10, "\(what)")
        }
        expectBounded(try request("status", #"{"execution_id":"\#(id)"}"#), "status") { $0 }

        let attach = try RawConnection(path: daemon.socketPath)
        try attach.sendFrame(#"{"v":1,"id":1,"method":"attach","params":{"execution_id":"\#(id)"}}"#)
        let attached = try #require(try attach.readFrame())
        #expect(attached["event"] as? String == "attached", "\(attached)")
        let kill = try request("kill", #"{"execution_id":"\#(id)"}"#)
        #expect(kill.largestFrame <= Self.megabyte)
        #expect((kill.reply?["result"] as? [String: Any])?["delivered"] as? Bool == true)
        expectBounded(try Self.read(attach), "attach") { ($0 as? [String: Any])?["execution"] }

        expectBounded(try request("logs", #"{"execution_id":"\#(id)"}"#), "logs") {
            ($0 as? [String: Any])?["execution"]
        }
        expectBounded(try request("list", #"{"limit":1}"#), "list") {
            (($0 as? [String: Any])?["executions"] as? [[String: Any]])?.first
        }
        let export = try RawConnection(path: daemon.socketPath)
        try export.sendFrame(#"{"v":1,"id":1,"method":"export","params":{}}"#)
        var exported: [String: Any]?
        var largest = 0
        while let frame = try export.readRawFrame() {
            largest = max(largest, frame.payload.count)
            let object = try JSONSerialization.jsonObject(with: Data(frame.payload)) as? [String: Any]
            if object?["event"] as? String == "execution" { exported = object?["execution"] as? [String: Any] }
            if object?["event"] == nil { break }
        }
        #expect(largest <= Self.megabyte, "export: a frame of \(largest) bytes")
        #expect(exported?["argv_truncated"] as? Bool == true)
    }

    /// A request for approval whose argv is 1 MiB of control characters (6 MiB of JSON whole): `approvals` lists
    /// it and shows it by id within 1 MiB, saying `argv_truncated`; its `approval_requested` record keeps it whole.
    @Test func approvalsOfARequestWithAMebibyteOfControlCharactersStayWithinTheLimit() throws {
        let daemon = try DaemonFixture(config: {
            DaemonFixture.standardConfig(directory: $0).replacingOccurrences(
                of: "max_frame_bytes: 1048576", with: "max_frame_bytes: 8388608")
                    + """
                      gated:
                        run_as: {user: nobody}
                        environment: {PATH: /usr/bin:/bin}
                        allow: {users: ["*"]}
                        approval: {count: 1, approvers: {users: [daemon]}, expires: 10m}
                        commands: any

                    """
        })
        defer { daemon.stop() }
        let word = "\"" + String(repeating: "\\u0001", count: (128 << 10) - 3) + "\""
        let argv = #"["true","# + Array(repeating: word, count: 8).joined(separator: ",") + "]"
        let asked = try RawConnection(path: daemon.socketPath)
        try asked.sendFrame(
            #"{"v":1,"id":1,"method":"exec","params":{"executor":"gated","argv":\#(argv),"detach":true}}"#)
        let detached = try Self.read(asked)
        let reply = detached.reply?["result"] as? [String: Any]
        #expect(reply?["state"] as? String == "awaiting_approval", "\(String(describing: detached.reply))")
        let id = try #require(reply?["execution_id"] as? String)

        for (params, budget) in [(#"{}"#, 4 << 10), (#"{"id":"\#(id)"}"#, 64 << 10)] {
            let connection = try RawConnection(path: daemon.socketPath)
            try connection.sendFrame(#"{"v":1,"id":1,"method":"approvals","params":\#(params)}"#)
            let sizes = try Self.read(connection)
            #expect(sizes.largestFrame <= Self.megabyte, "approvals \(params): a frame of \(sizes.largestFrame) bytes")
            let result = sizes.reply?["result"] as? [String: Any]
            let request = (result?["requests"] as? [[String: Any]])?.first
            #expect(request?["id"] as? String == id, "approvals \(params)")
            #expect(request?["argv_truncated"] as? Bool == true, "approvals \(params)")
            #expect(request?["env_keys_truncated"] as? Bool == false, "approvals \(params)")
            let shown = request?["argv"] as? [String] ?? []
            #expect(shown.first == "true", "approvals \(params)")
            #expect(shown.reduce(0) { $0 + $1.utf8.count + 1 } <= budget, "approvals \(params)")
            #expect(result?["more"] as? Bool == false, "approvals \(params)")
        }
        let records = try Harness.journal(["RUNVOY_EVENT=approval_requested", "RUNVOY_APPROVAL_ID=\(id)"])
        let audited = try JSONSerialization.jsonObject(with: Data((records.first?["RUNVOY_ARGV"] ?? "").utf8))
        #expect(
            audited as? [String]
                == ["true"] + Array(repeating: String(repeating: "\u{1}", count: (128 << 10) - 3), count: 8))
    }
}
