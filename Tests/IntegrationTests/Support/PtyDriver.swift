import Foundation

/// Runs a program on a real pseudo-terminal, as a person at a terminal would: a Python driver opens the pty, makes
/// it the program's controlling terminal, plays `steps` (wait for output, type, resize the window, kill a
/// process), and reports the output, the exit status and whether the terminal's settings were put back.
enum PtyDriver {
    enum Step {
        /// Wait until the output so far matches the regular expression.
        case expect(String)
        /// Type these characters (each Unicode scalar below 256 is one byte).
        case send(String)
        /// Change the window size: the kernel sends SIGWINCH to the program.
        case resize(rows: Int, cols: Int)
        /// SIGKILL a process.
        case kill(pid: Int32)

        var json: Any {
            switch self {
            case .expect(let pattern): ["expect", pattern]
            case .send(let text): ["send", text]
            case .resize(let rows, let cols): ["resize", rows, cols]
            case .kill(let pid): ["kill", Int(pid)]
            }
        }
    }

    struct Result {
        /// The exit status (128+N after signal N).
        var status: Int32
        var output: String
        /// Whether the terminal's settings at the end equal those at the start.
        var restored: Bool
        /// Whether the terminal was in raw mode (no ICANON, no ECHO, no ISIG) at the first `expect` that matched.
        var rawSeen: Bool
    }

    static let script = #"""
        import fcntl, json, os, re, select, signal, struct, subprocess, sys, termios, time
        rows, cols, steps = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
        argv = sys.argv[4:]
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        before = termios.tcgetattr(slave)
        def controlling():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                 preexec_fn=controlling)
        out = b""
        def pump(seconds):
            global out
            ready, _, _ = select.select([master], [], [], seconds)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    pass
        raw_seen = None
        for step in steps:
            if step[0] == "expect":
                deadline = time.time() + 30
                while not re.search(step[1].encode("latin-1"), out):
                    if time.time() > deadline:
                        print(json.dumps({"error": "timed out waiting for " + step[1], "output": out.decode("latin-1")}))
                        child.kill(); sys.exit(0)
                    pump(0.05)
                if raw_seen is None:
                    lflag = termios.tcgetattr(slave)[3]
                    raw_seen = lflag & (termios.ICANON | termios.ECHO | termios.ISIG) == 0
            elif step[0] == "send":
                os.write(master, step[1].encode("latin-1"))
            elif step[0] == "resize":
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", step[1], step[2], 0, 0))
                os.killpg(child.pid, signal.SIGWINCH)
            elif step[0] == "kill":
                os.kill(step[1], signal.SIGKILL)
        deadline = time.time() + 60
        while child.poll() is None and time.time() < deadline:
            pump(0.05)
        if child.poll() is None:
            child.kill()
        pump(0.1)
        status = child.wait()
        status = 128 - status if status < 0 else status
        after = termios.tcgetattr(slave)
        print(json.dumps({"status": status, "output": out.decode("latin-1"), "restored": before == after,
                          "raw_seen": bool(raw_seen)}))
        """#

    /// Runs `argv` on a pseudo-terminal of `rows` x `cols` and plays `steps`.
    static func run(_ argv: [String], rows: Int = 24, cols: Int = 80, steps: [Step]) throws -> Result {
        let directory = try Harness.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/ptydriver.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let stepsJSON = String(
            decoding: try JSONSerialization.data(withJSONObject: steps.map(\.json)), as: UTF8.self)
        let output = try Harness.run(["/usr/bin/python3", path, "\(rows)", "\(cols)", stepsJSON] + argv)
        guard
            let object = try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any]
        else { throw HarnessError("the pty driver said: \(output.stdoutText) \(output.stderrText)") }
        if let error = object["error"] as? String {
            throw HarnessError("\(error); output so far: \(object["output"] as? String ?? "")")
        }
        return Result(
            status: Int32(object["status"] as? Int ?? -1), output: object["output"] as? String ?? "",
            restored: object["restored"] as? Bool ?? false, rawSeen: object["raw_seen"] as? Bool ?? false)
    }
}
