import Foundation
import Glibc
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// The history checkpointer on a full file system (a small tmpfs): a checkpoint that cannot be written is said, and
/// the end of an execution kept in memory is written once there is room again, which it says too.
@Suite(.serialized, .enabled(if: geteuid() == 0, "needs root to mount a small tmpfs"))
struct HistoryCheckpointerTests {
    static func info(_ n: Int) -> ExecutionInfo {
        let digits = String(n)
        return ExecutionInfo(
            executionId: String(repeating: "0", count: 26 - digits.count) + digits, status: .running,
            callerUid: 1000, callerUser: "alice", callerPid: 42, executor: "default", runAs: "nobody:nogroup",
            argv: ["echo", String(repeating: "x", count: 2000)], workingDirectory: "/", envKeys: [], pid: nil,
            exitCode: nil, signal: nil, createdAtMs: 1_000_000 + Int64(n), startedAtMs: nil, finishedAtMs: nil,
            durationUsec: nil, stdoutBytes: 0, stderrBytes: 0, storedBytes: 0, droppedBytes: 0, outputPruned: false,
            configDigest: "abc", reason: nil)
    }

    /// Fills the file system holding `path` (writes zeros until a write fails).
    static func fill(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        defer { close(fd) }
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Waits (a bounded poll, not a timing assertion) until `condition` holds.
    static func eventually(_ condition: () throws -> Bool) async rethrows -> Bool {
        for _ in 0..<6000 {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return try condition()
    }

    @Test func aFailedCheckpointIsSaidAndAKeptEndIsWrittenOnceThereIsRoom() async throws {
        var template = Array("/tmp/runvoy-checkpoint-XXXXXX".utf8CString)
        let state = String(cString: mkdtemp(&template)!)
        defer { rmdir(state) }
        try #require(mount("tmpfs", state, "tmpfs", 0, "size=32m,mode=0700") == 0, "\(SystemError.text())")
        defer { umount2(state, Int32(MNT_DETACH)) }
        let store = try ExecutionStore(stateDirectory: state + "/history")
        // Pages in the write-ahead log that a checkpoint must copy into a database file that has to grow.
        try store.insertMany((0..<200).map(Self.info))
        let id = Self.info(0).executionId
        Self.fill(state + "/filler")
        let outcome = ExecutionStore.Outcome(
            status: .succeeded, pid: 7, exitCode: 0, signal: nil, startedAtMs: 1_000_001, finishedAtMs: 1_000_002,
            durationUsec: 1000, totals: .init(), reason: nil)
        #expect(throws: StoreError.self) { try store.finish(id, outcome) }
        try #require(store.pendingCount == 1, "the end is kept in memory")

        let recorder = LogRecorder()
        let checkpointer = HistoryCheckpointer(store: store, logger: recorder.logger, interval: .milliseconds(20))
        let task = Task { try await checkpointer.run() }
        let failed = "history checkpoint failed"
        let written = "the ends of executions kept in memory are now in the history"
        #expect(await Self.eventually { !recorder.lines(failed).isEmpty })
        #expect(recorder.lines(failed).first?.level == .warning)
        #expect(recorder.lines(failed).first?.metadata["error"]?.contains("cannot checkpoint") == true)
        #expect(recorder.lines(written).isEmpty, "nothing is written while the disk is full")
        #expect(store.pendingCount == 1)

        unlink(state + "/filler")
        #expect(await Self.eventually { !recorder.lines(written).isEmpty })
        #expect(recorder.lines(written).count == 1)
        #expect(recorder.lines(written).first?.level == .notice)
        #expect(store.pendingCount == 0)
        task.cancel()
        try await task.value
        let stored = try #require(try store.get(id))
        #expect(stored.status == .succeeded && stored.exitCode == 0 && stored.finishedAtMs == 1_000_002)
    }
}
