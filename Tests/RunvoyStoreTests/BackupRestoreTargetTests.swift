import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyStore

/// Where a restore goes: a target it cannot use, a file system that is read-only or fills up, a target that
/// someone fills while the restore runs. Each is said, and none leaves a half-restored directory.
@Suite(.serialized)
struct BackupRestoreTargetTests {
    /// A small backup (one execution with output) and a folder to restore it around.
    struct Small {
        let directory = TemporaryDirectory()
        let archive: String

        init() throws {
            let store = try ExecutionStore(stateDirectory: directory.path + "/state")
            let id = ExecutionStoreTests.id(1)
            try store.insert(ExecutionStoreTests.info(id, createdAtMs: 1000))
            let recorder = store.makeRecorder(id, cap: 1 << 20)
            let line = [UInt8](repeating: UInt8(ascii: "x"), count: 4095) + [10]
            for _ in 0..<64 { line.withUnsafeBytes { recorder.append(.stdout, $0) } }
            recorder.finish()
            archive = directory.path + "/backup.tar"
            let writer = try BackupWriter(store: store, softwareVersion: "test", key: nil) { _ in nil }
            var bytes: [UInt8] = []
            while let piece = try writer.next() { bytes += piece }
            try Data(bytes).write(to: URL(fileURLWithPath: archive))
        }

        func refusal(into target: String, archive: String? = nil) -> String? {
            BackupTests.refusal(archive ?? self.archive, into: target)
        }

        /// Folders a restore works in, left in `parent`.
        static func leftovers(_ parent: String) -> [String] {
            FileSystem.entries(parent).filter { $0.contains(".restore-") }
        }
    }

    @Test func aTargetThatIsAFileLiesUnderAFileOrHasNoParentIsRefused() throws {
        let small = try Small()
        defer { small.directory.remove() }
        let file = small.directory.path + "/file"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect(
            small.refusal(into: file) == "\(file) exists and is not a directory; restore into an empty or new directory"
        )
        #expect(small.refusal(into: file + "/restored") == "cannot examine \(file)/restored: Not a directory")
        let missing = small.directory.path + "/missing/parent"
        #expect(
            small.refusal(into: missing + "/restored")
                == "cannot create a folder in \(missing): No such file or directory")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "x")
        #expect(Small.leftovers(small.directory.path).isEmpty)
    }

    @Test func anArchiveThatCannotBeOpenedOrReadIsSaid() throws {
        let small = try Small()
        defer { small.directory.remove() }
        let target = small.directory.path + "/restored"
        let missing = small.directory.path + "/nothing.tar"
        #expect(
            small.refusal(into: target, archive: missing) == "cannot open \(missing): No such file or directory")
        #expect(small.refusal(into: target, archive: small.directory.path) == "cannot read the archive: Is a directory")
        #expect(access(target, F_OK) != 0 && Small.leftovers(small.directory.path).isEmpty)
        // A target named without a folder is made in the current one, and one right under / in /: the work
        // folder goes there too, and goes again.
        let name = "runvoy-restore-test-\(UInt64.random(in: 0...UInt64.max))"
        #expect(small.refusal(into: name, archive: missing) == "cannot open \(missing): No such file or directory")
        #expect(!FileSystem.entries(".").contains { $0.hasPrefix(".\(name).restore-") })
        #expect(
            small.refusal(into: "/" + name, archive: missing) == "cannot open \(missing): No such file or directory")
        #expect(!FileSystem.entries("/").contains { $0.hasPrefix(".\(name).restore-") })
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to mount a tmpfs"))
    func aReadOnlyOrFullFileSystemRefusesTheRestoreAndKeepsNothingOfIt() throws {
        let small = try Small()
        defer { small.directory.remove() }
        let mountPoint = small.directory.path + "/mnt"
        mkdir(mountPoint, 0o700)
        try #require(mount("tmpfs", mountPoint, "tmpfs", UInt(MS_RDONLY), "size=1m") == 0, "\(SystemError.text())")
        #expect(
            small.refusal(into: mountPoint + "/restored")
                == "cannot create a folder in \(mountPoint): Read-only file system")
        umount2(mountPoint, Int32(MNT_DETACH))

        // Room for the work folder and the history, not for the 256 KiB of output.
        try #require(mount("tmpfs", mountPoint, "tmpfs", 0, "size=128k,mode=0700") == 0, "\(SystemError.text())")
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        let message = try #require(small.refusal(into: mountPoint + "/restored"))
        #expect(message.hasPrefix("cannot write \(mountPoint)/.restored.restore-"), "\(message)")
        #expect(message.hasSuffix("No space left on device"), "\(message)")
        #expect(FileSystem.entries(mountPoint).isEmpty)
        // Once there is room, the same archive restores.
        #expect(mount("tmpfs", mountPoint, "tmpfs", UInt(MS_REMOUNT), "size=4m") == 0, "\(SystemError.text())")
        #expect(try BackupTests.restore(small.archive, into: mountPoint + "/restored").executions == 1)
    }

    @Test func aTargetThatSomeoneFillsDuringTheRestoreIsNotTakenOver() throws {
        let small = try Small()
        defer { small.directory.remove() }
        let target = small.directory.path + "/restored"
        mkdir(target, 0o755)
        let intruder = target + "/intruder"
        let message = Self.refusal { () throws(BackupError) in
            try BackupRestore.restore(archive: small.archive, into: target) { _ throws(BackupError) in
                _ = FileManager.default.createFile(atPath: intruder, contents: Data("mine".utf8))
                return nil
            }
        }
        #expect(message == "cannot move the restored state to \(target): Directory not empty")
        #expect(FileSystem.entries(target) == ["intruder"])
        #expect(try String(contentsOfFile: intruder, encoding: .utf8) == "mine")
        #expect(Small.leftovers(small.directory.path).isEmpty)
    }

    @Test func aWorkFolderTamperedWithDuringTheRestoreIsRefused() throws {
        let small = try Small()
        defer { small.directory.remove() }
        let parent = small.directory.path
        var work = ""
        let message = Self.refusal { () throws(BackupError) in
            try BackupRestore.restore(archive: small.archive, into: parent + "/restored") { _ throws(BackupError) in
                // The history is swapped for a folder after it was checked.
                work = parent + "/" + (Small.leftovers(parent).first ?? "?")
                unlink(work + "/history.sqlite")
                mkdir(work + "/history.sqlite", 0o700)
                return nil
            }
        }
        #expect(message == "cannot open \(work)/history.sqlite: Is a directory")
        #expect(Small.leftovers(parent).isEmpty && access(parent + "/restored", F_OK) != 0)
    }

    static func refusal(_ restore: () throws(BackupError) -> BackupRestore.Report) -> String? {
        do {
            _ = try restore()
            return nil
        } catch {
            return error.message
        }
    }

    @Test func aRefusalDescribesItselfByItsMessage() {
        let error = BackupError("the archive is truncated")
        #expect("\(error)" == "the archive is truncated" && error.description == error.message)
    }
}
