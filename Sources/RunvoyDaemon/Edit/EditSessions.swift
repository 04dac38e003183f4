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

    private let open = Mutex<[String: Open]>([:])

    /// A new token for `session`.
    func add(_ session: Open) -> String {
        var rng = SystemRandomNumberGenerator()
        let token = (0..<2).map { _ in String(rng.next() as UInt64, radix: 16) }.joined(separator: "-")
        open.withLock { open in
            Self.expire(&open, now: session.openedAt)
            let mine = open.filter { $0.value.uid == session.uid }.sorted { $0.value.openedAt < $1.value.openedAt }
            for (stale, _) in mine.prefix(max(0, mine.count - EditLimits.openPerUser + 1)) {
                open[stale] = nil
            }
            open[token] = session
        }
        return token
    }

    /// The open edit `token` names, if `uid` opened it and it has not expired; it stays until `remove`.
    func find(_ token: String, uid: UInt32) -> Open? {
        open.withLock { open in
            Self.expire(&open, now: .now)
            guard let session = open[token], session.uid == uid else { return nil }
            return session
        }
    }

    func remove(_ token: String) {
        _ = open.withLock { $0.removeValue(forKey: token) }
    }

    var count: Int { open.withLock { $0.count } }

    private static func expire(_ open: inout [String: Open], now: ContinuousClock.Instant) {
        let lifetime = Duration.seconds(EditLimits.tokenLifetimeSeconds)
        open = open.filter { now - $0.value.openedAt < lifetime }
    }
}
