import Foundation
import Glibc
import Testing

@testable import RunvoyDaemon

/// Commands are looked up as the run-as user: what that user cannot reach is not found, the same as what does
/// not exist (issue 10, item 8).
@Suite(.enabled(if: geteuid() == 0, "switches the thread's filesystem identity, which needs root"))
struct CommandResolverAsUserTests {
    let nobody = SpawnRequest.Identity(uid: 65534, gid: 65534, groups: [65534])

    /// A root-only folder holding an executable `tool`, and a searchable folder beside it holding `tool` and `sh`.
    func makeTree() throws -> (hidden: String, open: String, remove: () -> Void) {
        var template = Array("/tmp/runvoy-resolver-XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        chmod(root, 0o755)
        let hidden = root + "/hidden"
        let open = root + "/open"
        mkdir(hidden, 0o700)
        mkdir(open, 0o755)
        for path in [hidden + "/tool", open + "/tool", open + "/other"] {
            FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8))
            chmod(path, 0o755)
        }
        return (hidden, open, { try? FileManager.default.removeItem(atPath: root) })
    }

    @Test func aFileBehindAFolderTheUserCannotSearchIsNotFoundLikeAMissingOne() throws {
        let tree = try makeTree()
        defer { tree.remove() }
        #expect(CommandResolver.resolve(tree.hidden + "/tool", searchPath: nil, workingDirectory: "/") != nil)
        #expect(
            CommandResolver.resolve(tree.hidden + "/tool", searchPath: nil, workingDirectory: "/", as: nobody) == nil)
        #expect(
            CommandResolver.resolve(tree.hidden + "/gone", searchPath: nil, workingDirectory: "/", as: nobody) == nil)
        #expect(
            CommandResolver.resolve(tree.open + "/tool", searchPath: nil, workingDirectory: "/", as: nobody)
                == tree.open + "/tool")
        // Root as the run-as user sees everything.
        let root = SpawnRequest.Identity(uid: 0, gid: 0, groups: [0])
        #expect(CommandResolver.resolve(tree.hidden + "/tool", searchPath: nil, workingDirectory: "/", as: root) != nil)
    }

    @Test func thePathSearchStopsAtAFolderTheUserCannotSearchWhateverItHolds() throws {
        let tree = try makeTree()
        defer { tree.remove() }
        let path = "\(tree.hidden):\(tree.open)"
        // Found or not, whether the hidden folder holds the name makes no difference to nobody.
        #expect(CommandResolver.resolve("tool", searchPath: path, workingDirectory: "/", as: nobody) == nil)
        #expect(CommandResolver.resolve("other", searchPath: path, workingDirectory: "/", as: nobody) == nil)
        // Before it, the search works as it always did; root (the rules' view) finds the same or more.
        #expect(
            CommandResolver.resolve(
                "tool", searchPath: "\(tree.open):\(tree.hidden)", workingDirectory: "/", as: nobody)
                == tree.open + "/tool")
        #expect(CommandResolver.resolve("tool", searchPath: path, workingDirectory: "/") == tree.hidden + "/tool")
    }

    @Test func theDaemonThreadGetsItsOwnIdentityBack() throws {
        let tree = try makeTree()
        defer { tree.remove() }
        _ = CommandResolver.resolve(tree.hidden + "/tool", searchPath: nil, workingDirectory: "/", as: nobody)
        // Still root on this thread: the root-only folder is readable, and new files are root's.
        #expect(access(tree.hidden + "/tool", R_OK) == 0)
        let probe = tree.hidden + "/probe"
        FileManager.default.createFile(atPath: probe, contents: Data())
        var info = stat()
        #expect(stat(probe, &info) == 0 && info.st_uid == 0 && info.st_gid == getegid())
    }
}
