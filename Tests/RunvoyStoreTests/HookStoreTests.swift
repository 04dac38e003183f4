import GRDB
import RunvoyKit
import Testing

@testable import RunvoyStore

/// The `v8-hooks` migration over a database of the migrations before it, and hook runs kept as long as their
/// execution (or request) is.
struct HookStoreTests {
    static func run(_ execution: String?, approval: String? = nil, hook: String = "window") -> HookRunRecord {
        HookRunRecord(
            executionId: execution, approvalId: approval,
            info: HookRunInfo(
                hook: hook, event: "pre_exec", user: "nobody", startedAtMs: 7, durationUsec: 1200, exitCode: 1,
                signal: nil, timedOut: false, outcome: "veto", reason: "outside the window", output: "",
                outputDropped: 3, approvalId: approval),
            output: Array("outside the window\n\u{FF}".utf8) + [0xFF])
    }

    @Test func anEarlierHistoryIsMigratedAndRunsAreReadBackInOrder() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let queue = try DatabaseQueue(path: directory.path + "/history.sqlite")
            try ExecutionStore.migrator.migrate(queue, upTo: "v6-approvals")
            let exists = try queue.read { db in try db.tableExists("hook_runs") }
            #expect(!exists)
        }
        let store = try ExecutionStore(stateDirectory: directory.path)
        #expect(ExecutionStore.schemaVersions.contains("v8-hooks"))
        let id = ExecutionStoreTests.id(1)
        try store.insert(ExecutionStoreTests.info(id, createdAtMs: 5))
        try store.insertHookRun(Self.run(id, hook: "first"))
        try store.insertHookRun(Self.run(id, hook: "second"))
        let runs = try store.hookRuns(executionID: id)
        #expect(runs.map(\.hook) == ["first", "second"])
        #expect(runs[0].exitCode == 1 && runs[0].outcome == "veto" && runs[0].outputDropped == 3)
        // Invalid UTF-8 is replaced, never refused.
        #expect(runs[0].output.hasPrefix("outside the window\n") && runs[0].output.contains("\u{FFFD}"))
        #expect(try store.hookRuns(executionID: ExecutionStoreTests.id(2)).isEmpty)
    }

    @Test func runsGoWithTheirExecutionAndOnlyThen() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let (old, kept) = (ExecutionStoreTests.id(1), ExecutionStoreTests.id(2))
        try store.insert(ExecutionStoreTests.info(old, createdAtMs: 5))
        try store.insert(ExecutionStoreTests.info(kept, createdAtMs: 500))
        try store.insertHookRun(Self.run(old))
        try store.insertHookRun(Self.run(kept))
        _ = try store.prune(olderThanMs: 100, maxTotalBytes: nil)
        #expect(try store.hookRuns(executionID: old).isEmpty)
        #expect(try store.hookRuns(executionID: kept).count == 1)
    }
}
