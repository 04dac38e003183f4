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

    /// Records left out of a trace (other users' refusals) were not counted: a reader skipping them scanned on
    /// for its whole 2 s. Now every record read counts against `maxScanned`, and the answer says it stopped short.
    @Test(
        .enabled(
            if: geteuid() == 0 && access("/run/systemd/journal/socket", F_OK) == 0, "needs root and a journal"))
    func recordsLeftOutOfATraceAreBoundedToo() async throws {
        let id = "obs-skip-\(UInt64.random(in: 0...UInt64.max))"
        let journal = Journal(socketPath: "/run/systemd/journal/socket")
        for _ in 0..<12 {
            try await journal.send(
                [
                    ("MESSAGE", "left out"), ("PRIORITY", "7"), ("SYSLOG_IDENTIFIER", "runvoyd"),
                    ("RUNVOY_EXECUTION_ID", id),
                ], timeout: .seconds(10))
        }
        var reader = JournalReader()
        reader.skip = { _ in true }
        reader.maxScanned = 10
        var result = TraceResult(records: [], truncated: false)
        for _ in 0..<400 {
            result = try reader.records(matching: [("RUNVOY_EXECUTION_ID", id)])
            if result.truncated { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(result.truncated)
        #expect(result.records.isEmpty)
    }

    /// Without its own executable's path (/proc/self/exe unreadable) the reader dropped the `_EXE` match and read
    /// on, so another root process's records under runvoyd's name came back. Now the trace is refused.
    @Test func aTraceWithoutTheDaemonsExecutableIsRefused() throws {
        var reader = JournalReader()
        reader.executable = nil
        #expect(throws: JournalReader.Failure.self) { try reader.records(matching: [("RUNVOY_EXECUTION_ID", "x")]) }
        #expect(JournalReader.ownExecutable != nil)
    }

    /// With socket activation the configuration's `socket.mode` and `socket.group` were ignored without a word.
    /// Now a start with a passed socket whose mode or group differ says which settings are not applied.
    @Test func anActivatedSocketThatDiffersFromTheConfigurationIsNamed() throws {
        let directory = try Self.temporaryDirectory()
        defer { FileSystem.removeTree(directory) }
        let path = directory + "/runvoyd.sock"
        var settings = SocketSettings()
        settings.mode = 0o600
        // As systemd binds it: by path.
        let fd = socket(AF_UNIX, SocketKind.stream, 0)
        defer { close(fd) }
        var address = try #require(ListeningSocket.Folder.address(path))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0 && chmod(path, 0o600) == 0)
        #expect(ListeningSocket.activationMismatch(fd, settings: settings) == nil)
        var configured = settings
        configured.mode = 0o660
        configured.group = "adm"
        let warning = try #require(ListeningSocket.activationMismatch(fd, settings: configured))
        #expect(warning.contains("socket.mode 660 (the socket is 600)"), "\(warning)")
        #expect(warning.contains("socket.group adm"), "\(warning)")
        #expect(warning.contains(path))
    }

    /// The folders on the way to a socket are walked from `/`: a root-owned sticky folder (/tmp) may be passed
    /// through but is refused as the socket's own folder, and a symbolic link root owns is followed.
    @Test func aStickyFolderIsPassedThroughButNotTheSocketsOwn() throws {
        #expect(throws: (any Error).self) { try ListeningSocket.prepare(path: "/tmp/runvoy-obs3-sticky.sock") }
        let directory = try Self.temporaryDirectory()
        defer {
            FileSystem.removeTree(directory + "/runvoy")
            FileSystem.removeTree(directory)
        }
        #expect(symlink(directory, directory + "-link") == 0)
        defer { unlink(directory + "-link") }
        try ListeningSocket.prepare(path: directory + "-link/runvoy/metrics.sock")
        var info = stat()
        #expect(stat(directory + "/runvoy", &info) == 0 && info.st_mode & 0o7777 == 0o755)
    }
}
