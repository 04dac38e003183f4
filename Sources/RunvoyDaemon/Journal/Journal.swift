import CRunvoyPosix
import Foundation
import Glibc
import RunvoyKit

/// Writes structured entries to the systemd journal, from one thread of its own that owns the journal socket.
///
/// The socket is non-blocking and every send has a bound, so a journal that stops reading (journald stopped or
/// hung) can never hold up a connection, an event loop or the Swift cooperative pool: callers only queue.
/// Entries are written in the order they were queued. An entry with a deadline that cannot be written by then is
/// dropped and its caller told (fail-closed audit records); entries without one (best-effort records, log lines)
/// wait until the journal takes them again, within a bound on memory past which they are counted as lost and
/// reported once the journal is back.
///
/// The protocol is journald's native one (`NAME=value` lines, a length-prefixed form for values with newlines;
/// entries too large for one datagram go in a sealed memfd), so field values may hold any bytes.
final class Journal: @unchecked Sendable {
    /// Where journald listens. `RUNVOYD_JOURNAL_SOCKET` overrides it (tests use a journald of their own).
    static let socketPath: String = {
        if let path = ProcessInfo.processInfo.environment["RUNVOYD_JOURNAL_SOCKET"], !path.isEmpty { return path }
        return "/run/systemd/journal/socket"
    }()

    /// The daemon's journal writer.
    static let shared = Journal(socketPath: socketPath)

    /// Whether a journal socket exists on this machine.
    static var isAvailable: Bool { access(socketPath, F_OK) == 0 }

    /// What the journal writer is going through.
    enum Health: Equatable, Sendable {
        case ok
        /// The journal has not taken an entry since `since` (its queue is full: journald is stopped or hung).
        case stalled(since: ContinuousClock.Instant)

        /// The health after a write ended in `result`, if it changes: a written entry means the journal reads; one
        /// that waited or failed because the journal was full means it has stalled since `now`.
        fileprivate func after(_ result: WriteResult, now: ContinuousClock.Instant) -> Health? {
            switch result {
            case .written:
                return self == .ok ? nil : .ok
            case .waiting, .failed(stalled: true, _):
                return self == .ok ? .stalled(since: now) : nil
            case .failed(stalled: false, _):
                return nil
            }
        }
    }

    /// Best-effort entries kept while the journal does not read, before the oldest are counted as lost.
    static let maximumQueuedBytes = 16 << 20
    /// Log lines kept while the journal does not read; past it they are dropped (and counted).
    static let maximumQueuedLogLines = 1000

    /// What a queued entry is.
    enum Kind: Sendable { case audit, log }

    private struct Entry {
        var bytes: [UInt8]
        var kind: Kind
        /// When the entry must have been written, or be dropped and `completion` told so.
        var deadline: ContinuousClock.Instant?
        var completion: (@Sendable (JournalError?) -> Void)?
        /// What to write to stderr if the entry is lost (best-effort audit records).
        var fallback: [(String, String)]?
    }

    private struct State {
        var queue: [Entry] = []
        var head = 0
        var queuedBytes = 0
        var queuedLogLines = 0
        var lostAudit = 0
        var lostLog = 0
        var health = Health.ok
        var stopping = false

        /// Takes the entry at `index` out of the queue, and out of the counts.
        @discardableResult
        mutating func remove(at index: Int) -> Entry {
            let entry = queue.remove(at: index)
            queuedBytes -= entry.bytes.count
            if entry.kind == .log { queuedLogLines -= 1 }
            return entry
        }

        /// Moves past the entry at the head (now written or failed); the queue is compacted now and then.
        mutating func removeHead() -> Entry? {
            guard head < queue.count else { return nil }
            let entry = queue[head]
            head += 1
            queuedBytes -= entry.bytes.count
            if entry.kind == .log { queuedLogLines -= 1 }
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return entry
        }

        /// Takes out every waiting entry whose deadline has passed.
        mutating func removeExpired(now: ContinuousClock.Instant) -> [Entry] {
            var expired: [Entry] = []
            var index = head
            while index < queue.count {
                if let deadline = queue[index].deadline, deadline <= now {
                    expired.append(remove(at: index))
                } else {
                    index += 1
                }
            }
            return expired
        }
    }

    let socketPath: String
    private let condition = NSCondition()
    private var state = State()  // guarded by `condition`
    /// Called (from the writer thread) whenever `health` changes.
    private let onHealthChange = Mutex<(@Sendable (Health) -> Void)?>(nil)
    private var thread: Thread?

    init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The writer's health now.
    var health: Health {
        condition.lock()
        defer { condition.unlock() }
        return state.health
    }

    /// Sets what is told of each change of health (the daemon updates `STATUS=`).
    func observeHealth(_ body: @escaping @Sendable (Health) -> Void) {
        onHealthChange.withLock { $0 = body }
    }

