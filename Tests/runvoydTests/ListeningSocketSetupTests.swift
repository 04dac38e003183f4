import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/SECURITY.md and CONFIGURATION.md (`socket`): the daemon binds its socket only in a folder it has walked
/// to and checked, never replaces a file that is not a socket, never touches what a symlink at the socket's name
/// points to, and says in words what stopped it. Each case is a real file system arrangement in a private folder.
@Suite struct ListeningSocketSetupTests {
    /// A private folder (mode 0700, the test's own account) for one case.
    static func folder() throws -> String {
        var template = Array("/tmp/runvoy-socket-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        return String(cString: made)
    }

    static func setupError(_ body: () throws(ListeningSocket.SetupError) -> Void) -> String {
        do throws(ListeningSocket.SetupError) {
            try body()
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func aFileThatIsNotASocketIsNeverReplaced() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        let path = directory + "/runvoyd.sock"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in try ListeningSocket.prepare(path: path)
        }
        #expect(message == "\(path) exists and is not a socket; refusing to replace it")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }

    @Test func anUnknownSocketGroupLeavesNoSocketFileBehind() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        let path = directory + "/runvoyd.sock"
        var settings = SocketSettings()
        settings.group = "runvoy-no-such-group"
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in
            _ = try ListeningSocket.bind(path: path, settings: settings, backlog: 8)
        }
        #expect(message == "socket group 'runvoy-no-such-group' does not exist")
        #expect(access(path, F_OK) != 0, "nothing was bound")
    }

    @Test(arguments: ["/", "/tmp/", "/tmp/.", "/tmp/.."])
    func aPathThatNamesNoFileIsRefused(path: String) {
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in
            _ = try ListeningSocket.Folder(of: path)
        }
        #expect(message == "the socket path \(path) does not name a file")
    }

    /// A name that fits neither through /proc/self/fd nor as the path itself (sun_path holds 107 bytes).
    @Test func aPathTooLongForAUnixSocketIsRefusedAndNothingIsLeft() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        let path = directory + "/" + String(repeating: "s", count: 120)
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in
            _ = try ListeningSocket.bind(path: path, settings: SocketSettings(), backlog: 8)
        }
        #expect(message == "the socket path \(path) is too long for a Unix socket")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    /// Two links that name each other: the walk follows at most `maxLinks` and says why it stopped.
    @Test func aLoopOfSymbolicLinksEndsTheWalk() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        #expect(symlink("b", directory + "/a") == 0 && symlink("a", directory + "/b") == 0)
        let path = directory + "/a/runvoyd.sock"
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in
            try ListeningSocket.prepare(path: path)
        }
        #expect(message == "too many symbolic links on the way to \(directory)/a")
    }

    @Test func aFileOnTheWayIsNotAFolder() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        try Data().write(to: URL(fileURLWithPath: directory + "/plain"))
        let path = directory + "/plain/runvoyd.sock"
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in
            try ListeningSocket.prepare(path: path)
        }
        #expect(message == "cannot open the socket's folder \(directory)/plain: \(String(cString: strerror(ENOTDIR)))")
    }

    /// A relative socket path is taken from the working directory: the walk names the absolute folder.
    @Test func aRelativePathIsWalkedFromTheWorkingDirectory() throws {
        let name = "runvoy-missing-\(UUID().uuidString)"
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in
            _ = try ListeningSocket.Folder(of: name + "/runvoyd.sock")
        }
        let here = FileManager.default.currentDirectoryPath
        // The working directory may itself sit below a folder others can write; then the walk stops there.
        let refusedAbove = message.contains("may be written by another account")
        #expect(
            refusedAbove
                || message == "cannot open the socket's folder \(here)/\(name): \(String(cString: strerror(ENOENT)))",
            "\(message)")
    }

    /// A symlink planted at the socket's name is refused and its target keeps its mode.
    @Test func permissionsAreNeverAppliedThroughASymlinkAtTheSocketsName() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        let target = directory + "/target"
        try Data().write(to: URL(fileURLWithPath: target))
        #expect(chmod(target, 0o600) == 0)
        let path = directory + "/runvoyd.sock"
        #expect(symlink(target, path) == 0)
        var settings = SocketSettings()
        settings.mode = 0o666
        let message = Self.setupError { () throws(ListeningSocket.SetupError) in
            try ListeningSocket.applyPermissions(path: path, settings: settings)
        }
        #expect(message == "\(path) is not the socket runvoyd bound; refusing to touch it")
        var info = stat()
        #expect(stat(target, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }
}
