import RunvoyKit

/// The `logs` streams running on one connection. A finished stream leaves the set by itself, so a long-lived
/// connection that asks for many logs holds only the ones still running.
final class StreamTasks: Sendable {
    private struct State {
        var running: [Int: Task<Void, Never>] = [:]
        var finished: Set<Int> = []
        var next = 0
    }

    private let state = Mutex(State())

    /// Runs `body` in a task of its own.
    func start(_ body: @escaping @Sendable () async -> Void) {
        let id = state.withLock { state -> Int in
            state.next += 1
            return state.next
        }
        // Owned by the connection: `Connection` cancels these when it ends, or awaits them (`waitAll`) when the
        // client only half-closed.
        let task = Task {
            await body()
            self.state.withLock { state in
                if state.running.removeValue(forKey: id) == nil { state.finished.insert(id) }
            }
        }
        state.withLock { state in
            if state.finished.remove(id) == nil { state.running[id] = task }
        }
    }

    var count: Int { state.withLock { $0.running.count } }

    func cancelAll() {
        for task in state.withLock({ Array($0.running.values) }) { task.cancel() }
    }

    func waitAll() async {
        for task in state.withLock({ Array($0.running.values) }) { await task.value }
    }
}
