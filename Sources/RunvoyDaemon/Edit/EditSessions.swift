import Glibc
import RunvoyKit

/// The files `edit_open` handed out and not yet saved, by token: what `edit_save` needs to know about each (who
/// opened it, on which executor, which file as read then). In memory only: a restart forgets them, and the caller's
/// `edit_save` is refused (the edit can be started again). Bounded: at most `EditLimits.openPerUser` per user (the
/// oldest goes first) and each for `EditLimits.tokenLifetimeSeconds`.
final class EditSessions: Sendable {
    struct Open: Sendable {
        var uid: UInt32
        var executor: String
        /// The file as `edit_open` resolved it.
        var path: String
        var sha256: String
        var openedAt: ContinuousClock.Instant
    }

    static let shared = EditSessions()

    private struct Entry {
        var session: Open
        /// The order it was opened in (times can be equal).
        var order: UInt64
    }

    private let open = Mutex<(entries: [String: Entry], next: UInt64)>(([:], 0))

    /// A new token for `session`.
    func add(_ session: Open) -> String {
        var rng = SystemRandomNumberGenerator()
        let token = (0..<2).map { _ in String(rng.next() as UInt64, radix: 16) }.joined(separator: "-")
        open.withLock { open in
            Self.expire(&open.entries, now: .now)
            let mine = open.entries.filter { $0.value.session.uid == session.uid }.sorted {
                $0.value.order < $1.value.order
            }
            for (stale, _) in mine.prefix(max(0, mine.count - EditLimits.openPerUser + 1)) {
                open.entries[stale] = nil
            }
            open.entries[token] = Entry(session: session, order: open.next)
            open.next += 1
        }
        return token
    }

    /// The open edit `token` names, if `uid` opened it and it has not expired; it stays until `remove`.
    func find(_ token: String, uid: UInt32) -> Open? {
        open.withLock { open in
            Self.expire(&open.entries, now: .now)
            guard let entry = open.entries[token], entry.session.uid == uid else { return nil }
            return entry.session
        }
    }

    func remove(_ token: String) {
        _ = open.withLock { $0.entries.removeValue(forKey: token) }
    }

    var count: Int { open.withLock { $0.entries.count } }

    private static func expire(_ entries: inout [String: Entry], now: ContinuousClock.Instant) {
        let lifetime = Duration.seconds(EditLimits.tokenLifetimeSeconds)
        entries = entries.filter { now - $0.value.session.openedAt < lifetime }
    }
}
