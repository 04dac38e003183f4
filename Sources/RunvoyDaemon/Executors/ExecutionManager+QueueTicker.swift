import NIOCore
import RunvoyKit

/// One waiting client's side of the queue's events: what it was told last, and which state of the waiting
/// room it was told about.
struct QueueTeller: Sendable {
    let client: ExecutionManager.QueueClient
    let requestID: RequestID?
    var last: QueuedEvent?
    /// The waiting room's generation it was last told about.
    var seen: UInt64
    /// An event is on its way: the next waits for it.
    var sending = false
}

/// The `queued` events after the first: one ticker for all waiters, once a second. A tick that finds the
/// waiting room as it was costs one comparison per waiter; otherwise each waiter whose place is due is looked
/// at (O(log n) for its place) and told only if something but its waiting time changed. The first 100 in line
/// for an executor are due every tick, the others every tenth, so a long queue that moves sends about
/// 100 + n / 10 events a second, not n.
extension ExecutionManager {
    static let queueTick = Duration.seconds(1)
    /// The places that are told of every change; those behind, every tenth tick.
    static let livePlaces = 100

    /// Tells `client` `first` now, and of the changes of `ticket`'s place from now on.
    func tell(_ ticket: UInt64, _ client: QueueClient, _ requestID: RequestID?, first: QueuedEvent?) {
        state.withLock { state in
            state.tellers[ticket] = QueueTeller(client: client, requestID: requestID, last: first, seen: 0)
            if state.ticker == nil, case .serving = state.phase {
                state.ticker = group.any().scheduleRepeatedTask(
                    initialDelay: TimeAmount(Self.queueTick), delay: TimeAmount(Self.queueTick)
                ) { [self] _ in tick() }
            }
            state.tellers[ticket]?.seen = state.room.generation
        }
        if let first { send(first, to: ticket, client) }
    }

    private func tick() {
        let due = state.withLock { state -> [(UInt64, QueueClient, QueuedEvent)] in
            state.ticks &+= 1
            let generation = state.room.generation
            var due: [(UInt64, QueueClient, QueuedEvent)] = []
            for (ticket, teller) in state.tellers where teller.seen != generation && !teller.sending {
                guard let position = state.room.position(ticket) else { continue }
                if position > Self.livePlaces && (state.ticks &+ ticket) % 10 != 0 { continue }
                state.tellers[ticket]?.seen = generation
                guard var event = queueEvent(ticket, teller.requestID, &state) else { continue }
                let waited = event.waitedMs
                event.waitedMs = teller.last?.waitedMs ?? 0
                if event == teller.last { continue }
                event.waitedMs = waited
                state.tellers[ticket]?.last = event
                state.tellers[ticket]?.sending = true
                due.append((ticket, teller.client, event))
            }
            return due
        }
        for (ticket, client, event) in due { send(event, to: ticket, client) }
    }

    private func send(_ event: QueuedEvent, to ticket: UInt64, _ client: QueueClient) {
        Task { [self] in
            do {
                try await client.send(event)
                state.withLock { $0.tellers[ticket]?.sending = false }
            } catch {
                leave(ticket, Self.clientGone, cause: "client_gone")
            }
        }
    }

    /// At shutdown: the ticker stops.
    func stopTicker(_ state: inout State) {
        state.ticker?.cancel()
        state.ticker = nil
    }
}
