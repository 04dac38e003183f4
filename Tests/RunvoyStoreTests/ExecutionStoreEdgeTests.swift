import GRDB
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyStore

/// The history where it meets what it did not write itself: a state directory it cannot use or that went away,
/// rows from a newer or damaged writer, and executions without a recorded process.
@Suite(.serialized)
struct ExecutionStoreEdgeTests {
    @Test func aStateDirectoryUnderAFileIsRefusedAndOneThatWentAwayHasNoFreeSpace() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.path + "/file"
        close(open(file, O_WRONLY | O_CREAT, 0o600))
        let error = #expect(throws: StoreError.self) { try ExecutionStore(stateDirectory: file + "/state") }
        #expect(error?.code == .output)
        #expect(error?.message == "cannot create \(file)/state/output: mkdir \(file)/state: Not a directory")

        let store = try ExecutionStore(stateDirectory: directory.path + "/state")
        #expect(store.freeBytes != nil)
        _ = system("rm -rf '\(directory.path)/state'")
        #expect(store.freeBytes == nil)
    }

    @Test func rowsWithAnUnknownStatusOrUnreadableListsReadAsLostAndEmpty() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let id = ExecutionStoreTests.id(1)
        var info = ExecutionStoreTests.info(id, status: .failed, createdAtMs: 10)
        info.signal = 9
        try store.insert(info)
        #expect(try store.get(id)?.signal == 9)
        try store.pool.write { db in
            try db.execute(
                sql: "UPDATE executions SET status = 'paused', argv = '{}', env_keys = 'nonsense' WHERE id = ?",
                arguments: [id])
        }
        let read = try #require(try store.get(id))
        #expect(read.status == .lost && read.argv.isEmpty && read.envKeys.isEmpty)
    }

    @Test func anExecutionWithoutARecordedProcessHasNoIdentityAndNothingWaitsToBeFlushed() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let id = ExecutionStoreTests.id(1)
        try store.insert(ExecutionStoreTests.info(id, status: .running, createdAtMs: 10))
        #expect(try store.processIdentity(id) == nil)
        #expect(try store.processIdentity(ExecutionStoreTests.id(2)) == nil)
        #expect(store.pendingCount == 0 && store.flushPending())
    }
}
