import CRunvoyPosix
import Glibc
import RunvoyKit

/// The hook processes running now, by pidfd, so that shutdown can kill those still running after
/// `shutdown_grace` (review of hooks, H3). Once `killAll` has been called, a hook registered later is killed at
/// once. Signals go through the pidfd only (which never names another process); the hook's own thread then kills
/// what is left of its process group, as when it exits by itself.
final class RunningHooks: Sendable {
    private struct State: ~Copyable {
        var pidfds = Set<Int32>()
        var closed = false
    }

    private let state = Mutex(State())

    /// Whether no hook runs.
    var isEmpty: Bool { state.withLock { $0.pidfds.isEmpty } }

    /// A hook was spawned; until `remove`, `pidfd` stays open.
    func add(_ pidfd: Int32) {
        let kill = state.withLock { state -> Bool in
            state.pidfds.insert(pidfd)
            return state.closed
        }
        if kill { _ = runvoy_pidfd_send_signal(pidfd, SIGKILL) }
    }

    /// Before the hook's pidfd is closed.
    func remove(_ pidfd: Int32) {
        state.withLock { _ = $0.pidfds.remove(pidfd) }
    }

    /// SIGKILL to every hook running, and to every one started from now on. Returns how many ran.
    @discardableResult
    func killAll() -> Int {
        state.withLock { state in
            state.closed = true
            for pidfd in state.pidfds { _ = runvoy_pidfd_send_signal(pidfd, SIGKILL) }
            return state.pidfds.count
        }
    }
}
