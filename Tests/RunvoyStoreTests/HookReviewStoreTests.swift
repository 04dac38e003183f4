import GRDB
import RunvoyKit
import Testing

@testable import RunvoyStore

/// Review of the hooks feature (docs/REVIEW-hooks.md): FAILS on the code as merged (28355b5).
struct HookReviewStoreTests {
    /// H5. `history.max_total_bytes` bounds the history (docs/CONFIGURATION.md), but the size it prunes to counts
    /// executions' stored output and records only: hook output (up to 64 KiB a run, several runs an execution,
    /// for every execution retention keeps) is never counted, so a developer whose runs make a hook talk (one that
    /// echoes argv, or any verbose one) at `exec_rate` grows the state database past the bound until the free-space
    /// reserve refuses everyone's executions.
    @Test func hookOutputCountsTowardsMaxTotalBytes() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let id = ExecutionStoreTests.id(1)
        try store.insert(ExecutionStoreTests.info(id, createdAtMs: 5))
        for n in 0..<16 {
            var run = HookStoreTests.run(id, hook: "talk\(n)")
            run.output = Array(repeating: 0x61, count: 64 << 10)
            try store.insertHookRun(run)
        }
        let bound: Int64 = 256 << 10
        _ = try store.prune(olderThanMs: nil, maxTotalBytes: bound)
        let kept = try store.hookRuns(executionID: id).reduce(0) { $0 + $1.output.utf8.count }
        #expect(kept <= bound, "\(kept) bytes of hook output kept under max_total_bytes \(bound)")
    }
}
