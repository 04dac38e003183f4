/// Which refusals of one user are recorded one by one and which are only counted: the first `limit` in a window
/// of `period` from that user's first refusal, then a count that a `refusals_suppressed` record reports when the
/// window ends. A pure state machine: the caller passes the time and carries out what it returns.
struct RefusalWindows {
    /// A user's refusals that were counted and not recorded, for the summary record.
    struct Summary: Equatable {
        var uid: UInt32
        var user: String
        var suppressed: Int
        /// How long the window had lasted when it was summarized.
        var elapsed: Duration
    }

    enum Admission: Equatable {
        /// Write the refusal's own record, after `summary` of the previous window (if any).
        case record(summary: Summary?)
        /// Count it only.
        case suppress
    }

    private struct Window {
        var started: ContinuousClock.Instant
        var user: String
        var recorded = 0
        var suppressed = 0
    }

    let period: Duration
    private var windows: [UInt32: Window] = [:]

    init(period: Duration) {
        self.period = period
    }

    /// A refusal of `uid` at `now`; `limit` refusals per window are recorded.
    mutating func admit(uid: UInt32, user: String, limit: Int, now: ContinuousClock.Instant) -> Admission {
        var summary: Summary?
        if let window = windows[uid], now - window.started >= period {
            summary = Self.summary(uid, window, now: now)
            windows[uid] = nil
        }
        var window = windows[uid] ?? Window(started: now, user: user)
        defer { windows[uid] = window }
        guard window.recorded < limit else {
            window.suppressed += 1
            return .suppress
        }
        window.recorded += 1
        return .record(summary: summary)
    }

    /// Ends every window older than `period` (all of them with `all`), returning the summaries of those that
    /// suppressed something. Windows that suppressed nothing end silently.
    mutating func expire(now: ContinuousClock.Instant, all: Bool = false) -> [Summary] {
        var summaries: [Summary] = []
        for (uid, window) in windows where all || now - window.started >= period {
            windows[uid] = nil
            if let summary = Self.summary(uid, window, now: now) { summaries.append(summary) }
        }
        return summaries.sorted { $0.uid < $1.uid }
    }

    var count: Int { windows.count }

    private static func summary(_ uid: UInt32, _ window: Window, now: ContinuousClock.Instant) -> Summary? {
        guard window.suppressed > 0 else { return nil }
        return Summary(uid: uid, user: window.user, suppressed: window.suppressed, elapsed: now - window.started)
    }
}
