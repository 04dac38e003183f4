import Glibc
import RunvoyKit

/// Everything `runvoyctl exec` was asked to do.
struct ExecOptions: Equatable {
    var socket: String?
    var executor: String?
    var env: [String] = []
    var timeout: String?
    var detach = false
    var killOnDisconnect = false
    var quiet = false
    var noStdin = false
    /// `-t`: run the command on a pseudo-terminal; `-T` (false) or absent: pipes.
    var tty = false
    /// `--no-wait`: refused with `busy` at once rather than waiting in the queue.
    var noWait = false
    /// `--wait-timeout`: give up waiting in the queue after this long.
    var waitTimeout: String?
    /// `--reason`: why, shown to approvers and audited.
    var reason: String?
    /// `--break-glass`: run at once a command that needs approval (where the executor allows it).
    var breakGlass = false
    var argv: [String] = []

    var socketPath: String { socket ?? GlobalOptions.socketPath(in: []) }

    /// Runs the exchange and returns runvoyctl's exit status.
    func run() -> Int32 {
        var environment: [String: String] = [:]
        for item in env {
            let split = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            environment[String(split[0])] = split.count > 1 ? String(split[1]) : ""
        }
        let timeoutMs = timeout.flatMap(Self.milliseconds)
        var params = ExecParams(
            argv: argv, executor: executor, env: environment.isEmpty ? nil : environment, timeoutMs: timeoutMs,
            detach: detach ? true : nil, killOnDisconnect: killOnDisconnect ? true : nil, stdin: !(noStdin || detach),
            binaryOutput: true, wait: !noWait, waitTimeoutMs: waitTimeout.flatMap(Self.milliseconds))
        params.reason = reason
        params.breakGlass = breakGlass ? true : nil
        var terminal: LocalTerminal?
        if tty && !detach {
            let size = LocalTerminal.windowSize()
            params.tty = TerminalParams(rows: size.rows, cols: size.cols, term: LocalTerminal.term)
            params.stdin = true
            terminal = LocalTerminal()
        } else if tty {
            params.tty = TerminalParams(rows: 24, cols: 80, term: LocalTerminal.term)
        }
        do throws(ClientError) {
            let session = try ExecSession(socketPath: socketPath, quiet: quiet, terminal: terminal)
            return try session.run(params)
        } catch {
            complain(error.description)
            return CtlExit.code(for: error)
        }
    }

    /// A duration option in milliseconds (at least 1).
    static func milliseconds(_ text: String) -> Int64? {
        guard let duration = DurationParser.parse(text) else { return nil }
        let (seconds, attoseconds) = duration.components
        return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    /// Whether `runvoyctl exec ...` has `-h`/`--help` among its options (before the command).
    static func asksForHelp(_ arguments: [String]) -> Bool {
        guard arguments.count >= 2, arguments[1] == "exec" else { return false }
        for argument in arguments.dropFirst(2) {
            if argument == "--" || !argument.hasPrefix("-") { return false }
            if argument == "-h" || argument == "--help" { return true }
        }
        return false
    }

    /// Parses the plain, valid forms of `runvoyctl exec ...` without ArgumentParser, whose start-up cost is a
    /// measurable share of a short command's latency. Returns nil for anything else (help, combined short flags,
    /// unknown options, invalid values), which then goes through ArgumentParser for its full handling and
    /// messages. The integration tests check that both parsers agree.
    static func parseFast(_ arguments: [String]) -> ExecOptions? {
        guard arguments.count >= 3, arguments[1] == "exec" else { return nil }
        var options = ExecOptions()
        var noTty = false
        var index = 2
        func value(_ name: String, _ argument: String) -> String? {
            if argument.hasPrefix(name + "=") { return String(argument.dropFirst(name.count + 1)) }
            guard argument == name, index + 1 < arguments.count else { return nil }
            index += 1
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                options.argv = Array(arguments[(index + 1)...])
                break
            }
            if !argument.hasPrefix("-") {
                options.argv = Array(arguments[index...])
                break
            }
            switch argument {
            case "-d", "--detach": options.detach = true
            case "--kill-on-disconnect": options.killOnDisconnect = true
            case "-q", "--quiet": options.quiet = true
            case "-n", "--no-stdin": options.noStdin = true
            case "-t", "--tty": options.tty = true
            case "-T", "--no-tty": noTty = true
            case "--no-wait": options.noWait = true
            case "--break-glass": options.breakGlass = true
            case "-e":
                guard index + 1 < arguments.count else { return nil }
                index += 1
                options.executor = arguments[index]
            default:
                if let socket = value("--socket", argument) {
                    options.socket = socket
                } else if let executor = value("--executor", argument) {
                    options.executor = executor
                } else if let item = value("--env", argument) {
                    guard item.contains("="), !item.hasPrefix("=") else { return nil }
                    options.env.append(item)
                } else if let timeout = value("--timeout", argument) {
                    guard DurationParser.parse(timeout) != nil else { return nil }
                    options.timeout = timeout
                } else if let reason = value("--reason", argument) {
                    options.reason = reason
                } else if let timeout = value("--wait-timeout", argument) {
                    guard DurationParser.parse(timeout) != nil else { return nil }
                    options.waitTimeout = timeout
                } else {
                    return nil
                }
            }
            index += 1
        }
        options.tty = options.tty && !noTty
        return options.argv.isEmpty ? nil : options
    }
}
