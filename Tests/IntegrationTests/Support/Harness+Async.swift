import Foundation

/// Waits that leave the Swift concurrency pool alone. The pool has one thread per core (two in CI); a test that
/// blocks one of them for seconds, waiting on a process, slows every test that shares the bundle. These helpers
/// do the blocking wait on a thread of their own and suspend the calling task meanwhile.
extension Harness {
    /// `run(_:stdinPath:environment:timeout:)` with the wait on a thread of its own.
    static func runDetached(
        _ argv: [String], stdinPath: String? = nil, environment: [String: String]? = nil, timeout: Double = 120
    ) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(
                    with: Result { try run(argv, stdinPath: stdinPath, environment: environment, timeout: timeout) })
            }
        }
    }

    /// Polls `condition` until it holds or `seconds` pass, sleeping between polls without holding a thread;
    /// returns whether it held.
    static func waitUntilDetached(seconds: Double = 20, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return try await condition()
    }
}
