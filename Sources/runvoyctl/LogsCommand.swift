import ArgumentParser
import Glibc
import RunvoyKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `runvoyctl logs ID`: an execution's stored output, again; live with --follow.
struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print an execution's output: stdout to stdout, stderr to stderr.",
        discussion: """
            Output is stored as it streams, so it can be shown again exactly. With --follow, a running \
            execution's output is streamed live until it ends (everything stored so far first, then live \
            output, without gaps or repeats). --replay plays it back at its pace (--speed, pauses capped with \
            --max-pause), a terminal session (exec -t) as it looked. --format asciicast writes asciicast v2 for \
            asciinema's player (the size is this terminal's unless --size says), with the recorded input as "i" \
            events where the executor records input (record_input); --input prints that input instead of the \
            output. When an execution printed more than history.max_output_bytes, \
            its head and tail are kept and a marker on stderr says how many bytes were left out.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The execution id.", valueName: "id"))
    var id: String

    @Flag(name: [.short, .long], help: "Keep streaming until the execution ends.")
    var follow = false

    @Flag(name: [.short, .long], help: "Prefix every line with the UTC time it was printed.")
    var timestamps = false

    @Flag(name: .long, help: "Play the output back with its original timing.")
    var replay = false

    @Flag(
        name: .long,
        help: "Print the recorded input (typed or piped in; executors with record_input) instead of the output.")
    var input = false

    @Option(name: .long, help: ArgumentHelp("Replay speed factor (e.g. 2 for twice as fast).", valueName: "x"))
    var speed: Double = 1

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --replay, wait at most this long between chunks (e.g. 2s); in asciicast, its idle_time_limit.",
            valueName: "duration"))
    var maxPause: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "raw (the bytes, default) or asciicast (asciicast v2, for asciinema's player).", valueName: "format"))
    var format: String = "raw"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The terminal size an asciicast declares (default: this terminal's).", valueName: "COLSxROWS"))
    var size: String?

    func validate() throws {
        guard speed > 0, speed.isFinite else { throw ValidationError("--speed must be a positive number") }
        if let maxPause, DurationParser.parse(maxPause) == nil {
            throw ValidationError("--max-pause takes a duration such as 500ms or 2s, not '\(maxPause)'")
        }
        guard format == "raw" || format == "asciicast" else {
            throw ValidationError("--format is raw or asciicast, not '\(format)'")
        }
        if format == "asciicast" && (replay || timestamps || follow) {
            throw ValidationError("--format asciicast writes a file: not with --replay, --timestamps or --follow")
        }
        if input && (replay || format == "asciicast") {
            throw ValidationError("--input prints the recorded input: not with --replay or --format asciicast")
        }
        if let size, Self.parseSize(size) == nil { throw ValidationError("--size takes COLSxROWS, such as 80x24") }
    }

    static func parseSize(_ text: String) -> (cols: Int, rows: Int)? {
        let parts = text.split(separator: "x")
        guard parts.count == 2, let cols = Int(parts[0]), let rows = Int(parts[1]), cols > 0, rows > 0 else {
            return nil
        }
        return (cols, rows)
    }

    /// --max-pause in microseconds, or nil.
    var maxPauseUsec: Int64? {
        guard let maxPause, let duration = DurationParser.parse(maxPause) else { return nil }
        return duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }

    func run() throws {
        if format == "asciicast" { return try writeAsciicast() }
        do throws(ClientError) {
            let client = try RunvoyClient(socketPath: global.socketPath)
            var printer = LogPrinter(timestamps: timestamps)
            if timestamps {
                let info = try client.call(.status, params: ExecutionRef(executionId: id), result: ExecutionInfo.self)
                printer.startUsec = (info.startedAtMs ?? info.createdAtMs) * 1000
            }
            let replayStart = ContinuousClock.now
            let speed = speed
            let replay = replay
            // With --max-pause, the replay's clock skips what is longer than it in every pause.
            var pacing = ReplayPacing(maxPauseUsec: maxPauseUsec)
            let input = input
            _ = try client.stream(
                .logs, params: LogsParams(executionId: id, follow: follow, input: input ? true : nil),
                result: LogsResult.self
            ) { payload in
                let head = try Frame.decode(FrameHead.self, from: payload)
                switch head.event {
                case "output":
                    let chunk = try Frame.decode(LogChunkEvent.self, from: payload)
                    // With --input, only the input; without, never (a daemon sends it only when asked).
                    guard chunk.stream.isOutput != input else { return }
                    guard let bytes = Base64.decode(chunk.data) else {
                        throw ClientError(.protocolViolation, "output event with invalid base64")
                    }
                    if replay {
                        let at = pacing.playbackUsec(chunk.tUsec)
                        let due = replayStart + .microseconds(Int64(Double(at) / speed))
                        let wait = due - ContinuousClock.now
                        if wait > .zero { Self.sleep(wait) }
                    }
                    printer.print(chunk.stream, bytes, tUsec: chunk.tUsec)
                case "dropped" where !input:
                    let dropped = try Frame.decode(DroppedEvent.self, from: payload)
                    printer.marker("[runvoy: \(dropped.bytes) bytes of output were not stored here]")
                case "approval":
                    // `logs -f` of a request that waits for approval: where it stands, until it starts.
                    if let frame = JSONValue.parse(payload) { complain(ApprovalDisplay.waiting(frame)) }
                default:
                    break
                }
            }
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
    }

    /// `--format asciicast`: the stored output as asciicast v2 on stdout.
    private func writeAsciicast() throws {
        do throws(ClientError) {
            let client = try RunvoyClient(socketPath: global.socketPath)
            let info = try client.call(.status, params: ExecutionRef(executionId: id), result: ExecutionInfo.self)
            let window =
                size.flatMap(Self.parseSize)
                ?? {
                    let local = LocalTerminal.windowSize()
                    return (cols: local.cols, rows: local.rows)
                }()
            let header = AsciicastWriter.Header(
                width: window.cols, height: window.rows, timestamp: (info.startedAtMs ?? info.createdAtMs) / 1000,
                command: info.argv.joined(separator: " "), title: "runvoy execution \(id)",
                idleTimeLimit: maxPauseUsec.map { Double($0) / 1_000_000 })
            var writer = AsciicastWriter()
            LogPrinter.writeAll(1, Array(AsciicastWriter.header(header).utf8))
            _ = try client.stream(
                .logs, params: LogsParams(executionId: id, follow: false, input: true), result: LogsResult.self
            ) { payload in
                let head = try Frame.decode(FrameHead.self, from: payload)
                guard head.event == "output" else { return }
                let chunk = try Frame.decode(LogChunkEvent.self, from: payload)
                guard let bytes = Base64.decode(chunk.data) else {
                    throw ClientError(.protocolViolation, "output event with invalid base64")
                }
                let line =
                    chunk.stream.isOutput
                    ? writer.output(bytes, tUsec: chunk.tUsec) : writer.input(bytes, tUsec: chunk.tUsec)
                if let line { LogPrinter.writeAll(1, Array(line.utf8)) }
            }
            if let line = writer.finish() { LogPrinter.writeAll(1, Array(line.utf8)) }
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
    }

    private static func sleep(_ duration: Duration) {
        var request = timespec(
            tv_sec: Int(duration.components.seconds),
            tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        // nanosleep says how much was left when a signal interrupted it; sleep that, not the whole duration again.
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

/// Writes chunks to stdout or stderr, optionally prefixing each line with its time.
struct LogPrinter {
    let timestamps: Bool
    /// Microseconds since the epoch when the execution started.
    var startUsec: Int64 = 0
    private var atLineStart: [OutputStreamKind: Bool] = [.stdout: true, .stderr: true, .stdin: true]

    init(timestamps: Bool) {
        self.timestamps = timestamps
    }

    mutating func print(_ stream: OutputStreamKind, _ bytes: [UInt8], tUsec: Int64) {
        // Recorded input (`--input`) goes to stdout, as the bytes were given.
        let fd: Int32 = stream == .stderr ? 2 : 1
        guard timestamps else {
            Self.writeAll(fd, bytes)
            return
        }
        let prefix = Array((HistoryFormat.utcTimestamp(usec: startUsec + tUsec) + " ").utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + prefix.count * 4)
        var lineStart = atLineStart[stream] ?? true
        for byte in bytes {
            if lineStart { out += prefix }
            out.append(byte)
            lineStart = byte == UInt8(ascii: "\n")
        }
        atLineStart[stream] = lineStart
        Self.writeAll(fd, out)
    }

    /// A line of its own on stderr.
    mutating func marker(_ text: String) {
        var line = Array((text + "\n").utf8)
        if atLineStart[.stderr] == false { line.insert(UInt8(ascii: "\n"), at: 0) }
        atLineStart[.stderr] = true
        Self.writeAll(2, line)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = SystemCall.retrying { write(fd, raw.baseAddress! + offset, raw.count - offset) }
                if n < 0 { return }
                offset += n
            }
        }
    }
}
