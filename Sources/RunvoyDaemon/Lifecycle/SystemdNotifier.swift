import CSystemd
import Glibc

/// Talks to the service manager through `sd_notify`; does nothing when not started by systemd.
struct SystemdNotifier: Sendable {
    /// Whether NOTIFY_SOCKET is set.
    var isActive: Bool { getenv("NOTIFY_SOCKET") != nil }

    func notify(_ state: String) {
        _ = sd_notify(0, state)
    }

    func ready(status: String) { notify("READY=1\nSTATUS=\(status)") }
    func status(_ text: String) { notify("STATUS=\(text)") }
    func stopping(status: String) { notify("STOPPING=1\nSTATUS=\(status)") }
    func reloading() { notify("RELOADING=1") }
    func reloaded(status: String) { notify("READY=1\nSTATUS=\(status)") }
    func watchdog() { notify("WATCHDOG=1") }

    /// The keepalive interval systemd expects (WATCHDOG_USEC), if the watchdog is on for this process.
    var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }
}
