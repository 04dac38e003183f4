import GRDB
import Glibc
import RunvoyKit
import Testing

import struct Synchronization.Atomic

@testable import RunvoyStore

struct ExecutionStoreTests {
    static func info(
        _ id: String, uid: UInt32 = 1000, user: String = "alice", executor: String = "default",
        status: ExecutionStatus = .succeeded, createdAtMs: Int64, stored: Int64 = 0
    ) -> ExecutionInfo {
        ExecutionInfo(
            executionId: id, status: status, callerUid: uid, callerUser: user, callerPid: 42, executor: executor,
            runAs: "nobody:nogroup", argv: ["echo", "it's \"quoted\"", "ünï"], workingDirectory: "/",
            envKeys: ["LANG"], pid: nil, exitCode: status == .succeeded ? 0 : nil, signal: nil,
            createdAtMs: createdAtMs, startedAtMs: nil, finishedAtMs: nil, durationUsec: nil, stdoutBytes: stored,
            stderrBytes: 0, storedBytes: stored, droppedBytes: 0, outputPruned: false, configDigest: "abc",
            reason: nil)
    }

    static func id(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: 26 - digits.count) + digits
    }

    @Test func recordsRoundTripAndListIsNewestFirstWithFilters() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        for n in 0..<30 {
            try store.insert(
                Self.info(
                    Self.id(n), uid: n % 2 == 0 ? 1000 : 1001, user: n % 2 == 0 ? "alice" : "bob",
                    executor: n % 3 == 0 ? "deploy" : "default", status: n % 5 == 0 ? .failed : .succeeded,
                    createdAtMs: 1_000_000 + Int64(n)))
        }
        #expect(
            try store.get(Self.id(7))
                == Self.info(
                    Self.id(7), uid: 1001, user: "bob", executor: "default", createdAtMs: 1_000_007))
        #expect(try store.get(Self.id(99)) == nil)

        let all = try store.list(ListParams(limit: 10), ownerUid: nil)
        #expect(all.map(\.executionId) == (20..<30).reversed().map(Self.id))
        let mine = try store.list(ListParams(limit: 100), ownerUid: 1001)
        #expect(mine.count == 15 && mine.allSatisfy { $0.callerUid == 1001 })
        let failedDeploy = try store.list(ListParams(status: [.failed], executor: "deploy"), ownerUid: nil)
        #expect(failedDeploy.map(\.executionId) == [Self.id(15), Self.id(0)])
        let byUser = try store.list(ListParams(user: "alice", sinceMs: 1_000_020), ownerUid: nil)
        #expect(byUser.map(\.executionId) == [28, 26, 24, 22, 20].map(Self.id))
        #expect(try store.integrityCheck() == ["ok"])
    }

    @Test func finishRecordsTheOutcomeAndUnfinishedOnesCanBeMarkedLost() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        try store.insert(Self.info(Self.id(1), status: .running, createdAtMs: 10))
        try store.insert(Self.info(Self.id(2), status: .running, createdAtMs: 20))
        try store.finish(
            Self.id(1),
            .init(
                status: .killed, pid: 77, exitCode: nil, signal: 15, startedAtMs: 11, finishedAtMs: 30,
                durationUsec: 19_000, totals: .init(stdoutBytes: 5, stderrBytes: 6, storedBytes: 11), reason: nil))
        let finished = try #require(try store.get(Self.id(1)))
        #expect(finished.status == .killed && finished.signal == 15 && finished.pid == 77)
        #expect(finished.stdoutBytes == 5 && finished.stderrBytes == 6 && finished.durationUsec == 19_000)

        #expect(try store.unfinished().map(\.executionId) == [Self.id(2)])
        try store.markLost(Self.id(2), atMs: 40, reason: "gone", totals: .init(stdoutBytes: 3, storedBytes: 3))
        let lost = try #require(try store.get(Self.id(2)))
        #expect(lost.status == .lost && lost.reason == "gone" && lost.stdoutBytes == 3 && lost.finishedAtMs == 40)
        #expect(try store.unfinished().isEmpty)
        // A finished execution is never marked lost.
        try store.markLost(Self.id(1), atMs: 50, reason: "no", totals: .init())
        #expect(try store.get(Self.id(1))?.status == .killed)
    }

    /// Issue 13: what an execution used is kept with its end, every figure or only some (nil where the source
    /// has none), and an end without accounting has none; also while the end waits to be written.
    @Test func theUsageOfAnExecutionIsStoredWithItsEnd() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let full = ResourceUsage(
            cpuUserUsec: 1_200_000, cpuSystemUsec: 30_000, memoryPeakBytes: 12 << 20, tasksPeak: 3,
            ioReadBytes: 4096, ioWriteBytes: 0, source: "cgroup")
        let partial = ResourceUsage(cpuUserUsec: 5, cpuSystemUsec: 6, memoryPeakBytes: 7 << 10, source: "rusage")
        for (n, usage) in [(1, Optional(full)), (2, partial), (3, nil)] {
            try store.insert(Self.info(Self.id(n), status: .running, createdAtMs: Int64(n)))
            try store.finish(
                Self.id(n),
                .init(
                    status: .succeeded, pid: 7, exitCode: 0, signal: nil, startedAtMs: 1, finishedAtMs: 9,
                    durationUsec: 8, totals: .init(), reason: nil, usage: usage))
            #expect(try store.get(Self.id(n))?.usage == usage)
        }
        #expect(try store.list(ListParams(), ownerUid: nil).map(\.usage) == [nil, partial, full])
        let waiting = ExecutionStore.Outcome(
            status: .failed, pid: 7, exitCode: 1, signal: nil, startedAtMs: 1, finishedAtMs: 9, durationUsec: 8,
            totals: .init(), reason: nil, usage: partial)
        #expect(store.withPending(Self.info(Self.id(4), createdAtMs: 4), [Self.id(4): waiting]).usage == partial)
    }

    /// A history written before accounting (schema v3) is migrated: its executions have no usage, and new ends
    /// record theirs.
    @Test func aHistoryFromBeforeAccountingIsMigrated() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let queue = try DatabaseQueue(path: directory.path + "/history.sqlite")
            try ExecutionStore.migrator.migrate(queue, upTo: "v3-process-identity")
            try queue.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO executions (id, status, caller_uid, caller_user, caller_pid, executor, run_as, argv,
                            cwd, env_keys, created_at, config_digest)
                        VALUES (?, 'succeeded', 1000, 'alice', 42, 'default', 'nobody:nogroup', '["true"]', '/', '[]',
                            5, 'abc')
                        """, arguments: [Self.id(1)])
            }
        }
        let store = try ExecutionStore(stateDirectory: directory.path)
        #expect(ExecutionStore.schemaVersions.contains("v4-usage"))
        let old = try #require(try store.get(Self.id(1)))
        #expect(old.usage == nil && old.status == .succeeded)
        try store.insert(Self.info(Self.id(2), status: .running, createdAtMs: 6))
        let usage = ResourceUsage(cpuUserUsec: 1, source: "rusage")
        try store.finish(
            Self.id(2),
            .init(
                status: .succeeded, pid: 7, exitCode: 0, signal: nil, startedAtMs: 6, finishedAtMs: 9,
                durationUsec: 3, totals: .init(), reason: nil, usage: usage))
        #expect(try store.get(Self.id(2))?.usage == usage)
    }

    @Test func retentionDeletesOldFinishedExecutionsThenTrimsOutputButNeverTouchesRunningOnes() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        for n in 0..<10 {
            let status: ExecutionStatus = n == 1 || n == 6 ? .running : .succeeded
            try store.insert(Self.info(Self.id(n), status: status, createdAtMs: Int64(n) * 100, stored: 1000))
            let recorder = OutputRecorder(directory: store.outputDirectory(Self.id(n)), cap: 1 << 20)
            [UInt8](repeating: 1, count: 1000).withUnsafeBytes { recorder.append(.stdout, $0) }
            recorder.finish()
        }
        // Age: executions created before 300 go (0 and 2), running 1 stays.
        var report = try store.prune(olderThanMs: 300, maxTotalBytes: nil)
        #expect(report.deleted.sorted() == [Self.id(0), Self.id(2)])
        #expect(try store.get(Self.id(1))?.status == .running)
        #expect(access(store.outputDirectory(Self.id(0)), F_OK) != 0)
        #expect(access(store.outputDirectory(Self.id(1)) + "/head", F_OK) == 0)

        // Size: 8 executions x 1000 bytes of output, plus their records; keep at most 5000 bytes of output and
        // the records → the oldest finished lose their output.
        let info = Self.info(Self.id(0), createdAtMs: 0)
        let record =
            Int64(JSONText.array(info.argv).utf8.count + JSONText.array(info.envKeys).utf8.count)
            + ExecutionStore.recordOverheadBytes
        report = try store.prune(olderThanMs: nil, maxTotalBytes: 5000 + 8 * record)
        #expect(report.outputPruned == [Self.id(3), Self.id(4), Self.id(5)])
        let pruned = try #require(try store.get(Self.id(3)))
        #expect(pruned.outputPruned && pruned.storedBytes == 0)
        #expect(access(store.outputDirectory(Self.id(3)), F_OK) != 0)
        #expect(try store.get(Self.id(6))?.outputPruned == false)
        #expect(try store.count() == 8)
    }

    /// Issue 10, item 5: argv was stored without bound and outside the size accounting, so 12 runs of `true`
    /// with 900 KB of arguments grew the state directory by 41 MiB under a 4 MiB `max_total_bytes`.
    @Test func longArgumentListsCountTowardsTheSizeLimit() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let long = ["true"] + (0..<900).map { _ in String(repeating: "a", count: 1000) }
        for n in 0..<12 {
            var info = Self.info(Self.id(n), createdAtMs: Int64(n) * 100)
            info.argv = long
            try store.insert(info)
        }
        var running = Self.info(Self.id(12), status: .running, createdAtMs: 1200)
        running.argv = long
        try store.insert(running)
        let report = try store.prune(olderThanMs: nil, maxTotalBytes: 4 << 20)
        // About 900 KB a record: the oldest finished go until the rest fit; the running one stays.
        let left = try store.list(ListParams(limit: 100), ownerUid: nil).map(\.executionId)
        #expect(left.count == 4 && left.contains(Self.id(12)))
        #expect(report.deleted == (0..<9).map { Self.id($0) })
        let size = try #require(
            try store.read { db in
                try Int64.fetchOne(db, sql: "SELECT SUM(\(ExecutionStore.recordBytesSQL)) FROM executions")
            })
        #expect(size <= 4 << 20)
    }

    @Test func orphanedOutputFoldersAreRemoved() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        try store.insert(Self.info(Self.id(1), createdAtMs: 1))
        for id in [Self.id(1), Self.id(2)] {
            let recorder = OutputRecorder(directory: store.outputDirectory(id), cap: 1 << 20)
            Array("x".utf8).withUnsafeBytes { recorder.append(.stdout, $0) }
            recorder.finish()
        }
        #expect(try store.removeOrphanedOutput() == 1)
        #expect(access(store.outputDirectory(Self.id(1)), F_OK) == 0)
        #expect(access(store.outputDirectory(Self.id(2)), F_OK) != 0)
    }

    @Test func anUnopenableDatabaseIsAClearError() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let fd = open(directory.path + "/history.sqlite", O_WRONLY | O_CREAT, 0o600)
        _ = Array("this is not a database, it is a text file long enough to be read".utf8).withUnsafeBytes {
            write(fd, $0.baseAddress, $0.count)
        }
        close(fd)
        let error = #expect(throws: StoreError.self) { try ExecutionStore(stateDirectory: directory.path) }
        #expect(error?.code == .database)
        #expect(error?.message.contains("history.sqlite") == true)
    }

    /// Issue 11, item 8: under writes that never pause, a passive checkpoint never catches up with the last one,
    /// and SQLite starts the write-ahead log over only once one has; the log grew without end (750 MB after
    /// 40,000 back-to-back executions, its shared-memory index resident in the daemon). A checkpoint now empties
    /// a log past `walRestartFrames` frames. The size checked is the log file's, not memory.
    @Test func theWriteAheadLogStaysBoundedUnderWritesThatNeverPause() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path, walRestartFrames: 256)
        let rows = 4000
        let done = DoneFlag()
        let writer = Task.detached {
            defer { done.set() }
            for n in 0..<rows {
                try store.insert(Self.info(Self.id(n), status: .running, createdAtMs: Int64(n)))
                try store.finish(
                    Self.id(n),
                    ExecutionStore.Outcome(
                        status: .succeeded, pid: 1, exitCode: 0, signal: nil, startedAtMs: Int64(n),
                        finishedAtMs: Int64(n), durationUsec: 1, totals: .init(), reason: nil))
                usleep(20)
            }
        }
        func walBytes() -> Int64 {
            var info = stat()
            return stat(store.databasePath + "-wal", &info) == 0 ? Int64(info.st_size) : 0
        }
        var largest: Int64 = 0
        var checkpoints = 0
        while true {
            try store.checkpoint()
            checkpoints += 1
            largest = max(largest, walBytes())
            if done.isSet { break }
        }
        try await writer.value
        try store.checkpoint()
        #expect(try store.count() == rows)
        #expect(checkpoints > 1)
        // 4,000 rows written twice fill some 40 MB of log that never starts over; 256
        // frames plus what lands between two checkpoints is a few MB.
        #expect(largest < 16 << 20, "the write-ahead log reached \(largest) bytes")
        #expect(walBytes() < 16 << 20)
    }
}

/// Set once by one task, read by another.
final class DoneFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// `stdin_bytes` (issue 16, item 2): null for an execution whose input is not recorded, whatever its end says; the
/// count for one whose input is.
struct StdinBytesStoreTests {
    @Test func stdinBytesAreKeptOnlyWhereInputIsRecorded() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        var recorded = ExecutionStoreTests.info(ExecutionStoreTests.id(1), status: .running, createdAtMs: 1)
        recorded.stdinBytes = 0
        try store.insert(recorded)
        try store.insert(ExecutionStoreTests.info(ExecutionStoreTests.id(2), status: .running, createdAtMs: 2))
        var lost = ExecutionStoreTests.info(ExecutionStoreTests.id(3), status: .running, createdAtMs: 3)
        lost.stdinBytes = 0
        try store.insert(lost)
        #expect(try store.get(ExecutionStoreTests.id(1))?.stdinBytes == 0)
        for n in [1, 2] {
            try store.finish(
                ExecutionStoreTests.id(n),
                .init(
                    status: .succeeded, pid: 7, exitCode: 0, signal: nil, startedAtMs: 1, finishedAtMs: 9,
                    durationUsec: 8, totals: .init(stdoutBytes: 2, storedBytes: 7, stdinBytes: 5), reason: nil))
        }
        #expect(try store.get(ExecutionStoreTests.id(1))?.stdinBytes == 5)
        #expect(try store.get(ExecutionStoreTests.id(2))?.stdinBytes == nil)
        try store.markLost(ExecutionStoreTests.id(3), atMs: 4, reason: "gone", totals: .init(stdinBytes: 9))
        #expect(try store.get(ExecutionStoreTests.id(3))?.stdinBytes == 9)
        let waiting = ExecutionStore.Outcome(
            status: .failed, pid: 7, exitCode: 1, signal: nil, startedAtMs: 1, finishedAtMs: 9, durationUsec: 8,
            totals: .init(stdinBytes: 3), reason: nil)
        #expect(store.withPending(recorded, [recorded.executionId: waiting]).stdinBytes == 3)
        let plain = ExecutionStoreTests.info(ExecutionStoreTests.id(4), createdAtMs: 4)
        #expect(store.withPending(plain, [plain.executionId: waiting]).stdinBytes == nil)
    }
}
