import ArgumentParser
import CRunvoyPosix
import Glibc
import RunvoyKit

/// `runvoyctl attach ID`: a running execution, live.
struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Watch a running execution live; its owner may type into it with --write.",
        discussion: """
            Shows everything the execution printed so far, then its output live until it ends; runvoyctl then \
            exits with the command's status. Whoever may see the execution (its owner, operators, viewers, \
            admins) may attach; watchers read the stored output, so they never hold the command up. Ctrl-C \
            detaches: the command goes on running. With --write (the owner only, one writer at a time), what \
            you type goes to the command too: on a terminal session (exec -t) this terminal is in raw mode, \
            every key goes to the command, and Ctrl-] detaches; on a pipe execution, lines typed reach its \
            standard input, and the end of your input (Ctrl-D) stops writing without closing the command's \
            input (that is for the client that started it). Every attach is audited.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The execution id.", valueName: "id"))
    var id: String

    @Flag(name: [.short, .long], help: "Also type into the execution (its owner only; one writer at a time).")
    var write = false

    func run() throws {
        let status: Int32
        do throws(ClientError) {
            status = try AttachSession(socketPath: global.socketPath, executionID: id, write: write).run()
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// The write end of the self-pipe attach's signal handler writes to (set before the handlers are installed).
nonisolated(unsafe) private var attachSignalWriteFD: Int32 = -1

/// One `attach` exchange: a poll loop over the socket, stdin (with --write) and the signals that detach.
final class AttachSession {
    private let client: RunvoyClient
    private let executionID: String
    private let write: Bool
    private let terminal = LocalTerminal()
    private let signalRead: Int32
    /// Whether the daemon granted the writer slot and local input is still read.
    private var writing = false
    private var rawMode = false
    private var nextID: Int64 = 2

    /// Ctrl-] (as telnet has it): detaches a --write attach to a terminal session, whose other keys all go to it.
    static let detachByte: UInt8 = 0x1d

    init(socketPath: String, executionID: String, write: Bool) throws(ClientError) {
        client = try RunvoyClient(socketPath: socketPath)
        self.executionID = executionID
        self.write = write
        var fds: [Int32] = [-1, -1]
        guard runvoy_pipe_cloexec(&fds, 1) == 0 else { throw ClientError(.io, "pipe: \(SystemError.text())") }
        signalRead = fds[0]
        attachSignalWriteFD = fds[1]
    }

    /// Runs the exchange; returns the command's exit status once it ended, or 0 after a detach.
    func run() throws(ClientError) -> Int32 {
        defer { terminal.restore() }
        signal(SIGPIPE, SIG_IGN)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = Glibc.write(attachSignalWriteFD, &byte, 1)
            }
        }
        let params = AttachParams(executionId: executionID, write: write, binaryOutput: true)
        try client.send(Request(id: .number(1), method: .attach, params: params))
        while true {
            var fds = [
                pollfd(fd: client.socket.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signalRead, events: Int16(POLLIN), revents: 0),
            ]
            if writing { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            if SystemCall.retrying({ poll(&fds, nfds_t(fds.count), -1) }) < 0 {
                throw ClientError(.io, "poll: \(SystemError.text())")
            }
            if fds[1].revents != 0 { return detach() }
            if fds[0].revents != 0 {
                let received = try client.socket.receive(into: client.reader)
                if let status = try processFrames() { return status }
                if received == 0 {
                    throw ClientError(
                        .connectionLost, "runvoyd closed the connection; execution \(executionID) may still be running")
                }
            }
            if fds.count > 2, fds[2].revents != 0, try forwardInput() { return detach() }
        }
    }

    private func detach() -> Int32 {
        terminal.restore()
        complain("detached from execution \(executionID); it goes on running")
        return 0
    }

    /// Sends what was typed; returns true when it asks to detach (Ctrl-] in raw mode).
    private func forwardInput() throws(ClientError) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 14)
        let n = buffer.withUnsafeMutableBytes { raw in SystemCall.retrying { read(0, raw.baseAddress, raw.count) } }
        if n < 0 && errno == EAGAIN { return false }
        guard n > 0 else {
            // The end of our input ends our writing, not the command's input.
            writing = false
            return false
        }
        var bytes = Array(buffer[..<n])
        var detaching = false
        if rawMode, let cut = bytes.firstIndex(of: Self.detachByte) {
            bytes = Array(bytes[..<cut])
            detaching = true
        }
        if !bytes.isEmpty {
            defer { nextID += 1 }
            try client.send(
                Request(
                    id: .number(nextID), method: .stdin,
                    params: StdinParams(data: Base64.encode(bytes), eof: nil, executionId: executionID)))
        }
        return detaching
    }

    /// Handles every complete frame; returns the exit status once the execution ended.
    private func processFrames() throws(ClientError) -> Int32? {
        var outcome: Int32?
        var failure: ClientError?
        do {
            try client.reader.forEachEntry { entry in
                guard outcome == nil, failure == nil else { return }
                do {
                    switch entry {
                    case .output(let stream, let bytes):
                        LogPrinter.writeAll(stream == .stdout ? 1 : 2, Array(bytes))
                    case .json(let payload):
                        outcome = try handle(payload)
                    }
                } catch let error as ClientError {
                    failure = error
                }
            }
        } catch {
            throw ClientError(.protocolViolation, "\(error)")
        }
        if let failure { throw failure }
        return outcome
    }

    private func handle(_ payload: UnsafeRawBufferPointer) throws(ClientError) -> Int32? {
        guard let frame = JSONValue.parse(payload), case .object = frame else {
            throw ClientError(.protocolViolation, "unreadable frame from runvoyd")
        }
        let isAttach = frame["id"]?.int == 1 || frame["id"]?.isNull ?? true
        if let error = frame["error"], case .object = error {
            var remote = RunvoyError(
                RunvoyError.Code(rawValue: error["code"]?.string ?? "internal"), error["message"]?.string ?? "")
            remote.reason = error["reason"]?.string
            if isAttach { throw ClientError(remote: remote) }
            complain(remote.description)
            return nil
        }
        switch frame["event"]?.string {
        case "attached":
            writing = frame["write"]?.bool == true
            if writing && frame["terminal"]?.bool == true && terminal.isTerminal {
                complain("attached to execution \(executionID) with --write: Ctrl-] detaches")
                terminal.enterRawMode()
                rawMode = true
            }
        case "output":
            guard let data = frame["data"]?.string.flatMap(Base64.decode),
                let stream = frame["stream"]?.string.flatMap(OutputStreamKind.init)
            else { throw ClientError(.protocolViolation, "output event without stream or data") }
            LogPrinter.writeAll(stream == .stdout ? 1 : 2, data)
        case "dropped":
            complain("[runvoy: \(frame["bytes"]?.int ?? 0) bytes of output were not stored here]")
        case nil:
            guard isAttach, let execution = frame["result"]?["execution"] else { return nil }
            terminal.restore()
            if let code = execution["exit_code"]?.int { return Int32(truncatingIfNeeded: code) }
            if let signal = execution["signal"]?.int { return 128 + Int32(truncatingIfNeeded: signal) }
            return CtlExit.failure
        default:
            break
        }
        return nil
    }
}