    /// Queues an entry and waits until it is written, or throws once `timeout` has passed (the entry is then
    /// dropped, never written later), or at once when there is no journal.
    func send(_ fields: [(String, String)], timeout: Duration) async throws(JournalError) {
        let bytes = Self.encode(fields)
        let deadline = ContinuousClock.now + timeout
        let error = await withCheckedContinuation { (continuation: CheckedContinuation<JournalError?, Never>) in
            enqueue(
                Entry(
                    bytes: bytes, kind: .audit, deadline: deadline, completion: { continuation.resume(returning: $0) }))
        }
        if let error { throw error }
    }

    /// Queues an entry without waiting. A best-effort audit record the journal refuses (no journal) goes to stderr
    /// as a `runvoyd-audit:` line; one pushed out of the queue by too many waiting is counted, as are log lines
    /// dropped, and the counts go to the journal in a `records_lost` record once it reads again.
    func post(_ fields: [(String, String)], kind: Kind) {
        enqueue(Entry(bytes: Self.encode(fields), kind: kind, fallback: kind == .audit ? fields : nil))
    }

    /// Waits up to `timeout` for the queue to empty (at shutdown); what is still queued then is reported lost.
    func drain(timeout: Duration) {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + 0.001)
        condition.lock()
        while state.head < state.queue.count && Date() < deadline {
            _ = condition.wait(until: min(deadline, Date().addingTimeInterval(0.05)))
        }
        state.stopping = true
        let left = Array(state.queue[state.head...])
        state.queue = []
        state.head = 0
        condition.broadcast()
        condition.unlock()
        for entry in left { lose(entry, JournalError(errno: ETIMEDOUT)) }
    }

    private func enqueue(_ entry: Entry) {
        var rejected: Entry?
        condition.lock()
        if thread == nil {
            let thread = Thread { [unowned self] in self.run() }
            thread.name = "runvoyd-journal"
            self.thread = thread
            thread.start()
        }
        if state.stopping {
            rejected = entry
        } else if entry.kind == .log && state.queuedLogLines >= Self.maximumQueuedLogLines {
            state.lostLog += 1
        } else {
            if entry.deadline == nil && entry.kind == .audit {
                // Too many best-effort records waiting: the oldest ones waiting without a deadline are dropped.
                var index = state.head + 1
                while state.queuedBytes + entry.bytes.count > Self.maximumQueuedBytes && index < state.queue.count {
                    if state.queue[index].deadline == nil && state.queue[index].kind == .audit {
                        state.remove(at: index)
                        // Counted, and reported in the journal once it reads again (stderr may be a journal
                        // stream too, stalled as well).
                        state.lostAudit += 1
                    } else {
                        index += 1
                    }
                }
            }
            state.queue.append(entry)
            state.queuedBytes += entry.bytes.count
            if entry.kind == .log { state.queuedLogLines += 1 }
            condition.broadcast()
        }
        condition.unlock()
        if let rejected { lose(rejected, JournalError(errno: ESHUTDOWN)) }
    }

    /// Reports an entry that will never be written.
    private func lose(_ entry: Entry, _ error: JournalError) {
        if let completion = entry.completion { return completion(error) }
        if let fields = entry.fallback { Self.writeFallback(fields) }
    }

    // MARK: - The writer thread

    private var fd: Int32 = -1  // only the writer thread touches it

    private func run() {
        var lastWritten = true
        while let next = nextEntry() {
            if lastWritten, next.lost != (0, 0), writeLossReport(audit: next.lost.audit, log: next.lost.log) {
                condition.lock()
                state.lostAudit -= next.lost.audit
                state.lostLog -= next.lost.log
                condition.unlock()
            }
            let result = write(next.entry)
            lastWritten = result.isWritten
            settle(result)
        }
    }

    /// Waits for the entry at the head of the queue, with the losses not yet reported; nil once stopping with
    /// nothing left. While a stalled journal leaves nothing to write, it watches for the journal making room, so
    /// that `STATUS=` says it is back before the next record needs it.
    private func nextEntry() -> (entry: Entry, lost: (audit: Int, log: Int))? {
        condition.lock()
        defer { condition.unlock() }
        while state.head >= state.queue.count && !state.stopping {
            guard case .stalled = state.health, fd >= 0 else {
                condition.wait()
                continue
            }
            condition.unlock()
            let writable = probe()
            condition.lock()
            if writable && state.head >= state.queue.count {
                state.health = .ok
                condition.unlock()
                if let observer = onHealthChange.withLock({ $0 }) { observer(.ok) }
                condition.lock()
            }
        }
        if state.stopping && state.head >= state.queue.count { return nil }
        return (state.queue[state.head], (state.lostAudit, state.lostLog))
    }

    /// After a write: takes a written or failed entry off the queue, drops entries whose deadline has passed
    /// (wherever they wait), updates the health, and then tells the callers and the health observer.
    private func settle(_ result: WriteResult) {
        condition.lock()
        let done = result.isWaiting ? nil : state.removeHead()
        let now = ContinuousClock.now
        let expired = state.removeExpired(now: now)
        let changed = state.health.after(result, now: now)
        if let changed { state.health = changed }
        condition.broadcast()
        condition.unlock()
        if let changed, let observer = onHealthChange.withLock({ $0 }) { observer(changed) }
        if let done {
            if case .failed(_, let error) = result { lose(done, error) } else { done.completion?(nil) }
        }
        for entry in expired { lose(entry, JournalError(errno: ETIMEDOUT)) }
    }

    fileprivate enum WriteResult {
        case written
        /// The journal did not make room within the slice; the entry stays at the head.
        case waiting
        case failed(stalled: Bool, JournalError)

        var isWritten: Bool {
            if case .written = self { return true }
            return false
        }

        var isWaiting: Bool {
            if case .waiting = self { return true }
            return false
        }
    }

    /// The longest one wait for the journal lasts before deadlines further down the queue are looked at.
    private static let slice = Duration.milliseconds(200)

    private func write(_ entry: Entry) -> WriteResult {
        let now = ContinuousClock.now
        var bound = Self.slice
        if let deadline = entry.deadline {
            if deadline <= now { return .failed(stalled: true, JournalError(errno: ETIMEDOUT)) }
            bound = min(bound, deadline - now)
        }
        condition.lock()
        for index in state.head..<state.queue.count {
            if let deadline = state.queue[index].deadline { bound = min(bound, max(.zero, deadline - now)) }
        }
        condition.unlock()
        let milliseconds = Int32(
            max(1, bound.components.seconds * 1000 + bound.components.attoseconds / 1_000_000_000_000_000))
        for attempt in 0..<2 {
            if fd < 0 {
                fd = runvoy_journal_connect(socketPath)
                if fd < 0 {
                    let error = JournalError(errno: -fd)
                    fd = -1
                    return .failed(stalled: false, error)
                }
            }
            let rc = entry.bytes.withUnsafeBytes { runvoy_journal_send(fd, $0.baseAddress, $0.count, milliseconds) }
            if rc == 0 { return .written }
            if rc == -ETIMEDOUT {
                if let deadline = entry.deadline, ContinuousClock.now >= deadline {
                    return .failed(stalled: true, JournalError(errno: ETIMEDOUT))
                }
                return .waiting
            }
            // journald restarted (socket replaced) or went away: connect again once.
            close(fd)
            fd = -1
            if attempt == 1 || ![ECONNREFUSED, ENOTCONN, EPIPE, ECONNRESET, ENOENT].contains(-rc) {
                return .failed(stalled: false, JournalError(errno: -rc))
            }
        }
        return .failed(stalled: false, JournalError(errno: EIO))
    }

    /// Whether the journal's queue has room again, waiting at most one slice.
    private func probe() -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(
            &entry, 1,
            Int32(Self.slice.components.seconds * 1000 + Self.slice.components.attoseconds / 1_000_000_000_000_000))
        return ready > 0 && entry.revents & Int16(POLLOUT) != 0 && entry.revents & Int16(POLLERR | POLLHUP) == 0
    }

    /// Tells the journal how many entries were lost while it did not read. True when written.
    private func writeLossReport(audit: Int, log: Int) -> Bool {
        let event = AuditEvent(
            .recordsLost, priority: 3,
            message:
                "the journal did not take entries for a while: \(audit) best-effort audit records and \(log) log lines were dropped (the history still has every execution's outcome)",
            fields: [("LOST_AUDIT_RECORDS", String(audit)), ("LOST_LOG_LINES", String(log))])
        return write(Entry(bytes: Self.encode(event.journalFields), kind: .audit)).isWritten
    }

    /// One entry in the native protocol.
    static func encode(_ fields: [(String, String)]) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 2 })
        for (name, value) in fields {
            buffer.append(contentsOf: name.utf8)
            if value.utf8.contains(UInt8(ascii: "\n")) {
                buffer.append(UInt8(ascii: "\n"))
                withUnsafeBytes(of: UInt64(value.utf8.count).littleEndian) { buffer.append(contentsOf: $0) }
            } else {
                buffer.append(UInt8(ascii: "="))
            }
            buffer.append(contentsOf: value.utf8)
            buffer.append(UInt8(ascii: "\n"))
        }
        return buffer
    }

    /// An audit record that cannot reach the journal, as one `runvoyd-audit:` JSON line on stderr.
    static func writeFallback(_ fields: [(String, String)]) {
        var object: [String] = []
        for (name, value) in fields { object.append(JSONText.quoted(name) + ":" + JSONText.quoted(value)) }
        let line = "runvoyd-audit: {" + object.joined(separator: ",") + "}\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// A journal write that failed.
struct JournalError: Error, CustomStringConvertible {
    var errno: Int32
    var description: String {
        errno == ETIMEDOUT
            ? "the journal did not take the record in time (journald is stalled)"
            : "cannot write to the journal: \(SystemError.text(errno))"
    }
}
