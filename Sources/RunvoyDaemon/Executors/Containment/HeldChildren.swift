import Glibc
import RunvoyKit

/// The daemon's children that only their owners reap (executions' main processes, hook processes): a spawn under
/// way is counted until `spawned`, and a spawned child is held until `released`, after its owner's final wait.
/// The subreaper's orphan reaper reaps only what is not held, and nothing while a spawn is under way (a child that
/// exits before it is registered must not be reaped by someone else). Review of hooks, H2: hooks were not held,
/// so the reaper could take a hook's exit status and turn a veto into "killed by signal 9".
protocol ChildHolding: Sendable {
    /// A spawn begins: no orphan is reaped until `spawned` says how it ended.
    func spawning()
    /// The spawn ended: its process (if any) is held until `released`.
    func spawned(_ child: pid_t?)
    /// The child's owner has waited for it for the last time.
    func released(_ child: pid_t)
}

/// `ChildHolding`'s bookkeeping, and the reaping it allows.
final class HeldChildren: ChildHolding {
    private struct State: ~Copyable {
        var held = Set<pid_t>()
        var spawning = 0
    }

    private let state = Mutex(State())

    func spawning() {
        state.withLock { $0.spawning += 1 }
    }

    func spawned(_ child: pid_t?) {
        state.withLock { state in
            state.spawning -= 1
            if let child { state.held.insert(child) }
        }
    }

    func released(_ child: pid_t) {
        state.withLock { _ = $0.held.remove(child) }
    }

    /// Runs `reap` with the held children (sorted), under the lock so that none is added meanwhile, unless a spawn
    /// is under way (then 0).
    func reaping(_ reap: ([pid_t]) -> Int) -> Int {
        state.withLock { state in
            guard state.spawning == 0 else { return 0 }
            return reap(state.held.sorted())
        }
    }
}
