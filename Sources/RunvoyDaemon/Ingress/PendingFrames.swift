import Glibc
import RunvoyKit

/// The bytes of large request frames each user has announced but not yet finished sending, across all its
/// connections: a frame's bytes stay in daemon memory until it is complete, so without a bound per user, one user
/// holding many connections, each with most of a large frame sent, would hold connections × `max_frame_bytes`.
/// Frames up to `threshold` are not counted (a connection's share of those is bounded by its count).
final class PendingFrames: Sendable {
    static let threshold = 64 << 10
    private let bytes = Mutex([uid_t: Int]())

    /// What one unfinished frame holds of its user's budget, given back when it is released (the frame completed
    /// or its connection closed).
    final class Reservation: Sendable {
        private let owner: PendingFrames
        private let uid: uid_t
        private let bytes: Int

        fileprivate init(owner: PendingFrames, uid: uid_t, bytes: Int) {
            self.owner = owner
            self.uid = uid
            self.bytes = bytes
        }

        deinit { owner.give(uid, bytes) }
    }

    /// Holds `bytes` of `uid`'s budget of `limit`, or nil when they do not fit.
    func reserve(_ uid: uid_t, _ bytes: Int, limit: Int) -> Reservation? {
        let fits = self.bytes.withLock { held -> Bool in
            let now = held[uid, default: 0]
            guard now + bytes <= limit else { return false }
            held[uid] = now + bytes
            return true
        }
        return fits ? Reservation(owner: self, uid: uid, bytes: bytes) : nil
    }

    /// What `uid` holds now.
    func held(by uid: uid_t) -> Int { bytes.withLock { $0[uid] ?? 0 } }

    private func give(_ uid: uid_t, _ bytes: Int) {
        self.bytes.withLock { held in
            let left = held[uid, default: 0] - bytes
            held[uid] = left > 0 ? left : nil
        }
    }
}
