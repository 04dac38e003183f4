import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// docs/CONFIGURATION.md (`editable`): every folder on the way to an edited file must be one only root or the
/// executor's user can change, and none may be a symbolic link. Review of be65455 (finding A), reproduced: an
/// `editable` entry that is a link, kept in a folder another account owns (a web application's folder), followed
/// whoever owns that folder: the service account pointed the link at a root-only folder, and a developer read its
/// files through a root executor (`redirectableDirectory` looked only at the folders of the resolved path). Now a
/// path is edited only by its real path.
@Suite(.enabled(if: geteuid() == 0, "needs root to give the link's folder to another account"))
struct EditLinkedEntryTests {
    @Test func anEditableEntryThatIsALinkInAnotherAccountsFolderIsNotFollowed() async throws {
        var template = Array("/tmp/runvoy-edit-link-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(base) }
        #expect(chmod(base, 0o755) == 0)
        for name in ["www", "conf", "private"] { #expect(mkdir(base + "/" + name, 0o755) == 0) }
        try Data("TOPSECRET\n".utf8).write(to: URL(fileURLWithPath: base + "/private/shadow"))
        #expect(chmod(base + "/private/shadow", 0o600) == 0)
        // The administrator's entry, `www/conf`, is a link to a root folder, in a folder the service account owns.
        #expect(symlink(base + "/conf", base + "/www/conf") == 0)
        #expect(lchown(base + "/www/conf", 1, 1) == 0 && chown(base + "/www", 1, 1) == 0)
        // The service account points it elsewhere.
        #expect(unlink(base + "/www/conf") == 0 && symlink(base + "/private", base + "/www/conf") == 0)
        let yaml =
            RouterTests.developerYAML.replacingOccurrences(
                of: #"run_as: {user: "nobody", group: "nogroup"}"#, with: #"run_as: {user: "root", group: "root"}"#)
            + "\n    editable: [\"\(base)/www/conf\"]\n"
        #expect(yaml.contains(#"user: "root""#))
        try await InProcessConnection.with(caller: RouterTests.nobody, yaml: yaml) { connection in
            let reply = await connection.call(
                #"{"v":1,"id":1,"method":"edit_open","params":{"path":"\#(base)/www/conf/shadow"}}"#)
            #expect(!reply.contains(Base64.encode(Array("TOPSECRET\n".utf8))), "a developer read a root-only file")
            #expect(
                reply.contains(
                    #""code":"permission_denied","message":"\#(base)/www/conf/shadow passes through a symbolic link; runvoyd edits a file only by its real path"#
                ), "\(reply)")
        }
    }
}
