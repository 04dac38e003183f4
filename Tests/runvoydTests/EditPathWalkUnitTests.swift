import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// `FileEditor` opens the file's directory with no symbolic link followed on the way (edit2, review note on issue
/// 16): a directory that became a link after the daemon's path checks is refused, for reading and for writing.
/// The first two fail on 105e4a6 (the link was followed).
@Suite(.serialized) struct EditPathWalkUnitTests {
    func directory() throws -> String {
        let path = NSTemporaryDirectory() + "edit-walk-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path + "/outside", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: path + "/editable/site", withIntermediateDirectories: true)
        try "outside\n".write(toFile: path + "/outside/f.conf", atomically: false, encoding: .utf8)
        try "inside\n".write(toFile: path + "/editable/site/f.conf", atomically: false, encoding: .utf8)
        return path
    }

    @Test func aDirectoryThatIsNowALinkIsNotFollowedWhenReading() throws {
        let root = try directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        rename(root + "/editable/site", root + "/editable/held")
        symlink(root + "/outside", root + "/editable/site")
        #expect(throws: RunvoyError.self) {
            try FileEditor(identity: nil).read(root + "/editable/site/f.conf", maxBytes: 100)
        }
        var error: RunvoyError?
        do {
            _ = try FileEditor(identity: nil).read(root + "/editable/site/f.conf", maxBytes: 100)
        } catch let caught {
            error = caught
        }
        #expect(error?.message.contains("link") == true, "\(String(describing: error))")
    }

    @Test func aDirectorySwappedForALinkBetweenReadAndSaveIsNotWrittenThrough() async throws {
        let root = try directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/editable/site/f.conf"
        let editor = FileEditor(identity: nil)
        let snapshot = try editor.read(path, maxBytes: 100)
        // The same file, reached through a link: the identity check alone would let the write through.
        rename(root + "/editable/site", root + "/outside/site")
        symlink(root + "/outside/site", root + "/editable/site")
        await #expect(throws: (any Error).self) {
            try await editor.write(path, content: Array("changed\n".utf8), over: snapshot) {}
        }
        #expect(try String(contentsOfFile: root + "/outside/site/f.conf", encoding: .utf8) == "inside\n")
    }

    @Test func theWalkStartsAtTheEditableEntryAndStaysBeneathIt() throws {
        let root = try directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let editor = FileEditor(identity: nil, base: root + "/editable")
        #expect(try editor.read(root + "/editable/site/f.conf", maxBytes: 100).content == Array("inside\n".utf8))
        #expect(FileEditor.place(root + "/editable/f.conf", base: root + "/editable")! == ("", "f.conf"))
        #expect(FileEditor.place("/etc/a/b", base: "/")! == ("etc/a", "b"))
        #expect(FileEditor.place(root + "/outside/f.conf", base: root + "/editable") == nil)
        #expect(throws: RunvoyError.self) { try editor.read(root + "/outside/f.conf", maxBytes: 100) }
        // The entry itself replaced by a link.
        rename(root + "/editable", root + "/moved")
        symlink(root + "/outside", root + "/editable")
        #expect(throws: RunvoyError.self) { try editor.read(root + "/editable/f.conf", maxBytes: 100) }
    }

    @Test func aKernelWithoutOpenat2IsAClearRefusal() {
        let error = FileEditor.failure(-1, errno: ENOSYS, path: "/etc/app.conf", maxBytes: 0)
        #expect(error.code == .invalidState && error.message.contains("openat2"))
        let link = FileEditor.failure(-1, errno: ELOOP, path: "/etc/app.conf", maxBytes: 0)
        #expect(link.code == .invalidArgument && link.message.contains("link"))
    }
}
