import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/SECURITY.md (edit): a path that changes while runvoyd judges it is refused or served, never a crash.
/// Found by making `EditRedirectTests` check why each attempt was refused: about one run in three, runvoyd died
/// (`Fatal error: Unexpectedly found nil while unwrapping an Optional value`) in `editablePath`, whose
/// `editable.lazy.compactMap { … }.first` ran the path check twice: once to find the first admitting entry and
/// again to produce it, force-unwrapped. A path admitted the first time and refused the second (a folder on the
/// way renamed and replaced by a link in between, as anyone owning a folder under `editable` may do) ended the
/// daemon for everyone. Here the same race runs in process, many times over; on the old code the test process dies.
@Suite struct EditAdmissionRaceTests {
    @Test func aPathThatChangesWhileItIsJudgedNeverEndsTheDaemon() async throws {
        var template = Array("/tmp/runvoy-edit-race-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(base) }
        #expect(chmod(base, 0o755) == 0)
        for name in ["www", "www/site", "secret"] { #expect(mkdir(base + "/" + name, 0o755) == 0) }
        try Data("decoy\n".utf8).write(to: URL(fileURLWithPath: base + "/www/site/index.conf"))
        try Data("outside\n".utf8).write(to: URL(fileURLWithPath: base + "/secret/index.conf"))
        let stop = Mutex(false)
        let racer = Thread {
            while !stop.withLock({ $0 }) {
                rename(base + "/www/site", base + "/www/hold")
                symlink(base + "/secret", base + "/www/site")
                unlink(base + "/www/site")
                rename(base + "/www/hold", base + "/www/site")
            }
        }
        racer.start()
        defer { stop.withLock { $0 = true } }
        let yaml = RouterTests.developerYAML + "\n    editable: [\"\(base)/www\"]\n"
        var outcomes: [String: Int] = [:]
        try await InProcessConnection.with(caller: RouterTests.nobody, yaml: yaml) { connection in
            for id in 1...2000 {
                let reply = await connection.call(
                    #"{"v":1,"id":\#(id),"method":"edit_open","params":{"path":"\#(base)/www/site/index.conf"}}"#)
                let code = Self.code(of: reply)
                outcomes[code, default: 0] += 1
                #expect(
                    ["result", "permission_denied", "invalid_argument", "not_found", "invalid_state"].contains(code),
                    "\(reply)")
            }
            let hello = await connection.call(#"{"v":1,"id":"last","method":"hello"}"#)
            #expect(hello.contains(#""result""#), "the daemon still serves: \(hello)")
        }
        #expect(outcomes.values.reduce(0, +) == 2000, "\(outcomes)")
    }

    /// `result`, or the error's code.
    static func code(of reply: String) -> String {
        guard let data = reply.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return "unreadable: \(reply)" }
        if object["result"] != nil { return "result" }
        return ((object["error"] as? [String: Any])?["code"] as? String) ?? "neither"
    }
}
