import CRunvoyPosix
import Glibc
import RunvoyKit

/// The terminal runvoyctl runs in, for `exec -t`: its window size, and raw mode while a remote terminal session
/// runs. Whoever puts it in raw mode restores it (`restore`, which is safe to call more than once).
final class LocalTerminal {
    /// The descriptor whose terminal is changed: standard input.
    private let fd: Int32 = 0
    private var saved: termios?

    /// Whether standard input is a terminal (otherwise nothing is changed, as ssh does without `-tt`).
    var isTerminal: Bool { isatty(fd) == 1 }

    /// The window size of standard input's or standard output's terminal; 24 x 80 when neither is one.
    static func windowSize() -> (rows: Int, cols: Int) {
        var rows: UInt16 = 0
        var cols: UInt16 = 0
        for fd: Int32 in [0, 1] where runvoy_get_window_size(fd, &rows, &cols) == 0 && rows > 0 && cols > 0 {
            return (Int(rows), Int(cols))
        }
        return (24, 80)
    }

    /// `TERM`, when it is set.
    static var term: String? {
        guard let value = getenv("TERM"), value[0] != 0 else { return nil }
        return String(cString: value)
    }

    /// Raw mode: every byte (Ctrl-C, Ctrl-Z, Ctrl-\ too) goes to the remote terminal as typed, nothing is echoed
    /// locally. Does nothing when standard input is not a terminal.
    func enterRawMode() {
        guard saved == nil, isTerminal else { return }
        var current = termios()
        guard tcgetattr(fd, &current) == 0 else { return }
        saved = current
        var raw = current
        cfmakeraw(&raw)
        _ = SystemCall.retrying { tcsetattr(fd, TCSADRAIN, &raw) }
    }

    /// Puts back the settings `enterRawMode` found.
    func restore() {
        guard var settings = saved else { return }
        saved = nil
        _ = SystemCall.retrying { tcsetattr(fd, TCSADRAIN, &settings) }
    }

    deinit { restore() }
}
