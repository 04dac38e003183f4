import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/SECURITY.md (state and secrets directories): a state directory runvoyd cannot trust stops it with words
/// that name the path and the fix, and nothing in it is changed; the same for a folder on the way to the secrets
/// runtime directory. Each case is a real arrangement in a private folder.
@Suite struct PrivateDirectoriesTests {
    static func folder() throws -> String {
        var template = Array("/tmp/runvoy-private-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        return String(cString: made)
    }

    static func refusal(_ body: () throws(PrivateDirectories.Refusal) -> Void) -> String {
        do throws(PrivateDirectories.Refusal) {
            try body()
            return "no refusal"
        } catch {
            return error.description
        }
    }

    static func state(_ path: String) -> String {
        refusal { () throws(PrivateDirectories.Refusal) in
            _ = try PrivateDirectories.secureStateDirectory(path, fix: true)
        }
    }

    @Test func aStateDirectoryThatIsALinkOrAFileIsRefused() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        let real = directory + "/real"
        #expect(mkdir(real, 0o755) == 0)
        #expect(symlink(real, directory + "/link") == 0)
        let uid = geteuid()
        #expect(
            Self.state(directory + "/link")
                == "the state directory \(directory)/link is a symbolic link; runvoyd does not follow it. Set state_directory to the real directory, or replace the link with a directory owned by uid \(uid) with mode 0700"
        )
        var info = stat()
        #expect(stat(real, &info) == 0 && info.st_mode & 0o777 == 0o755, "the link's target was left alone")
        try Data().write(to: URL(fileURLWithPath: directory + "/file"))
        #expect(Self.state(directory + "/file") == "the state directory \(directory)/file is not a directory")
    }

    /// A history file that is a folder, or an output folder that is a file, is not made private by chmod: it stops
    /// the start, since something other than runvoyd put it there.
    @Test func aStateFileOfTheWrongKindIsRefused() throws {
        let uid = geteuid()
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        #expect(mkdir(directory + "/history.sqlite", 0o700) == 0)
        #expect(
            Self.state(directory)
                == "\(directory)/history.sqlite is not a regular file owned by runvoyd's uid \(uid); remove it or fix it with: chown \(uid) \(directory)/history.sqlite"
        )
        #expect(rmdir(directory + "/history.sqlite") == 0)
        try Data().write(to: URL(fileURLWithPath: directory + "/output"))
        #expect(
            Self.state(directory)
                == "\(directory)/output is not a directory owned by runvoyd's uid \(uid); remove it or fix it with: chown \(uid) \(directory)/output"
        )
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a folder to another user"))
    func aStateDirectoryOfAnotherUserIsRefusedAndLeftAsItIs() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        let state = directory + "/state"
        #expect(mkdir(state, 0o755) == 0 && chown(state, 65534, 65534) == 0)
        #expect(
            Self.state(state)
                == "the state directory \(state) belongs to uid 65534, not to runvoyd's uid 0, so that user can read and change the history and the secrets. Fix it with: chown -R 0 \(state) && chmod 700 \(state)"
        )
        var info = stat()
        #expect(stat(state, &info) == 0 && info.st_mode & 0o777 == 0o755 && info.st_uid == 65534)
    }

    /// (Before, a file two levels up read as "cannot examine PATH, above PATH: Not a directory".)
    @Test func aFileOnTheWayToTheRuntimeDirectoryIsRefused() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        try Data().write(to: URL(fileURLWithPath: directory + "/plain"))
        let path = directory + "/plain/secrets"
        let message = Self.refusal { () throws(PrivateDirectories.Refusal) in
            try PrivateDirectories.checkOwnedPath(path, what: "the secrets runtime directory")
        }
        #expect(
            message == "\(directory)/plain, on the way to the secrets runtime directory \(path), is not a directory")
        // The runtime directory itself a file: named as what it should be.
        let itself = Self.refusal { () throws(PrivateDirectories.Refusal) in
            try PrivateDirectories.checkOwnedPath(directory + "/plain", what: "the secrets runtime directory")
        }
        #expect(itself == "the secrets runtime directory \(directory)/plain is not a directory")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a folder to another user"))
    func aFolderOfAnotherUserOnTheWayIsRefused() throws {
        let directory = try Self.folder()
        defer { FileSystem.removeTree(directory) }
        let theirs = directory + "/theirs"
        #expect(mkdir(theirs, 0o755) == 0 && chown(theirs, 65534, 65534) == 0)
        let path = theirs + "/secrets"
        let message = Self.refusal { () throws(PrivateDirectories.Refusal) in
            try PrivateDirectories.checkOwnedPath(path, what: "the secrets runtime directory")
        }
        #expect(
            message
                == "\(theirs) belongs to uid 65534, who could replace the secrets runtime directory \(path) below it. Put the secrets runtime directory under a directory owned by root, or fix it with: chown root \(theirs)"
        )
    }
}
