import CRunvoyPosix
import Glibc
import RunvoyKit

/// The write end of the self-pipe the signal handler writes to. Set once before handlers are installed and
/// only read afterwards, from the handler, which may touch nothing but this value.
nonisolated(unsafe) private var signalPipeWriteFD: Int32 = -1

/// One `exec` exchange: a poll loop over the socket, stdin and forwarded signals.
///
/// The socket is non-blocking and outgoing frames are queued, so runvoyctl always keeps reading output
/// while it forwards stdin: neither side can block the other into a deadlock.
final class ExecSession {
    private let socket: UnixSocket
    private let reader = FrameReader(maxFrameBytes: 64 << 20)
    private let quiet: Bool
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var nextID: Int64 = 2
    private var stdinOpen = false
    private var stdoutBroken = false
    private var executionID: String?
    private var decodeBuffer: [UInt8] = []
    private let signalRead: Int32
    /// The line that shows where the execution waits in the queue, if it waits.
    private var queue = QueueDisplay()
    /// The request that waits for approval, until its command is queued or started: Ctrl-C withdraws it.
    private var awaitingApproval: String?

    /// Stop reading stdin while this much is queued for the socket.
    private static let pendingLimit = 1 << 20
    private static let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    private let socketPath: String
    /// With `exec -t`: the local terminal, in raw mode from the `started` event until the session ends, however
    /// it ends (`run` restores it on every way out).
    private let terminal: LocalTerminal?

    init(socketPath: String, quiet: Bool, terminal: LocalTerminal? = nil) throws(ClientError) {
        self.socketPath = socketPath
        self.terminal = terminal
        socket = try UnixSocket(connectingTo: socketPath)
        self.quiet = quiet
        var fds: [Int32] = [-1, -1]
        guard runvoy_pipe_cloexec(&fds, 1) == 0 else {
            throw ClientError(.io, "pipe: \(SystemError.text())")
        }
        signalRead = fds[0]
        signalPipeWriteFD = fds[1]
    }

    /// With `playbook run`: the run's progress, shown on stderr; its reply ends the exchange.
    private var playbook: PlaybookProgress?

    /// Runs the exchange and returns runvoyctl's exit status.
    func run(_ params: ExecParams) throws(ClientError) -> Int32 {
        try run(request: RequestText.exec(id: 1, params), wantsStdin: params.stdin ?? false)
    }

    /// Runs a `playbook_run` exchange: its steps' output streams as `exec`'s, their progress goes to stderr.
    func run(playbook params: PlaybookRunParams) throws(ClientError) -> Int32 {
        playbook = PlaybookProgress(quiet: quiet)
        let frame: [UInt8]
        do {
            frame = try Frame.encode(Request(id: .number(1), method: .playbookRun, params: params))
        } catch {
            throw ClientError(.io, "cannot encode the request: \(error)")
        }
        return try run(request: frame, wantsStdin: false)
    }

    /// Runs the exchange that `request` starts and returns runvoyctl's exit status.
    private func run(request: [UInt8], wantsStdin: Bool) throws(ClientError) -> Int32 {
        defer { terminal?.restore() }
        signal(SIGPIPE, SIG_IGN)
        // Bigger buffers mean fewer wake-ups per byte when output streams fast: our socket's receive buffer,
        // and our stdout when it is a pipe (the reader on the other end wakes less often too).
        var receiveBuffer: Int32 = 4 << 20
        setsockopt(socket.fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, socklen_t(MemoryLayout<Int32>.size))
        _ = runvoy_set_pipe_size(1, 1 << 20)
        enqueue(request)
        _ = fcntl(socket.fd, F_SETFL, fcntl(socket.fd, F_GETFL) | O_NONBLOCK)
        // A parent may have started us with these signals blocked; they must reach the handler to be forwarded.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in Self.forwarded { sigaddset(&unblock, sig) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        // A window size change is sent as `resize`, not forwarded: the daemon's TIOCSWINSZ signals the command.
        for sig in Self.forwarded + (terminal == nil ? [] : [SIGWINCH]) {
            signal(sig) { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWriteFD, &byte, 1)
            }
        }
        var startedStdin = false

