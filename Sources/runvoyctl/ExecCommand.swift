import ArgumentParser
import Glibc
import RunvoyKit

/// `runvoyctl exec`: run a command on an executor and relay its output, input, signals and exit status.
struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command on an executor.",
        discussion: """
            Output arrives on your stdout and stderr as the command writes it; your stdin is forwarded; Ctrl-C \
            and SIGTERM are forwarded to the command's process group. When the executor's concurrency, \
            runvoyd's limit or your share of running executions is full, the command waits in the queue: its \
            place and what runs meanwhile are shown on stderr, and Ctrl-C leaves the queue (the command never \
            runs). runvoyctl exits with the command's status, \
            128+N when signal N killed it, 124 when its timeout expired, 125 when runvoyd refused or failed, \
            126 when the command could not be executed and 127 when it was not found.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: [.short, .long],
        help: ArgumentHelp("Executor to run on (default: the daemon's default).", valueName: "name"))
    var executor: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Pass an environment variable the executor allows (repeatable).", valueName: "K=V"))
    var env: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Stop the command after this long (e.g. 30s, 5m, 1h30m).", valueName: "duration"))
    var timeout: String?

    @Flag(name: [.short, .long], help: "Start the command, print its execution id and return at once.")
    var detach = false

    @Flag(name: .long, help: "Kill the command if this client disconnects before it ends.")
    var killOnDisconnect = false

    @Flag(name: [.short, .long], help: "Do not print the execution id to stderr.")
    var quiet = false

    @Flag(name: [.customShort("n"), .long], help: "Do not forward stdin; the command reads /dev/null.")
    var noStdin = false

    @Flag(
        name: [.customShort("t"), .long],
        help: "Run the command on a pseudo-terminal (interactive programs, shells, prompts); your terminal is raw.")
    var tty = false

    @Flag(name: [.customShort("T"), .long], help: "Do not allocate a terminal (the default; overrides -t).")
    var noTty = false

    @Flag(name: .long, help: "Fail at once (busy) instead of waiting in the queue when no slot is free.")
    var noWait = false

    @Option(
        name: .long,
        help: ArgumentHelp("Give up waiting in the queue after this long (e.g. 30s, 10m).", valueName: "duration"))
    var waitTimeout: String?

    @Option(name: .long, help: "Why you run it: shown to approvers and audited (required where the executor says).")
    var reason: String?

    @Flag(
        name: .long,
        help:
            "Run at once a command that needs approval, where the executor's break_glass admits you (needs --reason; audited critical, listed for review)."
    )
    var breakGlass = false

    @Argument(
        parsing: .captureForPassthrough,
        help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    var argv: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    func validate() throws {
        if argv.isEmpty { throw ValidationError("name a command to run: runvoyctl exec -- CMD [ARGS...]") }
        for item in env where !item.contains("=") || item.hasPrefix("=") {
            throw ValidationError("--env takes NAME=VALUE, not '\(item)'")
        }
        if let timeout, DurationParser.parse(timeout) == nil {
            throw ValidationError("--timeout takes a duration such as 30s, 5m or 1h30m, not '\(timeout)'")
        }
        if let waitTimeout, DurationParser.parse(waitTimeout) == nil {
            throw ValidationError("--wait-timeout takes a duration such as 30s, 5m or 1h30m, not '\(waitTimeout)'")
        }
    }

    /// The options as one value, shared with the fast path that skips ArgumentParser.
    var options: ExecOptions {
        ExecOptions(
            socket: global.socket, executor: executor, env: env, timeout: timeout, detach: detach,
            killOnDisconnect: killOnDisconnect, quiet: quiet, noStdin: noStdin, tty: tty && !noTty, noWait: noWait,
            waitTimeout: waitTimeout, reason: reason, breakGlass: breakGlass, argv: argv)
    }

    func run() throws {
        throw ExitCode(options.run())
    }
}
