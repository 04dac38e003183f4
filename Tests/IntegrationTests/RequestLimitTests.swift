import Foundation
import Glibc
import RunvoyKit
import Testing

/// An argv or environment over `limits.max_*` is refused with `invalid_argument` by `exec` and `explain`, before
/// any policy work, naming the limit and never the content; the connection and the daemon keep serving
/// (issue 10, item 3). The default limits, under a frame limit large enough to exceed each of them.
@Suite(.serialized, .enabled(if: Harness.isRoot && Harness.hasJournal, "needs root and a journal (scripts/test)"))
final class RequestLimitTests {
    let daemon: DaemonFixture
    static let marker = "QQMARKQQ"

    init() throws {
        daemon = try DaemonFixture(config: { directory in
            DaemonFixture.standardConfig(directory: directory)
                .replacingOccurrences(of: "max_frame_bytes: 1048576", with: "max_frame_bytes: 8388608")
        })
    }

    deinit {
        daemon.stop()
    }

    /// (what is oversized, argv, env, the limit the refusal must name)
    static var oversized: [(String, [String], [String: String]?, String)] {
        let big = String(repeating: marker, count: (128 << 10) / marker.utf8.count + 1)
        let chunk = String(repeating: marker, count: (100 << 10) / marker.utf8.count)
        let manyEnv = Dictionary(uniqueKeysWithValues: (0...256).map { ("TF_VAR_\($0)", marker) })
        return [
            ("4097 arguments", ["echo"] + Array(repeating: marker, count: 4096), nil, "limits.max_arguments (4096)"),
            ("a 128 KiB + 8 argument", ["echo", big], nil, "limits.max_argument_bytes (131072)"),
            (
                "11 x 100 KiB of argv", ["echo"] + Array(repeating: chunk, count: 11), nil,
                "limits.max_argv_bytes (1048576)"
            ),
            ("257 variables", ["true"], manyEnv, "limits.max_env_entries (256)"),
            (
                "300 KiB of environment", ["true"], ["TF_VAR_a": chunk, "TF_VAR_b": chunk, "TF_VAR_c": chunk],
                "limits.max_env_bytes (262144)"
            ),
        ]
    }

    static func frame(_ method: String, id: Int, argv: [String], env: [String: String]?) throws -> String {
        var params: [String: Any] = ["argv": argv]
        if let env { params["env"] = env }
        let object: [String: Any] = ["v": 1, "id": id, "method": method, "params": params]
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test func oversizedRequestsAreRefusedByExecAndExplainAndTheDaemonKeepsServing() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        var id = 0
        for (what, argv, env, limit) in Self.oversized {
            for method in env == nil ? ["exec", "explain"] : ["exec"] {
                id += 1
                try connection.sendFrame(try Self.frame(method, id: id, argv: argv, env: env))
                let reply = try #require(try connection.readReply(id: id), "\(method) \(what)")
                let error = try #require(reply["error"] as? [String: Any], "\(method) \(what): \(reply)")
                let message = error["message"] as? String ?? ""
                #expect(error["code"] as? String == "invalid_argument", "\(method) \(what)")
                #expect(message.contains(limit), "\(method) \(what): \(message)")
                #expect(!message.contains(Self.marker), "\(method) \(what) echoes the request")
                #expect(message.utf8.count < 300, "\(method) \(what)")
            }
        }
        // The same connection still answers, and so does the daemon.
        id += 1
        try connection.sendFrame(try Self.frame("explain", id: id, argv: ["echo", "hi"], env: nil))
        let fine = try #require(try connection.readReply(id: id))
        #expect((fine["result"] as? [String: Any])?["decision"] as? String == "allow")
        try HostileInputTests.wellBehavedClientWorks(socket: daemon.socketPath)
    }

    @Test func requestsAtTheLimitsAreServed() throws {
        let connection = try RawConnection(path: daemon.socketPath)
        let argv = ["true"] + Array(repeating: "x", count: 4095)
        try connection.sendFrame(try Self.frame("explain", id: 1, argv: argv, env: nil))
        #expect((try connection.readReply(id: 1)?["result"] as? [String: Any])?["decision"] as? String == "allow")
        let out = try daemon.ctl(["exec", "-q", "--", "true"] + Array(repeating: "x", count: 4095))
        #expect(out.status == 0, "\(out.stderrText)")
    }

    @Test func theRefusalIsShownByRunvoyctl() throws {
        let out = try daemon.ctl(["explain", "--", "echo"] + Array(repeating: "x", count: 4096))
        #expect(out.status != 0)
        #expect(out.stderrText.contains("invalid_argument") && out.stderrText.contains("limits.max_arguments"))
    }
}
