import Glibc
import RunvoyKit

/// What `runvoyctl exec` shows on stderr while its execution waits in the queue: one line, rewritten in place
/// (and its times kept running) when stderr is a terminal, a plain line per change otherwise.
///
///     queued: 2nd for deploy (concurrency 1); running: 01m8r2kq… by alice for 3m12s
struct QueueDisplay {
    private let live = isatty(2) != 0
    /// The last `queued` event, and when it arrived.
    private var event: JSONValue?
    private var receivedAt = ContinuousClock.now
    private var shown = false

    /// The waiting execution's id, once the daemon has queued it.
    var executionID: String?

    /// Whether a line should be redrawn every second (a terminal shows the times running).
    var ticks: Bool { live && event != nil }

    /// A `queued` event; the first one is announced with the execution's id unless `quiet`.
    mutating func queued(_ frame: JSONValue, quiet: Bool) {
        if executionID == nil, !quiet, let id = frame["execution_id"]?.string {
            end()
            write("runvoyctl: " + TerminalText.escape("execution \(id) waits in the queue") + "\n")
        }
        executionID = frame["execution_id"]?.string ?? executionID
        event = frame
        receivedAt = .now
        draw()
    }

    /// Redraws the line with the times moved on (a terminal only).
    mutating func tick() {
        if ticks { draw() }
    }

    /// The wait is over (started, refused, left): the live line goes.
    mutating func end() {
        if live && shown { write("\r\u{1B}[K") }
        shown = false
        event = nil
    }

    private mutating func draw() {
        guard let event else { return }
        let elapsed = ContinuousClock.now - receivedAt
        let line = "runvoyctl: " + TerminalText.escape(Self.describe(event, elapsedMs: Self.ms(elapsed)))
        if live {
            write("\r\u{1B}[K" + line)
            shown = true
        } else {
            write(line + "\n")
        }
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    static func ms(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// "queued: 2nd for deploy (concurrency 1); running: 01m8r2kq… by alice for 3m12s", the holders' times
    /// `elapsedMs` after the event.
    static func describe(_ event: JSONValue, elapsedMs: Int64 = 0) -> String {
        let executor = event["executor"]?.string ?? "?"
        let position = event["position"]?.int ?? 1
        let limit = event["limit"]?.int.map(String.init) ?? "?"
        let what: String
        switch event["waiting_for"]?.string {
        case "concurrency": what = "concurrency \(limit)"
        case "executions": what = "runvoyd's limit of \(limit) running executions"
        case "user_share": what = "your share of \(limit) running executions"
        case "lock": what = "a lock"
        default: what = "its turn"
        }
        var line = "queued: \(ordinal(position)) for \(executor) (\(what))"
        if case .array(let holders) = event["holders"], !holders.isEmpty {
            line += "; running: "
            line += holders.map { holder in
                let running = Int64(holder["running_ms"]?.int ?? 0) + elapsedMs
                guard let id = holder["execution_id"]?.string else {
                    return "another user's execution for \(duration(running))"
                }
                return "\(id.prefix(8))… by \(holder["user"]?.string ?? "?") for \(duration(running))"
            }.joined(separator: ", ")
        }
        return line
    }

    static func ordinal(_ n: Int) -> String {
        let suffix: String
        switch (n % 10, n % 100) {
        case (_, 11...13): suffix = "th"
        case (1, _): suffix = "st"
        case (2, _): suffix = "nd"
        case (3, _): suffix = "rd"
        default: suffix = "th"
        }
        return "\(n)\(suffix)"
    }

    /// 45s, 3m12s, 1h02m.
    static func duration(_ ms: Int64) -> String {
        let seconds = max(0, ms / 1000)
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(String(format2: seconds % 60))s" }
        return "\(seconds / 3600)h\(String(format2: seconds / 60 % 60))m"
    }
}

extension String {
    /// Two digits, zero-padded.
    fileprivate init(format2 value: Int64) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
