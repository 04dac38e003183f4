import RunvoyKit
import RunvoyStore

/// Where the clients of requests that wait for approval wait (not the scheduler's `WaitingRoom`: a request waiting
/// for approval holds no ticket, slot or lock). Each watcher hears of every change of its request (`approval`
/// events) and is told once how the wait ended.
struct ApprovalRoom: ~Copyable {
    /// How a wait for approval ended.
    enum Turn: Sendable {
        /// Approved: the waiter starts it with this ticket.
        case approved(ApprovalTicket)
        /// It never runs: what the waiter is told.
        case ended(RunvoyError)
    }

    struct Watcher {
        let mailbox: ApprovalMailbox
        var continuation: CheckedContinuation<Turn, Never>?
        /// A turn that came before the watcher awaited it.
        var turn: Turn?
    }

    /// Who follows a request without waiting to start it (`logs -f`): it hears of every change, and is let go
    /// once the request's command started or the request ended.
    struct Observer {
        let mailbox: ApprovalMailbox
        var continuation: CheckedContinuation<Void, Never>?
        var settled = false
    }

    private(set) var watchers: [String: [Int: Watcher]] = [:]
    private(set) var observers: [String: [Int: Observer]] = [:]
    private var nextToken = 0

    /// Adds a watcher of request `id`, told of changes through `mailbox`; returns its token.
    mutating func watch(_ id: String, mailbox: ApprovalMailbox) -> Int {
        nextToken += 1
        watchers[id, default: [:]][nextToken] = Watcher(mailbox: mailbox, continuation: nil, turn: nil)
        return nextToken
    }

    mutating func watch(_ id: String, send: @escaping @Sendable (ApprovalRecord) async -> Void) -> Int {
        watch(id, mailbox: ApprovalMailbox(send))
    }

    /// Waits for the turn of watcher `token` of `id` (at once when it came already); nil when it is not watching.
    mutating func await(_ id: String, _ token: Int, _ continuation: CheckedContinuation<Turn, Never>) -> Turn? {
        guard var watcher = watchers[id]?[token] else { return .ended(RunvoyError(.cancelled, "not waiting")) }
        if let turn = watcher.turn {
            watchers[id]?[token] = nil
            if watchers[id]?.isEmpty == true { watchers[id] = nil }
            return turn
        }
        watcher.continuation = continuation
        watchers[id]?[token] = watcher
        return nil
    }

    /// Removes watcher `token` of `id` (its client went); true when it still watched.
    mutating func leave(_ id: String, _ token: Int) -> Bool {
        guard let watcher = watchers[id]?.removeValue(forKey: token) else { return false }
        if watchers[id]?.isEmpty == true { watchers[id] = nil }
        watcher.continuation?.resume(returning: .ended(RunvoyError(.cancelled, "the client went away")))
        return true
    }

    /// The mailboxes of `id`'s watchers and observers, to tell them of a change.
    func mailboxes(_ id: String) -> [ApprovalMailbox] {
        (watchers[id]?.values.map(\.mailbox) ?? []) + (observers[id]?.values.map(\.mailbox) ?? [])
    }

    /// Adds an observer of request `id`, told of changes through `mailbox`; returns its token.
    mutating func observe(_ id: String, mailbox: ApprovalMailbox) -> Int {
        nextToken += 1
        observers[id, default: [:]][nextToken] = Observer(mailbox: mailbox)
        return nextToken
    }

    mutating func observe(_ id: String, send: @escaping @Sendable (ApprovalRecord) async -> Void) -> Int {
        observe(id, mailbox: ApprovalMailbox(send))
    }

    /// Waits until `id` settles; false (go on at once) when it did already or the observer left.
    mutating func awaitSettled(_ id: String, _ token: Int, _ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard let observer = observers[id]?[token], !observer.settled else {
            stopObserving(id, token)
            return false
        }
        observers[id]?[token]?.continuation = continuation
        return true
    }

    /// Lets go of observer `token` of `id` (its client went, or it is done).
    mutating func stopObserving(_ id: String, _ token: Int) {
        observers[id]?.removeValue(forKey: token)?.continuation?.resume()
        if observers[id]?.isEmpty == true { observers[id] = nil }
    }

    /// Request `id`'s command started (or failed to), or it ended without running: its observers are let go
    /// (one that has not begun to wait yet will not).
    mutating func settle(_ id: String) {
        guard var waiting = observers[id] else { return }
        for (token, observer) in waiting {
            if let continuation = observer.continuation {
                continuation.resume()
                waiting[token] = nil
            } else {
                waiting[token]?.settled = true
            }
        }
        observers[id] = waiting.isEmpty ? nil : waiting
    }

    /// Ends the wait of `id`: `approved` goes to one watcher only (the first; it starts the command), `ended` to
    /// all. Returns whether a watcher took an approval (otherwise the daemon starts it itself).
    mutating func end(_ id: String, _ turn: Turn) -> Bool {
        guard var waiting = watchers[id], !waiting.isEmpty else { return false }
        let tokens = waiting.keys.sorted()
        for (index, token) in tokens.enumerated() {
            var watcher = waiting[token]!
            let given: Turn
            if case .approved = turn, index > 0 {
                given = .ended(RunvoyError(.cancelled, "request \(id) is started by another client"))
            } else {
                given = turn
            }
            if let continuation = watcher.continuation {
                continuation.resume(returning: given)
                waiting[token] = nil
            } else {
                watcher.turn = given
                waiting[token] = watcher
            }
        }
        watchers[id] = waiting.isEmpty ? nil : waiting
        return true
    }
}

/// What lets `ExecutionManager.start` run a plan that needs approval: the request's id (the execution's), and the
/// digest that was approved (or the break-glass record).
struct ApprovalTicket: Sendable {
    let record: ApprovalRecord
    var id: String { record.id }
    var digest: String { record.digest }
    var isBreakGlass: Bool { record.kind == "break_glass" }
    /// uids of the approvers, for the audit trail.
    var approvedBy: [UInt32] { record.answers.filter { $0.answer == .approve }.map(\.uid) }

    /// What the launch records (`decision`, `execution_started`) of a plan started with it add.
    var auditFields: [(String, String)] {
        var fields = [("APPROVAL_ID", id), ("APPROVAL_DIGEST", digest)]
        if isBreakGlass {
            fields.append(("BREAK_GLASS", "1"))
        } else {
            fields.append(("APPROVED_BY", approvedBy.map(String.init).joined(separator: ",")))
        }
        return fields
    }
}
