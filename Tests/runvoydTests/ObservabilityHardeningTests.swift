import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The socket's permissions are applied without following a symlink planted at its path; `trace`'s reply is
/// bounded as it is sent, after JSON escaping.
@Suite struct ObservabilityHardeningTests {
    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/runvoy-obs-XXXXXX".utf8CString)
        return String(cString: try #require(mkdtemp(&template)))
    }

    /// A symlink swapped in at the socket's path between bind and chmod got the socket's mode and group applied
    /// to its target (as root: any file). Now the target is left alone.
    @Test func aSymlinkAtTheSocketPathIsNotFollowed() throws {
        let directory = try Self.temporaryDirectory()
        defer { FileSystem.removeTree(directory) }
        let target = directory + "/target"
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        #expect(fd >= 0)
        close(fd)
        #expect(symlink(target, directory + "/runvoyd.sock") == 0)
        var settings = SocketSettings()
        settings.mode = 0o666
        settings.group = "adm"
        #expect(throws: (any Error).self) {
            try ListeningSocket.applyPermissions(path: directory + "/runvoyd.sock", settings: settings)
        }
        var info = stat()
        #expect(stat(target, &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o600, "the target's mode is \(String(info.st_mode & 0o7777, radix: 8))")
        #expect(info.st_gid == getegid())
    }

    /// Review 17 (PoC, fails): the folder check looks at the socket's own folder only. Under a folder another
    /// account owns (here `nobody`), runvoyd creates the last folder itself (root's, 0755), the check passes, and
    /// that account can later rename the folder away and put its own socket at the path: clients (runvoyctl sending
    /// a secret, a scraper) then talk to it. Every folder on the way should be root's (or runvoyd's) and not
    /// writable by another account, as the socket's own folder must be.
    @Test(.enabled(if: geteuid() == 0, "needs root (chown)"))
    func aFolderAnotherAccountOwnsAboveTheSocketsFolderIsRefused() throws {
        let directory = try Self.temporaryDirectory()
        defer { FileSystem.removeTree(directory) }
        chmod(directory, 0o755)
        let theirs = directory + "/theirs"
        #expect(mkdir(theirs, 0o755) == 0)
        #expect(chown(theirs, 65534, 65534) == 0)
        let path = theirs + "/runvoy/metrics.sock"
        var settings = SocketSettings()
        settings.mode = 0o660
        var bound: Int32 = -1
        #expect(throws: (any Error).self) {
            try ListeningSocket.prepare(path: path)
            bound = try ListeningSocket.bind(path: path, settings: settings, backlog: 8)
        }
        if bound >= 0 { close(bound) }
    }

    /// A reply of records full of control characters (6 bytes each once escaped) was bounded by their raw size
    /// (4 MiB), so it could reach six times that on the wire. Now the records are bounded as they are sent.
    @Test(
        .enabled(
            if: geteuid() == 0 && access("/run/systemd/journal/socket", F_OK) == 0, "needs root and a journal"))
    func aTraceReplyIsBoundedAfterEscaping() async throws {
        let id = "obs-escape-\(UInt64.random(in: 0...UInt64.max))"
        let journal = Journal(socketPath: "/run/systemd/journal/socket")
        let heavy = String(repeating: "\u{1}", count: 50_000)
        for _ in 0..<24 {
            try await journal.send(
                [
                    ("MESSAGE", heavy), ("PRIORITY", "7"), ("SYSLOG_IDENTIFIER", "runvoyd"),
                    ("RUNVOY_EXECUTION_ID", id),
                ], timeout: .seconds(10))
        }
        let reader = JournalReader()
        var result = TraceResult(records: [], truncated: false)
        // The journal takes records asynchronously: read until all are there, or the reply stopped short.
        for _ in 0..<400 {
            result = try reader.records(matching: [("RUNVOY_EXECUTION_ID", id)])
            if result.truncated || result.records.count == 24 { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        let reply = try Frame.payload(Reply(id: .number(1), result: result))
        #expect(reply.count <= reader.maxBytes + 256, "a reply of \(reply.count) bytes")
        #expect(result.truncated)
        #expect(!result.records.isEmpty)
    }
}
