import RunvoyKit
import RunvoyStore

/// What one watcher or follower of a request is still to be told, and the task that tells it: a change of the
/// request only posts its record here and goes on, so a client that stops reading holds up neither the answer
/// that made the change, nor the hand-over of an approved request, nor its launch (review 2 of approvals, F3).
/// Bounded: only the latest state waits (each `approval` event is a whole snapshot, so older ones may be dropped),
/// and one task at most sends, stuck at worst on its own client's connection until that client reads or goes.
final class ApprovalMailbox: Sendable {
    private struct State {
        var latest: ApprovalRecord?
        /// The version of the newest record posted: an older one (two changes told out of order, or the request
        /// as read when its client began to watch, told after a change) is dropped.
        var version = Int.min
        var sending = false
        var closed = false
        var idle: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    private let send: @Sendable (ApprovalRecord) async -> Void

    init(_ send: @escaping @Sendable (ApprovalRecord) async -> Void) {
        self.send = send
    }

    /// Leaves `record` (at the version the database holds it) to be sent, in place of any older one not sent yet;
    /// never waits.
    func post(_ record: ApprovalRecord) {
        let start = state.withLock { state -> Bool in
            guard !state.closed, record.version >= state.version else { return false }
            state.version = record.version
            state.latest = record
            guard !state.sending else { return false }
            state.sending = true
            return true
        }
        if start { Task { await drain() } }
    }

    /// Takes nothing more; returns once what was posted is sent. Only its own client's task waits for this, so
    /// that what it sends next (the command's events, its output) comes after the last `approval` event.
    func finish() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                state.closed = true
                guard state.sending else { return true }
                state.idle.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Takes nothing more and drops what was not sent (its client went).
    func close() {
        state.withLock {
            $0.closed = true
            $0.latest = nil
        }
    }

    private func drain() async {
        while true {
            let (next, idle) = state.withLock { state -> (ApprovalRecord?, [CheckedContinuation<Void, Never>]) in
                guard let next = state.latest else {
                    state.sending = false
                    defer { state.idle = [] }
                    return (nil, state.idle)
                }
                state.latest = nil
                return (next, [])
            }
            guard let next else {
                for continuation in idle { continuation.resume() }
                return
            }
            await send(next)
        }
    }
}
