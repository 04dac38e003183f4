import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyStore

/// A state directory on a full file system (a small tmpfs): a backup that cannot copy the history or write its
/// manifest says so and leaves no work folder; an end that waits in memory is listed under its new status.
@Suite(.serialized, .enabled(if: geteuid() == 0, "needs root to mount a small tmpfs"))
struct FullStateDirectoryTests {
    /// Fills the file system holding `path` (writes zeros until a write fails).
    static func fill(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { close(fd) }
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    @Test func aBackupOnAFullDiskFailsWholeAndAnEndKeptInMemoryIsListedUnderItsNewStatus() throws {
        var template = Array("/tmp/runvoy-full-XXXXXX".utf8CString)
        let mountPoint = String(cString: try #require(mkdtemp(&template)))
        defer { rmdir(mountPoint) }
        try #require(mount("tmpfs", mountPoint, "tmpfs", 0, "size=8m,mode=0700") == 0, "\(SystemError.text())")
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        let state = mountPoint + "/state"
        let store = try ExecutionStore(stateDirectory: state)
        for n in 0..<3 {
            let id = ExecutionStoreTests.id(n)
            try store.insert(ExecutionStoreTests.info(id, createdAtMs: 10 + Int64(n)))
            let recorder = store.makeRecorder(id, cap: 1 << 20)
            Array("output \(n)\n".utf8).withUnsafeBytes { recorder.append(.stdout, $0) }
            recorder.finish()
        }
        let running = ExecutionStoreTests.id(9)
        try store.insert(ExecutionStoreTests.info(running, status: .running, createdAtMs: 20))
        let filler = mountPoint + "/filler"
        Self.fill(filler)
        func workFolders() -> [String] { FileSystem.entries(state).filter { $0.hasPrefix(".backup-") } }

        // No room for the copy of the history.
        let copy = #expect(throws: StoreError.self) {
            _ = try BackupWriter(store: store, softwareVersion: "test", key: nil) { _ in nil }
        }
        #expect(copy?.code == .database)
        #expect(
            copy?.message.hasPrefix("cannot copy the execution history for a backup: ") == true,
            "\(String(describing: copy))")
        #expect(workFolders().isEmpty)

        // An end that cannot be written waits in memory; `list` filters by the status it will have.
        let outcome = ExecutionStore.Outcome(
            status: .succeeded, pid: 7, exitCode: 0, signal: nil, startedAtMs: 20, finishedAtMs: 21,
            durationUsec: 1000, totals: .init(), reason: nil)
        #expect(throws: StoreError.self) { try store.finish(running, outcome) }
        try #require(store.pendingCount == 1)
        let succeeded = try store.list(ListParams(status: [.succeeded]), ownerUid: nil).map(\.executionId)
        #expect(succeeded.contains(running) && succeeded.count == 4)
        #expect(try store.list(ListParams(status: [.running]), ownerUid: nil).isEmpty)

        // Room for the copy, then none for the manifest.
        unlink(filler)
        #expect(store.flushPending())
        let writer = try BackupWriter(store: store, softwareVersion: "test", key: nil) { _ in nil }
        Self.fill(filler)
        let manifest = #expect(throws: StoreError.self) {
            while try writer.next() != nil {}
        }
        #expect(manifest?.code == .output)
        #expect(
            manifest?.message.hasPrefix("cannot write the backup manifest: ") == true, "\(String(describing: manifest))"
        )
        #expect(manifest?.message.hasSuffix("No space left on device") == true, "\(String(describing: manifest))")
        writer.discard()
        #expect(workFolders().isEmpty)
    }
}
