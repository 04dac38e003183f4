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

    /// Replies that carry execution objects carry their whole argv (up to `max_argv_bytes`, 1 MiB by default), and
    /// `list` up to 1000 of them: two executions with 600 KiB of arguments make a `list` reply of over 1.2 MiB.
    /// A known defect (docs/TESTING.md): the check is held as a known issue until replies are bounded.
    @Test func aListOfExecutionsWithLongArgvIsOneFrameOverTheLimit() throws {
        // Six arguments of 100 KiB (one argument may not pass the kernel's 128 KiB).
        let words = Array(repeating: "\"" + String(repeating: "a", count: 100 << 10) + "\"", count: 6)
        for id in 1...2 {
            let connection = try RawConnection(path: daemon.socketPath)
            try connection.sendFrame(
                #"{"v":1,"id":\#(id),"method":"exec","params":{"argv":["true",\#(words.joined(separator: ","))]}}"#)
            let run = try Self.read(connection)
            #expect(run.exit?["exit_code"] as? Int == 0, "\(String(describing: run.reply))")
        }
        let connection = try RawConnection(path: daemon.socketPath)
        try connection.sendFrame(#"{"v":1,"id":1,"method":"list","params":{"limit":2}}"#)
        let list = try Self.read(connection)
        #expect(list.reply?["result"] != nil)
        withKnownIssue("replies with execution objects are not bounded to 1 MiB") {
            #expect(list.largestFrame <= Self.megabyte, "a list reply of \(list.largestFrame) bytes")
        }
    }
}
