import RunvoyKit

/// Who wants to know when a connection's input closes (the client went away or half-closed): a request that
/// waits in the queue leaves it then. Fired from the channel's pipeline, so it is seen even while the
/// connection's task is busy with a request.
final class Hangup: Sendable {
    private struct State {
        var closed = false
        var handlers: [Int: @Sendable () -> Void] = [:]
        var next = 0
    }

    private let state = Mutex(State())

    /// Calls `handler` once the input closes, at once if it has; returns what undoes that.
    func on(_ handler: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        let token = state.withLock { state -> Int? in
            if state.closed { return nil }
            state.next += 1
            state.handlers[state.next] = handler
            return state.next
        }
        guard let token else {
            handler()
            return {}
        }
        return { [self] in _ = state.withLock { $0.handlers.removeValue(forKey: token) } }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    func fire() {
        let handlers = state.withLock { state -> [@Sendable () -> Void] in
            if state.closed { return [] }
            state.closed = true
            defer { state.handlers = [:] }
            return Array(state.handlers.values)
        }
        for handler in handlers { handler() }
    }
}
