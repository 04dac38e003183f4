import Foundation
import Glibc
import RunvoyKit
import Testing

/// TIOCSTI (issue 16 leftovers, edit2): a command on its `exec -t` terminal pushes input with TIOCSTI into every
/// terminal it has (its own pty, `/dev/tty`, any descriptor that is one), which is how a command run by su or sudo
/// on the caller's terminal could type into the caller's shell after it ended. Under runvoyd the command's
/// terminal is the daemon's pty, never the caller's, so nothing reaches runvoyctl's caller: the caller's shell
/// reads, once runvoyctl has returned, only what it pushed into its own terminal as a control.
extension TerminalTests {
    @Test func tiocstiInTheSessionCannotTypeIntoTheCallersTerminal() throws {
        let inject = """
            import fcntl, os, termios
            pushed = 0
            fds = [int(n) for n in os.listdir("/proc/self/fd")]
            try:
                fds.append(os.open("/dev/tty", os.O_RDWR))
            except OSError:
                pass
            for fd in fds:
                if not os.isatty(fd):
                    continue
                for byte in b"echo INJECTED\\n":
                    try:
                        fcntl.ioctl(fd, termios.TIOCSTI, bytes([byte]))
                        pushed += 1
                    except OSError:
                        pass
            print("pushed", pushed)
            """
        let check = """
            import fcntl, os, termios
            for byte in b"CONTROL":
                fcntl.ioctl(0, termios.TIOCSTI, bytes([byte]))
            attrs = termios.tcgetattr(0)
            attrs[3] &= ~termios.ICANON
            attrs[6][termios.VMIN] = 0
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(0, termios.TCSANOW, attrs)
            print("caller-input:[%s]" % os.read(0, 4096).decode("latin-1"))
            """
        let ctl = [
            Harness.runvoyctl, "exec", "--socket", daemon.socketPath, "-t", "-q", "-e", "interactive", "--",
            "/usr/bin/python3", "-c", inject,
        ]
        let quoted = ctl.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let script = quoted + "; /usr/bin/python3 -c '" + check.replacingOccurrences(of: "'", with: "'\\''") + "'"
        let result = try PtyDriver.run(
            ["/usr/bin/env", "TERM=xterm-256color", "/bin/sh", "-c", script], steps: [.expect("caller-input:\\[")])
        #expect(result.status == 0, "\(result.output)")
        let legacy = (try? String(contentsOfFile: "/proc/sys/dev/tty/legacy_tiocsti", encoding: .utf8)) ?? "1\n"
        // The injection was real: the command pushed its bytes into every terminal it had (its own pty, echoed
        // there as output), unless the kernel forbids TIOCSTI altogether (dev.tty.legacy_tiocsti = 0).
        let pushed = result.output.components(separatedBy: "pushed ").dropFirst().first.flatMap {
            Int($0.prefix { $0.isNumber })
        }
        #expect(legacy.hasPrefix("0") || (pushed ?? 0) >= 14, "\(result.output)")
        // What the caller's shell finds in its terminal once runvoyctl has returned: its own control, no more.
        let after = try #require(result.output.components(separatedBy: "caller-input:[").last)
        #expect(after.prefix { $0 != "]" } == "CONTROL", "\(result.output)")
    }
}
