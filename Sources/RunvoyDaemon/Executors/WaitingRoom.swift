import Glibc
import RunvoyConfig
import RunvoyKit

/// The executions that wait in the queue, as their requests see them: each one's id, its place in line for its
/// executor, and how its wait ended. `AdmissionScheduler` decides who starts; this is what the waiting requests
/// are told. Pure: `ExecutionManager` keeps it in its state, under its lock.
///
/// Every operation is O(1) or O(log n) in the number of waiters, but for removing a ticket from its executor's
/// line (a move of the tickets behind it in one array: memmove, not a scan).
struct WaitingRoom: Sendable {
    /// How a wait ended.
    enum Turn: Sendable {
        /// The scheduler started it: it holds its slot and launches now.
        case started
        /// It left the queue and never runs: `error` is what its client is told; `cause` names why for the audit
        /// trail (`cancelled`, `wait_timeout`, `client_gone`, `shutdown`).
        case left(error: RunvoyError, cause: String)
    }

    struct Waiter: Sendable {
        let ticket: UInt64
        let executionID: String
        let executor: String
        let uid: uid_t
        let holder: FairShares.Holder
        let concurrency: Int?
        let queuedAtMs: Int64
        /// The named locks it needs, all at once.
        var locks: [AdmissionScheduler<UInt64>.LockClaim] = []
        /// Who waits, and the configuration it was queued under: what its `queued` events may show it.
        var caller: Caller? = nil
        var config: DaemonConfig? = nil
        /// The playbook step it is, if any: a reload replans its locks without those its run holds.
        var step: PlaybookStepContext? = nil
        var continuation: CheckedContinuation<Turn, Never>?
        var turn: Turn?
    }

    private(set) var waiters: [UInt64: Waiter] = [:]
    private var tickets: [String: UInt64] = [:]
    /// Each executor's waiters, by ticket (tickets grow, so arrival order is sorted order).
    private var lines: [String: [UInt64]] = [:]
    /// Bumped whenever anyone's place or what runs changes: a waiter whose last look saw the same generation
    /// has nothing new to tell its client.
    var generation: UInt64 = 0

    /// How many wait (not counting those whose wait has ended and whose request has not looked yet).
    var count: Int { tickets.count }

    mutating func add(_ waiter: Waiter) {
        precondition(waiters[waiter.ticket] == nil, "a ticket waits twice")
        waiters[waiter.ticket] = waiter
        tickets[waiter.executionID] = waiter.ticket
        lines[waiter.executor, default: []].append(waiter.ticket)
        generation &+= 1
    }

    /// The tickets that wait, oldest first.
    var waitingTickets: [UInt64] { tickets.values.sorted() }

    /// The ticket of a waiting execution, by execution id.
    func ticket(of executionID: String) -> UInt64? { tickets[executionID] }

    /// 1 for the first in line for its executor.
    func position(_ ticket: UInt64) -> Int? {
        guard let waiter = waiters[ticket], waiter.turn == nil, let line = lines[waiter.executor] else { return nil }
        return Self.index(of: ticket, in: line).map { $0 + 1 }
    }

    /// Ends `ticket`'s wait with `turn`, and wakes its request if it waits for that. False when its wait had
    /// ended already (or it never waited).
    @discardableResult
    mutating func end(_ ticket: UInt64, _ turn: Turn) -> Bool {
        guard var waiter = waiters[ticket], waiter.turn == nil else { return false }
        tickets[waiter.executionID] = nil
        if var line = lines[waiter.executor], let index = Self.index(of: ticket, in: line) {
            line.remove(at: index)
            lines[waiter.executor] = line.isEmpty ? nil : line
        }
        generation &+= 1
        if let continuation = waiter.continuation {
            waiters[ticket] = nil
            continuation.resume(returning: turn)
        } else {
            waiter.turn = turn
            waiters[ticket] = waiter
        }
        return true
    }

    /// The turn of `ticket` if its wait has ended (it is then forgotten); otherwise `continuation` is kept and
    /// resumed when it ends.
    mutating func await(_ ticket: UInt64, _ continuation: CheckedContinuation<Turn, Never>) -> Turn? {
        guard var waiter = waiters[ticket] else {
            let error = RunvoyError(.internalError, "the execution lost its place in the queue")
            return .left(error: error, cause: "internal")
        }
        if let turn = waiter.turn {
            waiters[ticket] = nil
            return turn
        }
        waiter.continuation = continuation
        waiters[ticket] = waiter
        return nil
    }

    private static func index(of ticket: UInt64, in line: [UInt64]) -> Int? {
        var low = 0
        var high = line.count
        while low < high {
            let middle = (low + high) / 2
            if line[middle] < ticket { low = middle + 1 } else { high = middle }
        }
        return low < line.count && line[low] == ticket ? low : nil
    }
}
