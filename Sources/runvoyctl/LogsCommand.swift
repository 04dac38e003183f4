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
            output, without gaps or repeats). When an execution printed more than history.max_output_bytes, \
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

    @Option(name: .long, help: ArgumentHelp("Replay speed factor (e.g. 2 for twice as fast).", valueName: "x"))
    var speed: Double = 1

    func validate() throws {
        guard speed > 0, speed.isFinite else { throw ValidationError("--speed must be a positive number") }
    }

    func run() throws {
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
            _ = try client.stream(
                .logs, params: LogsParams(executionId: id, follow: follow), result: LogsResult.self
            ) { payload in
                let head = try Frame.decode(FrameHead.self, from: payload)
                switch head.event {
                case "output":
                    let chunk = try Frame.decode(LogChunkEvent.self, from: payload)
                    guard let bytes = Base64.decode(chunk.data) else {
                        throw ClientError(.protocolViolation, "output event with invalid base64")
                    }
                    if replay {
                        let due = replayStart + .microseconds(Int64(Double(chunk.tUsec) / speed))
                        let wait = due - ContinuousClock.now
                        if wait > .zero { Self.sleep(wait) }
                    }
                    printer.print(chunk.stream, bytes, tUsec: chunk.tUsec)
                case "dropped":
                    let dropped = try Frame.decode(DroppedEvent.self, from: payload)
                    printer.marker("[runvoy: \(dropped.bytes) bytes of output were not stored here]")
                default:
                    break
                }
            }
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
    private var atLineStart: [OutputStreamKind: Bool] = [.stdout: true, .stderr: true]

    init(timestamps: Bool) {
        self.timestamps = timestamps
    }

    mutating func print(_ stream: OutputStreamKind, _ bytes: [UInt8], tUsec: Int64) {
        let fd: Int32 = stream == .stdout ? 1 : 2
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