        while true {
            if !startedStdin, executionID != nil, wantsStdin {
                startedStdin = true
                stdinOpen = true
            }
            var fds = [
                pollfd(fd: socket.fd, events: Int16(POLLIN) | (hasPending ? Int16(POLLOUT) : 0), revents: 0),
                pollfd(fd: signalRead, events: Int16(POLLIN), revents: 0),
            ]
            let pollStdin = stdinOpen && pending.count - pendingOffset < Self.pendingLimit
            if pollStdin { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            // A signal interrupts the wait; it is then seen on the signal pipe when poll is called again.
            // While it waits in the queue, a terminal's line shows the times running.
            let n = SystemCall.retrying { poll(&fds, nfds_t(fds.count), queue.ticks ? 1000 : -1) }
            if n < 0 {
                throw ClientError(.io, "poll: \(SystemError.text())")
            }
            if n == 0 { queue.tick() }
            if fds[1].revents != 0 {
                if let status = leaveQueueOnSignal() { return status }
                forwardSignals()
            }
            if fds[0].revents & Int16(POLLOUT) != 0 { try flush() }
            if fds[0].revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
                let received = try socket.receive(into: reader)
                if let status = try processFrames() { return status }
                if received == 0 {
                    queue.end()
                    if executionID == nil, let queued = queue.executionID {
                        throw ClientError(
                            .connectionLost,
                            "runvoyd closed the connection while execution \(queued) waited in the queue; it did not run"
                        )
                    }
                    let what = executionID.map { "; execution \($0) may still be running" } ?? ""
                    throw ClientError(.connectionLost, "runvoyd closed the connection\(what)")
                }
            }
            if pollStdin, fds.count > 2, fds[2].revents != 0 { try readStdin() }
        }
    }

    private var hasPending: Bool { pendingOffset < pending.count }

    private func enqueue(_ bytes: [UInt8]) {
        if pendingOffset > 0 && (pendingOffset == pending.count || pendingOffset >= 1 << 20) {
            // Drop what was sent, so the queue stays as small as what is still to send.
            pending.removeFirst(pendingOffset)
            pendingOffset = 0
        }
        pending.append(contentsOf: bytes)
    }

    private func flush() throws(ClientError) {
        while hasPending {
            let n = pending.withUnsafeBytes { raw in
                SystemCall.retrying {
                    send(socket.fd, raw.baseAddress! + pendingOffset, raw.count - pendingOffset, Int32(MSG_NOSIGNAL))
                }
            }
            if n < 0 {
                if errno == EAGAIN { return }
                if errno == EPIPE || errno == ECONNRESET {
                    // runvoyd closed the connection, perhaps refusing it at once (`busy` over its limits) before
                    // our request was written: nothing more goes out, and what it said is read as usual (the
                    // socket is readable until its end), so the caller sees its error, not "Broken pipe".
                    pending.removeAll(keepingCapacity: true)
                    pendingOffset = 0
                    return
                }
                throw ClientError(
                    .connectionLost, "lost the connection to runvoyd: \(SystemError.text())")
            }
            pendingOffset += n
        }
        pending.removeAll(keepingCapacity: true)
        pendingOffset = 0
    }

    private func makeID() -> Int64 {
        defer { nextID += 1 }
        return nextID
    }

    private func readStdin() throws(ClientError) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let n = buffer.withUnsafeMutableBytes { raw in SystemCall.retrying { read(0, raw.baseAddress, raw.count) } }
        if n < 0 && errno == EAGAIN { return }
        if n <= 0 {
            stdinOpen = false
            enqueue(RequestText.stdin(id: makeID(), data: nil))
        } else {
            enqueue(
                buffer.withUnsafeBytes {
                    RequestText.stdin(id: makeID(), data: UnsafeRawBufferPointer(rebasing: $0[..<n]))
                })
        }
        try flush()
    }

    /// Ctrl-C (or TERM, HUP, QUIT) before the `started` event: runvoyctl leaves, and with its connection the
    /// execution leaves the queue (or its request is dropped). A signal is forwarded only to a command known to
    /// run: one sent in band before then would wait behind the `exec` and reach the command when it starts, long
    /// after the user gave up. Returns the exit status then; nil once the command started. A playbook run is left
    /// the same way at any time.
    private func leaveQueueOnSignal() -> Int32? {
        guard executionID == nil else { return nil }
        var byte: UInt8 = 0
        while read(signalRead, &byte, 1) == 1 {
            guard Self.forwarded.contains(Int32(byte)) else { continue }
            queue.end()
            if playbook != nil {
                // A run's steps are never `started` here: leaving ends the run (its running step is killed).
                complain("interrupted: runvoyd ends the run, kills its running step and skips the rest")
            } else if let id = awaitingApproval {
                complain(withdraw(id))
            } else if let queued = queue.executionID {
                complain("left the queue; execution \(queued) did not run")
            } else {
                complain("interrupted before runvoyd reported that the command started; left without signalling it")
            }
            return 128 + Int32(byte)
        }
        return nil
    }

    /// Withdraws request `id` (`cancel ID` on a connection of its own) before leaving: without that, a request
    /// that does not need this client would stay pending, and run once approved.
    private func withdraw(_ id: String) -> String {
        do throws(ClientError) {
            let client = try RunvoyClient(socketPath: socketPath)
            _ = try client.call(.cancel, params: CancelParams(executionId: id), result: CancelResult.self)
            return "withdrew request \(id); it will not run"
        } catch {
            return
                "could not withdraw request \(id) (\(error)); it runs once approved unless you run: runvoyctl cancel \(id)"
        }
    }

    private func forwardSignals() {
        var byte: UInt8 = 0
        while read(signalRead, &byte, 1) == 1 {
            let name: String
            switch Int32(byte) {
            case SIGINT: name = "INT"
            case SIGTERM: name = "TERM"
            case SIGHUP: name = "HUP"
            case SIGQUIT: name = "QUIT"
            case SIGWINCH:
                let size = LocalTerminal.windowSize()
                enqueue(RequestText.resize(id: makeID(), rows: size.rows, cols: size.cols))
                continue
            default: name = String(byte)
            }
            if let executionID, sendSignalOutOfBand(name, executionID: executionID) { continue }
            enqueue(RequestText.signal(id: makeID(), name: name))
        }
        try? flush()
    }

    /// Sends a signal on a connection of its own, so it never waits behind input queued on the main one.
    /// Returns false when that fails; the caller then sends it in band.
    private func sendSignalOutOfBand(_ name: String, executionID: String) -> Bool {
        guard let side = try? UnixSocket(connectingTo: socketPath) else { return false }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(side.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard (try? side.sendAll(RequestText.signal(id: 1, name: name, executionID: executionID))) != nil else {
            return false
        }
        let reader = FrameReader(maxFrameBytes: 1 << 20)
        var delivered = false
        while !delivered, let n = try? side.receive(into: reader), n > 0 {
            try? reader.forEachFrame { payload in
                guard let reply = JSONValue.parse(payload) else { return }
                if let error = reply["error"], case .object = error {
                    complain("signal \(name): \(error["message"]?.string ?? "refused")")
                }
                delivered = true
            }
        }
        return delivered
    }

    /// Handles every complete frame; returns the exit status once the exchange is over.
    private func processFrames() throws(ClientError) -> Int32? {
        var outcome: Int32?
        var failure: ClientError?
        do {
            try reader.forEachEntry { entry in
                guard outcome == nil, failure == nil else { return }
                let payload: UnsafeRawBufferPointer
                switch entry {
                case .output(let stream, let bytes):
                    writeRaw(stream, bytes)
                    return
                case .json(let json):
                    payload = json
                }
                if let fast = OutputFrame.parseFast(payload) {
                    writeOutput(fast.stream, UnsafeRawBufferPointer(rebasing: payload[fast.base64]))
                    return
                }
                do {
                    outcome = try handleGeneral(payload)
                } catch let error as ClientError {
                    failure = error
                }
            }
        } catch let error as RunvoyError {
            throw ClientError(.protocolViolation, "runvoyd sent an oversized frame: \(error.message)")
        } catch {
            throw ClientError(.protocolViolation, "\(error)")
        }
        if let failure { throw failure }
        return outcome
    }

    private func handleGeneral(_ payload: UnsafeRawBufferPointer) throws -> Int32? {
        guard let frame = JSONValue.parse(payload), case .object = frame else {
            throw ClientError(.protocolViolation, "unreadable frame from runvoyd")
        }
        let isExec = frame["id"]?.int == 1 || frame["id"]?.isNull ?? true
        if isExec, frame["event"]?.string == "queued" {
            awaitingApproval = nil
            queue.queued(frame, quiet: quiet)
            return nil
        }
        if isExec, frame["event"]?.string == "approval" {
            if let id = frame["execution_id"]?.string {
                queue.executionID = id
                let state = frame["state"]?.string
                awaitingApproval = state == "pending" || state == "approved" ? id : nil
            }
            if !quiet { complain(ApprovalDisplay.waiting(frame)) }
            return nil
        }
        if isExec && frame["event"]?.string != "output" { queue.end() }
        if isExec, playbook != nil, let handled = playbook?.handle(frame) { return handled.status }
        if let error = frame["error"], case .object = error {
            var remote = RunvoyError(
                RunvoyError.Code(rawValue: error["code"]?.string ?? "internal"), error["message"]?.string ?? "")
            remote.reason = error["reason"]?.string
            if let wait = error["data"]?["retry_after_ms"]?.int {
                remote.data = RunvoyError.Details(retryAfterMs: Int64(wait))
            }
            if isExec { throw ClientError(remote: remote) }
            complain(remote.description)
            return nil
        }
        switch frame["event"]?.string {
        case "output":
            guard let data = frame["data"]?.string, let stream = frame["stream"]?.string.flatMap(OutputStreamKind.init)
            else { throw ClientError(.protocolViolation, "output event without stream or data") }
            var text = data
            text.withUTF8 { writeOutput(stream, UnsafeRawBufferPointer($0)) }
        case "started":
            awaitingApproval = nil
            let id = frame["execution_id"]?.string ?? "?"
            executionID = id
            if !quiet {
                let executor = frame["executor"]?.string ?? "?"
                complain("execution \(id) on executor '\(executor)' as \(frame["run_as"]?.string ?? "?")")
            }
            terminal?.enterRawMode()
        case "exit":
            terminal?.restore()
            if frame["timed_out"]?.bool == true {
                complain("execution \(frame["execution_id"]?.string ?? "?") timed out and was stopped")
                return CtlExit.timedOut
            }
            if let code = frame["exit_code"]?.int { return Int32(truncatingIfNeeded: code) }
            return 128 + Int32(truncatingIfNeeded: frame["signal"]?.int ?? 0)
        case nil:
            if isExec, let id = frame["result"]?["execution_id"]?.string {
                printLine(id)
                if frame["result"]?["state"]?.string == "awaiting_approval", !quiet {
                    complain("execution \(id) waits for approval; it runs once approved (runvoyctl logs -f \(id))")
                }
                return 0
            }
        default:
            break
        }
        return nil
    }

    private func writeOutput(_ stream: OutputStreamKind, _ base64: UnsafeRawBufferPointer) {
        let needed = Base64.maxDecodedLength(base64.count)
        if decodeBuffer.count < needed { decodeBuffer = [UInt8](repeating: 0, count: needed) }
        decodeBuffer.withUnsafeMutableBytes { destination in
            guard let count = Base64.decode(base64, into: destination) else {
                complain("runvoyd sent output that is not valid base64; dropped")
                return
            }
            writeRaw(stream, UnsafeRawBufferPointer(rebasing: destination[..<count]))
        }
    }

    private func writeRaw(_ stream: OutputStreamKind, _ bytes: UnsafeRawBufferPointer) {
        let fd: Int32 = stream == .stdout ? 1 : 2
        if fd == 1 && stdoutBroken { return }
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let n = SystemCall.retrying { write(fd, base + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EAGAIN {
                    var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&pfd, 1, -1)
                    continue
                }
                if errno == EPIPE && fd == 1 {
                    // Whoever read our stdout is gone: the command gets SIGPIPE, as in a local pipeline.
                    stdoutBroken = true
                    enqueue(RequestText.signal(id: makeID(), name: "PIPE"))
                    try? flush()
                }
                return
            }
            offset += n
        }
    }
}
