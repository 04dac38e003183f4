import CRunvoyPosix
import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Security review of `runvoyctl edit` (issue 16, item 4; PoC from branch revedit, failed on 3278b33 and on
/// f8e5ea2): the write-back is a new file renamed over the old one, and it kept only the old one's owner and
/// `st_mode` bits, so the file's access ACL and other extended attributes were lost.
@Suite(.serialized) struct EditAttributeTests {
    func text(_ string: String) -> [UInt8] { Array(string.utf8) }

    func hasACL(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        return fd >= 0 && runvoy_has_access_acl(fd) == 1
    }

    /// Runs a Python snippet with `path` as `sys.argv[1]` (the Glibc module has no setxattr); its exit status.
    func python(_ code: String, _ path: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", "import os,struct,sys\n" + code, path]
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func temporaryDirectory() throws -> String {
        let directory = NSTemporaryDirectory() + "edit-xattr-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// For a file with an ACL the group bits of `st_mode` are the ACL's mask, so after the ACL is lost the file's
    /// owning group, which the ACL gave no access (`group::---`), can read it: a secret shared with one extra
    /// group through an ACL becomes readable by the owning group (sudoedit writes into the existing file and keeps
    /// its metadata).
    @Test(.enabled(if: geteuid() == 0, "needs root to set owners"))
    func anEditKeepsTheFilesAccessACL() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/secret.conf"
        FileManager.default.createFile(atPath: path, contents: Data("password=hunter2\n".utf8))
        // Owner root, owning group 4711 with no access; group 4712 may read through the ACL.
        chown(path, 0, 4711)
        chmod(path, 0o640)
        // The ACL as the kernel stores it (version 2; tag, perm, id): user::rw-, group::---, group:4712:r--,
        // mask::r--, other::---.
        let status = try python(
            "os.setxattr(sys.argv[1], 'system.posix_acl_access', struct.pack('<I',2) + "
                + "b''.join(struct.pack('<HHI',t,p,i) for t,p,i in [(1,6,2**32-1),(4,0,2**32-1),(8,4,4712),"
                + "(16,4,2**32-1),(32,0,2**32-1)]))",
            path)
        try #require(status == 0 && hasACL(path), "cannot set an ACL here")
        let editor = FileEditor(identity: nil)
        let snapshot = try editor.read(path, maxBytes: 1000)
        try await editor.write(path, content: text("password=hunter3\n"), over: snapshot) {}

        #expect(FileManager.default.contents(atPath: path) == Data("password=hunter3\n".utf8))
        let kept = hasACL(path)
        #expect(kept, "the edited file lost its ACL")
        var info = stat()
        stat(path, &info)
        let owningGroupReads = !kept && info.st_gid == 4711 && info.st_mode & 0o040 != 0
        #expect(!owningGroupReads, "group 4711, which had no access, can now read the secret")
        #expect(info.st_mode & 0o7777 == 0o640)
        #expect(
            try python(
                "assert os.getxattr(sys.argv[1], 'system.posix_acl_access')[20:28] == "
                    + "struct.pack('<HHI',8,4,4712)[:8]", path) == 0, "the ACL's named-group entry changed")
    }

    /// Other extended attributes (`user.*` here) come along too; `security.capability` does not (the kernel
    /// removes it from a file whose content is written, as it would for sudoedit's write in place).
    @Test func anEditKeepsUserAttributesAndDropsFileCapabilities() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/tagged.conf"
        FileManager.default.createFile(atPath: path, contents: Data("a\n".utf8))
        try #require(
            try python("os.setxattr(sys.argv[1], 'user.origin', b'puppet')", path) == 0,
            "this file system has no user attributes")
        let editor = FileEditor(identity: nil)
        let snapshot = try editor.read(path, maxBytes: 1000)
        try await editor.write(path, content: text("b\n"), over: snapshot) {}
        #expect(FileManager.default.contents(atPath: path) == Data("b\n".utf8))
        #expect(try python("assert os.getxattr(sys.argv[1], 'user.origin') == b'puppet'", path) == 0)
    }

    /// An attribute the new file cannot be given is a refusal that names it, and the old file stays as it was.
    @Test func anAttributeThatCannotBeCopiedRefusesTheSaveAndKeepsTheOldFile() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/f.conf"
        FileManager.default.createFile(atPath: path, contents: Data("old\n".utf8))
        let snapshot = try FileEditor(identity: nil).read(path, maxBytes: 1000)
        // The copy fails for this attribute (a test hook: the kernel would refuse e.g. a SELinux label the
        // executor's user may not set).
        let editor = FileEditor(identity: nil, refuseAttribute: "user.origin")
        try #require(try python("os.setxattr(sys.argv[1], 'user.origin', b'x')", path) == 0)
        let fresh = try editor.read(path, maxBytes: 1000)
        await #expect(throws: RunvoyError.self) {
            try await editor.write(path, content: text("new\n"), over: fresh) {}
        }
        do {
            try await editor.write(path, content: text("new\n"), over: fresh) {}
        } catch let error as RunvoyError {
            #expect(error.message.contains("user.origin"), "\(error.message)")
            #expect(error.code == .permissionDenied)
        }
        #expect(FileManager.default.contents(atPath: path) == Data("old\n".utf8))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(leftovers == ["f.conf"], "the temporary file was left behind: \(leftovers)")
        _ = snapshot
    }

    /// A directory with a default ACL gives one to every new file in it, the edit's temporary file too: a file that
    /// had no ACL must not come out of an edit with the directory's.
    @Test func aFileWithoutAnACLDoesNotInheritTheDirectorysDefaultACL() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/plain.conf"
        FileManager.default.createFile(atPath: path, contents: Data("a\n".utf8))
        chmod(path, 0o600)
        // Default ACL (version 2): user::rw-, group::r--, other::---, and user 4713 may read.
        let status = try python(
            "os.setxattr(sys.argv[1], 'system.posix_acl_default', struct.pack('<I',2) + "
                + "b''.join(struct.pack('<HHI',t,p,i) for t,p,i in [(1,6,2**32-1),(2,4,4713),(4,4,2**32-1),"
                + "(16,4,2**32-1),(32,0,2**32-1)]))",
            directory)
        try #require(status == 0, "cannot set a default ACL here")
        #expect(!hasACL(path))
        let editor = FileEditor(identity: nil)
        let snapshot = try editor.read(path, maxBytes: 1000)
        try await editor.write(path, content: text("b\n"), over: snapshot) {}
        #expect(FileManager.default.contents(atPath: path) == Data("b\n".utf8))
        #expect(!hasACL(path), "the edited file took the directory's default ACL (user 4713 may read it now)")
        var info = stat()
        stat(path, &info)
        #expect(info.st_mode & 0o7777 == 0o600)
    }
}
