import Crypto
import Logging
import RunvoyKit
import ServiceLifecycle

/// Keeps one user's refused requests from flooding the audit trail.
///
/// A refusal costs the refused user nothing, so without a bound one user could push every older record (even
/// `daemon_started`) out of a size-limited journal. Per user and minute, the first few refusals are recorded
/// in full (fewer for users who hold no role); the rest are counted, and one `refusals_suppressed` record says
/// how many when the minute is over. The argv of a refused `exec` is recorded as a prefix with its full length
/// and SHA-256 (`boundedArgv`). As a service it writes the summaries of windows that have ended, and all of them
/// at shutdown.
final class RefusalThrottle: Service, Sendable {
    /// Refusals recorded in full per user and window: for users who hold a role, and for users who hold none.
    static let limitWithRole = 30
    static let limitWithoutRole = 3
    /// The most bytes of a refused argv's JSON text a record keeps: for users with a role, and without.
    static let argvBytesWithRole = 16 << 10
    static let argvBytesWithoutRole = 1 << 10

    private let windows: Mutex<RefusalWindows>
    /// Rate-limit refusals: per user and window, the first is recorded and the rest counted (one summary).
    private let rateLimits: Mutex<RefusalWindows>
    /// Other records one caller can make many of at no cost (`connection_refused`, `execution_queued`,
    /// `execution_cancelled`): per kind, user and window, the first `limit` are recorded and the rest counted.
    private let coalesced: Mutex<[AuditEvent.Kind: RefusalWindows]>
    private let period: Duration
    private let logger: Logger

    /// How many records of each coalesced kind one user writes in full per window.
    static let coalescedLimits: [AuditEvent.Kind: Int] = [
        .connectionRefused: 1, .executionQueued: 30, .executionCancelled: 30,
    ]

    init(period: Duration = .seconds(60), logger: Logger) {
        self.windows = Mutex(RefusalWindows(period: period))
        self.rateLimits = Mutex(RefusalWindows(period: period))
        self.coalesced = Mutex([:])
        self.period = period
        self.logger = logger
    }

    /// Writes `event` (of a kind in `coalescedLimits`) if `caller` has written fewer than its limit of that kind
    /// in this window; the rest are counted, and one record of the same kind with `SUPPRESSED` says how many when
    /// the window ends. No count is lost: every window's summary is written, at the latest at shutdown.
    func recordCoalesced(_ event: AuditEvent, caller: Caller, audit: some AuditSink) {
        let limit = Self.coalescedLimits[event.kind] ?? 1
        let admission = coalesced.withLock { windows in
            windows[event.kind, default: RefusalWindows(period: period)].admit(
                uid: caller.accountKey, user: caller.accountName, limit: limit, now: .now)
        }
        guard case .record(let summary) = admission else { return }
        if let summary { audit.recordBestEffort(Self.coalescedSummary(event.kind, summary)) }
        audit.recordBestEffort(event)
    }

    static func coalescedSummary(_ kind: AuditEvent.Kind, _ summary: RefusalWindows.Summary) -> AuditEvent {
        let seconds = max(1, summary.elapsed.components.seconds)
        return AuditEvent(
            kind, priority: 5,
            message:
                "\(summary.suppressed) more \(kind.rawValue) record(s) of \(summary.user) (uid \(summary.uid)) in the last \(seconds) s were counted, not written one by one",
            fields: [
                ("CALLER_UID", String(summary.uid)), ("CALLER_USER", summary.user),
                ("SUPPRESSED", String(summary.suppressed)), ("WINDOW_SEC", String(seconds)),
            ])
    }

    /// Writes `event`, a `rate_limited` record, if it is `caller`'s first in this window; later ones are counted
    /// and summed up in one `rate_limited` record when the window ends. A flood of refused requests writes two
    /// records a minute.
    func recordRateLimited(_ event: AuditEvent, caller: Caller, audit: some AuditSink) {
        DaemonMetrics.shared.rateLimitedRequest()
        let admission = rateLimits.withLock {
            $0.admit(uid: caller.accountKey, user: caller.accountName, limit: 1, now: .now)
        }
        guard case .record(let summary) = admission else { return }
        if let summary { audit.recordBestEffort(Self.rateLimitedSummary(summary)) }
        audit.recordBestEffort(event)
    }

