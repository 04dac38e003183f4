import CRunvoyPosix
import RunvoyStore
import ServiceLifecycle

/// Gives memory back to the system once the daemon has gone quiet after some activity: SQLite's caches first,
/// then the free pages the C allocator keeps (`malloc_trim`).
///
/// Memory freed by the daemon mostly stays with the process: glibc returns only the top of each heap, so a
/// burst of connections or executions leaves the freed pages of every thread's arena resident. Trimming after
/// `quiet` without any change (no execution started or ended, no connection opened or closed) brings a
/// daemon back to its idle size without slowing anything busy; a daemon that stays quiet is trimmed once.
///
/// The first trim also gives back the program's start-up code: parsing the configuration and arguments, opening
/// and migrating the history and Foundation's own start touch about 20 MB of the executable's pages that serving
/// requests never touches again, and the kernel would keep them resident until memory is short. Only once: the
/// pages serving needs (about 3 MB) fault back in on the next requests, and doing that after every quiet spell
/// would slow the first request after each.
struct MemoryTrimmer: Service {
    let store: ExecutionStore
    /// A number that changes whenever executions start or end or connections open or close.
    let activity: @Sendable () -> Int
    var quiet: Duration = .seconds(5)

    func run() async throws {
        var seen = activity()
        var trimmed: Int?
        var startupCodeReleased = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: quiet) }
            let now = activity()
            defer { seen = now }
            guard now == seen, now != trimmed else { continue }
            Self.trim(store)
            if !startupCodeReleased {
                _ = runvoy_page_out_executable()
                startupCodeReleased = true
            }
            trimmed = now
        }
    }

    static func trim(_ store: ExecutionStore) {
        store.releaseMemory()
        _ = runvoy_malloc_trim()
    }
}
