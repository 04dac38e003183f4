import Foundation
import Glibc
import Testing

/// Paths and process helpers shared by the integration suites.
enum Harness {
    /// The package root, found from this file's location.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Where the built runvoyd and runvoyctl are: $RUNVOY_BIN_DIR, else .build/debug.
    static let binDirectory: String = {
        if let dir = ProcessInfo.processInfo.environment["RUNVOY_BIN_DIR"] { return dir }
        return packageRoot + "/.build/debug"
    }()

    static var runvoyd: String { binDirectory + "/runvoyd" }
    static var runvoyctl: String { binDirectory + "/runvoyctl" }

    static var isRoot: Bool { geteuid() == 0 }

    /// Whether a journald is listening (the test script starts a private one when run as root).
    static var hasJournal: Bool { access("/run/systemd/journal/socket", F_OK) == 0 }

    /// A fresh directory under /tmp that unprivileged users can traverse (sockets live in it).
    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/runvoy-test-XXXXXX".utf8CString)
        guard let pointer = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
        let path = String(cString: pointer)
        chmod(path, 0o755)
        return path
    }

    /// Raises this process's descriptor limit (the hostile-input tests open a thousand connections).
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
    }

    /// The result of a finished process.
    struct Output: Sendable {
        var status: Int32
        var stdout: Data
        var stderr: Data
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Runs `argv` to completion with stdin from `stdinPath` (or /dev/null), stdout and stderr to files.
    /// A process killed by signal N reports 128+N, as a shell does.
    static func run(
        _ argv: [String], stdinPath: String? = nil, environment: [String: String]? = nil, timeout: Double = 120
    ) throws -> Output {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = try ChildProcess(
            argv, environment: environment, stdinPath: stdinPath, stdoutPath: dir + "/out", stderrPath: dir + "/err")
        guard let status = child.wait(seconds: timeout) else {
            let stacks = backtraces(of: child.pid)
            child.signal(SIGKILL)
            child.wait()
            throw HarnessError("\(argv) did not finish within \(timeout) s\n\(stacks)")
        }
        return Output(
            status: status, stdout: try Data(contentsOf: URL(fileURLWithPath: dir + "/out")),
            stderr: try Data(contentsOf: URL(fileURLWithPath: dir + "/err")))
    }

    /// Backtraces of a hung process and of every runvoyd, to explain a time-out.
    static func backtraces(of pid: Int32) -> String {
        var report = ""
        var targets = [String(pid)]
        if let pgrep = try? ChildProcess(["/usr/bin/pgrep", "-x", "runvoyd"], stdoutPath: "/tmp/runvoy-pgrep.txt"),
            pgrep.wait(seconds: 10) != nil,
            let list = try? String(contentsOfFile: "/tmp/runvoy-pgrep.txt", encoding: .utf8)
        {
            targets += list.split(separator: "\n").map(String.init)
        }
        for target in targets {
            let path = "/tmp/runvoy-gdb-\(target).txt"
            guard
                let gdb = try? ChildProcess(
                    ["/usr/bin/gdb", "-p", target, "-batch", "-ex", "thread apply all bt 30"], stdoutPath: path)
            else { continue }
            if gdb.wait(seconds: 60) == nil { gdb.signal(SIGKILL) }
            report += "== backtrace of \(target)\n\((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")\n"
        }
        return report
    }

    /// Journal entries matching `matches` (FIELD=value), polled until `until` holds or a few seconds pass,
    /// since journal writes are asynchronous. The journal is shared by every suite: tie the query to one daemon
    /// with `_PID=\(daemon.process.pid)` (or to something only this test made, such as an execution id).
    static func journal(
        _ matches: [String], until: ([[String: String]]) -> Bool = { !$0.isEmpty }, seconds: Double = 5
    ) throws -> [[String: String]] {
        let deadline = Date().addingTimeInterval(seconds)
        var entries: [[String: String]] = []
        repeat {
            let out = try run(["/usr/bin/journalctl", "--no-pager", "--all", "-o", "json"] + matches)
            // A journalctl that failed (a bad match, no journal) would otherwise read as "no entries yet".
            guard out.status == 0 else {
                throw HarnessError("journalctl \(matches) exited \(out.status): \(out.stderrText)")
            }
            entries = out.stdoutText.split(separator: "\n").compactMap { line in
                guard let data = line.data(using: .utf8),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                else { return nil }
                var entry: [String: String] = [:]
                for (key, value) in object {
                    if let string = value as? String { entry[key] = string }
                }
                return entry
            }
            if until(entries) { return entries }
            usleep(100_000)
        } while Date() < deadline
        return entries
    }
}

extension Harness {
    /// Polls `condition` until it holds or `seconds` pass; returns whether it held. For waiting on an event
    /// (a file, a process state, a journal entry) instead of sleeping for a fixed time.
    static func waitUntil(seconds: Double = 20, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
