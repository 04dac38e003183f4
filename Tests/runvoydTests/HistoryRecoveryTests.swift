import Foundation
import Glibc
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Recovery at start when what the previous daemon left is damaged: stored output that cannot be read, and a
/// full disk that cannot take the end of a queued execution yet. Neither stops the start; both are said and audited.
@Suite(.serialized)
struct HistoryRecoveryTests {
    struct Setup {
        let journald: JournalTests.FakeJournald
        let journal: Journal
        let log = LogRecorder()
        var audit: AuditLog { AuditLog(failClosed: true, logger: log.logger, journal: journal) }

        init() throws {
            journald = try JournalTests.FakeJournald()
            journal = Journal(socketPath: journald.path)
        }

        /// The audit records written so far whose RUNVOY_EVENT is `event`.
        func records(_ event: String) -> [String] {
            journal.drain(timeout: .seconds(30))
            return journald.receiveAll().filter { $0.contains("\nRUNVOY_EVENT=\(event)\n") }
        }
    }

    static func info(_ n: Int, _ status: ExecutionStatus) -> ExecutionInfo {
        var info = HistoryCheckpointerTests.info(n)
        info.status = status
        return info
    }

    @Test func aLostExecutionWhoseStoredOutputIsUnreadableIsStillMarkedLostAndAudited() throws {
        var template = Array("/tmp/runvoy-recovery-XXXXXX".utf8CString)
        let state = String(cString: try #require(mkdtemp(&template)))
        defer { _ = system("rm -rf '\(state)'") }
        let store = try ExecutionStore(stateDirectory: state)
        let info = Self.info(1, .running)
        try store.insert(info)
        let output = store.outputDirectory(info.executionId)
        mkdir(output, 0o700)
        _ = FileManager.default.createFile(atPath: output + "/head", contents: Data("not a segment at all".utf8))

        let setup = try Setup()
        try HistoryRecovery.run(store: store, audit: setup.audit, logger: setup.log.logger)
        let warning = try #require(setup.log.lines("stored output of a lost execution is unreadable").first)
        #expect(warning.level == .warning && warning.metadata["execution"] == info.executionId)
        #expect(warning.metadata["error"]?.contains("has a bad segment header") == true)
        let lost = try #require(try store.get(info.executionId))
        #expect(lost.status == .lost && lost.stdoutBytes == 0)
        #expect(lost.reason == "runvoyd stopped while the execution was running")
        // No pid was recorded: none is looked for, and the record says so with an empty PID.
        let record = try #require(setup.records("execution_lost").first)
        #expect(record.contains("\nRUNVOY_PID=\n") && record.contains("\nRUNVOY_ORPHAN=gone\n"))
        #expect(record.contains("\nRUNVOY_STDOUT_BYTES=0\n"))
        // The folder is the execution's: the orphan sweep keeps it.
        #expect(access(output + "/head", F_OK) == 0)
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to mount a small tmpfs"))
    func aQueuedExecutionCancelledOnAFullDiskIsKeptUntilThereIsRoom() throws {
        var template = Array("/tmp/runvoy-recovery-XXXXXX".utf8CString)
        let state = String(cString: try #require(mkdtemp(&template)))
        defer { rmdir(state) }
        try #require(mount("tmpfs", state, "tmpfs", 0, "size=8m,mode=0700") == 0, "\(SystemError.text())")
        defer { umount2(state, Int32(MNT_DETACH)) }
        let store = try ExecutionStore(stateDirectory: state + "/history")
        let info = Self.info(2, .queued)
        try store.insert(info)
        HistoryCheckpointerTests.fill(state + "/filler")

        let setup = try Setup()
        try HistoryRecovery.run(store: store, audit: setup.audit, logger: setup.log.logger)
        let error = try #require(setup.log.lines("cannot record a cancelled execution yet").first)
        #expect(error.level == .error && error.metadata["execution"] == info.executionId)
        // The end waits in memory, and is shown meanwhile; the record is written all the same.
        #expect(store.pendingCount == 1)
        #expect(try store.get(info.executionId)?.status == .cancelled)
        let record = try #require(setup.records("execution_cancelled").first)
        #expect(record.contains("\nRUNVOY_CAUSE=restart\n"))

        unlink(state + "/filler")
        #expect(store.flushPending())
        #expect(store.pendingCount == 0)
        let stored = try #require(try store.get(info.executionId))
        #expect(stored.status == .cancelled && stored.reason?.contains("waited in the queue") == true)
    }
}