    static func rateLimitedSummary(_ summary: RefusalWindows.Summary) -> AuditEvent {
        let seconds = max(1, summary.elapsed.components.seconds)
        return AuditEvent(
            .rateLimited, priority: 4,
            message:
                "rate-limited \(summary.user) (uid \(summary.uid)) \(summary.suppressed) more time(s) in the last \(seconds) s",
            fields: [
                ("CALLER_UID", String(summary.uid)), ("CALLER_USER", summary.user),
                ("SUPPRESSED", String(summary.suppressed)), ("WINDOW_SEC", String(seconds)),
            ])
    }

    /// Writes `event`, the refusal of `caller`'s request, unless that user's records for this window are used up.
    /// Every value the caller could have chosen (an executor's or a secret's name, a command in a reason) is cut
    /// to the same bound as a refused argv, so no refusal record is larger than a few times that bound.
    func record(_ event: AuditEvent, caller: Caller, hasRole: Bool, audit: some AuditSink) {
        let limit = hasRole ? Self.limitWithRole : Self.limitWithoutRole
        let bound = hasRole ? Self.argvBytesWithRole : Self.argvBytesWithoutRole
        var event = event
        event.message = Self.clamp(event.message, to: bound)
        event.fields = event.fields.map { ($0.0, Self.clamp($0.1, to: bound)) }
        let admission = windows.withLock {
            $0.admit(uid: caller.accountKey, user: caller.accountName, limit: limit, now: .now)
        }
        guard case .record(let summary) = admission else { return }
        if let summary { audit.recordBestEffort(Self.summaryEvent(summary)) }
        audit.recordBestEffort(event)
    }

    func run() async throws {
        let period = windows.withLock { $0.period }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: period / 4) }
            flush(all: false)
        }
        flush(all: true)
    }

    /// Writes the summaries of ended windows (of every window with `all`), to `audit` (the journal by default).
    func flush(all: Bool, audit: (any AuditSink)? = nil) {
        let now = ContinuousClock.now
        let summaries = windows.withLock { $0.expire(now: now, all: all) }
        let limited = rateLimits.withLock { $0.expire(now: now, all: all) }
        let others = coalesced.withLock { windows in
            AuditEvent.Kind.allCases.flatMap { kind in
                (windows[kind]?.expire(now: now, all: all) ?? []).map { Self.coalescedSummary(kind, $0) }
            }
        }
        let audit = audit ?? AuditLog(failClosed: false, logger: logger)
        for summary in summaries { audit.recordBestEffort(Self.summaryEvent(summary)) }
        for summary in limited { audit.recordBestEffort(Self.rateLimitedSummary(summary)) }
        for summary in others { audit.recordBestEffort(summary) }
    }

    static func summaryEvent(_ summary: RefusalWindows.Summary) -> AuditEvent {
        let seconds = max(1, summary.elapsed.components.seconds)
        return AuditEvent(
            .refusalsSuppressed, priority: 4,
            message:
                "refused \(summary.user) (uid \(summary.uid)) \(summary.suppressed) more time(s) in the last \(seconds) s;"
                + " those refusals were counted, not recorded one by one",
            fields: [
                ("CALLER_UID", String(summary.uid)), ("CALLER_USER", summary.user),
                ("SUPPRESSED", String(summary.suppressed)), ("WINDOW_SEC", String(seconds)),
            ])
    }

    /// `text` when it fits in `limit` bytes, else its longest prefix that does (at a character boundary) and "…".
    static func clamp(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var prefix = Substring(text)
        while prefix.utf8.count > limit { prefix = prefix.dropLast(max(1, (prefix.utf8.count - limit) / 4)) }
        return String(prefix) + "…"
    }

    /// The audit fields for a refused `exec`'s argv: the whole JSON array when it fits in `limit` bytes; else a
    /// prefix of it (cut at a character boundary) with the full length and the SHA-256 of the full text.
    static func boundedArgv(_ argv: [String], limit: Int) -> [(String, String)] {
        let text = JSONText.array(argv)
        guard text.utf8.count > limit else { return [("ARGV", text)] }
        let digest = SHA256.hash(data: Array(text.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
        return [
            ("ARGV", clamp(text, to: limit)), ("ARGV_TRUNCATED", "1"), ("ARGV_BYTES", String(text.utf8.count)),
            ("ARGV_COUNT", String(argv.count)), ("ARGV_SHA256", digest),
        ]
    }
}
