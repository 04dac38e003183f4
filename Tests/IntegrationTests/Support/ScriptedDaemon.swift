import Foundation
import Glibc
import RunvoyKit

/// A listening socket that plays runvoyd from a script, for what the real daemon never sends: frames outside the
/// protocol, fields left out, a connection cut in the middle, a side connection refused. The client it talks to
/// is the real runvoyctl, started as a process.
final class ScriptedDaemon: @unchecked Sendable {
    let directory: String
    let path: String
    private var listener: Int32 = -1

    init() throws {
        directory = try Harness.makeTemporaryDirectory()
        path = directory + "/sock"
        listener = try Harness.listeningSocket(at: path)
    }

    deinit {
        stopListening()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops listening: a client's next connection is refused.
    func stopListening() {
        if listener >= 0 { close(listener) }
        listener = -1
    }

    /// The next connection, waited for at most a minute.
    func accept() throws -> RawConnection {
        var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 60_000) == 1 else { throw HarnessError("no client connected within 60 s") }
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { throw HarnessError("accept: \(String(cString: strerror(errno)))") }
        return RawConnection(accepted: fd)
    }

    /// What a client run against the script came to, and the script's own failure if it had one.
    struct Outcome {
        var output: Harness.Output
        var scriptError: String?
    }

    /// The runvoyctl a script plays to: its process id, and the file its stderr goes to.
    struct Client: Sendable {
        var pid: pid_t
        var stderrPath: String
    }

    /// A script: plays the daemon's side to `Client`.
    typealias Script = @Sendable (ScriptedDaemon, Client) throws -> Void

    /// Runs `runvoyctl ARGUMENTS --socket PATH` (without `--socket` when `socketOption` is false: the arguments
    /// or `environment` name it) while `script` plays the daemon. Both run on a thread of their own; the test's
    /// task is suspended meanwhile.
    func play(
        _ arguments: [String], environment: [String: String] = [:], stdinPath: String? = nil,
        socketOption: Bool = true, script: @escaping Script
    ) async throws -> Outcome {
        let out = directory + "/ctl.out"
        let err = directory + "/ctl.err"
        // `--socket` before exec's command, after the others' arguments.
        let head = arguments.first == "exec" ? 1 : arguments.count
        let socket = socketOption ? ["--socket", path] : []
        let argv = [Harness.runvoyctl] + arguments.prefix(head) + socket + arguments.dropFirst(head)
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        // Only the thread below touches it.
        nonisolated(unsafe) let child = try ChildProcess(
            argv, environment: env, stdinPath: stdinPath, stdoutPath: out, stderrPath: err)
        let client = Client(pid: child.pid, stderrPath: err)
        let (status, failure) = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var failure: String?
                do { try script(self, client) } catch { failure = "\(error)" }
                let status = child.wait(seconds: 60)
                if status == nil {
                    child.signal(SIGKILL)
                    child.wait()
                }
                continuation.resume(returning: (status, failure))
            }
        }
        guard let status else { throw HarnessError("\(argv) did not finish within 60 s") }
        return Outcome(
            output: Harness.Output(
                status: status, stdout: try Data(contentsOf: URL(fileURLWithPath: out)),
                stderr: try Data(contentsOf: URL(fileURLWithPath: err))),
            scriptError: failure)
    }

    /// One request the script expects (its method, and what `check` says of its params) and what it answers:
    /// `events` (JSON texts), then the reply with `result` (a JSON text) under the request's id.
    struct Answer: Sendable {
        var method: String
        var result: String
        var events: [String] = []
        var check: @Sendable ([String: Any]) -> Bool = { _ in true }
    }

    /// A script that answers `answers` in turn on one connection (or each on a connection of its own), then
    /// waits for the client to close it.
    static func serve(_ answers: [Answer], connectionEach: Bool = false) -> Script {
        { daemon, _ in
            var peer = try daemon.accept()
            for (index, answer) in answers.enumerated() {
                if connectionEach && index > 0 { peer = try daemon.accept() }
                guard let request = try peer.readFrame(), request["method"] as? String == answer.method,
                    let id = request["id"] as? Int
                else { throw HarnessError("no \(answer.method) request") }
                guard answer.check(request["params"] as? [String: Any] ?? [:]) else {
                    throw HarnessError("unexpected params for \(answer.method): \(request)")
                }
                try peer.sendFrames(answer.events)
                // A client that gave up at an event (refusing what it said) has gone: no reply to give then.
                try? peer.sendFrame(#"{"id":\#(id),"result":\#(answer.result)}"#)
            }
            _ = peer.readToEnd()
        }
    }

    /// `value` as the JSON text the daemon would send.
    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try Frame.payload(value), as: UTF8.self)
    }

    /// Waits (at most a minute) until the file `path` holds `text`: runvoyctl has shown it.
    static func waitForText(_ text: String, in path: String) throws {
        let shown = Harness.waitUntil(seconds: 60) {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains(text)
        }
        guard shown else { throw HarnessError("runvoyctl did not show '\(text)'") }
    }
}

extension Harness {
    /// A Unix socket listening at `path`, for a test that plays the daemon's side.
    static func listeningSocket(at path: String) throws -> Int32 {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard listener >= 0, bound == 0, listen(listener, 8) == 0 else {
            let reason = String(cString: strerror(errno))
            if listener >= 0 { close(listener) }
            throw HarnessError("cannot listen on \(path): \(reason)")
        }
        return listener
    }
}

extension RawConnection {
    /// Sends each of `frames` (JSON texts) in its own frame.
    func sendFrames(_ frames: [String]) throws {
        for frame in frames { try sendFrame(frame) }
    }
}
