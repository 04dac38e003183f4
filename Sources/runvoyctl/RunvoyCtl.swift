import ArgumentParser
import Glibc
import RunvoyKit

/// Entry point: plain `exec` invocations skip ArgumentParser (see `ExecOptions.parseFast`).
@main
enum Main {
    static func main() {
        let arguments = CommandLine.arguments
        if let options = ExecOptions.parseFast(arguments) {
            exit(options.run())
        }
        // `exec` passes everything after its options through as the command, so ask for help explicitly.
        if ExecOptions.asksForHelp(arguments) {
            print(RunvoyCtl.helpMessage(for: ExecCommand.self))
            exit(0)
        }
        RunvoyCtl.main()
    }
}

/// The runvoyctl command line.
struct RunvoyCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runvoyctl",
        abstract: "Run commands through runvoyd on this host, with credentials you never hold.",
        discussion: """
            The daemon identifies you from the kernel; there is nothing to log in to. The socket is \
            \(RunvoyProtocol.defaultSocketPath) unless --socket or RUNVOY_SOCKET says otherwise.
            """,
        version: RunvoyProtocol.softwareVersion,
        subcommands: [
            ExecCommand.self, ListCommand.self, StatusCommand.self, LogsCommand.self, AttachCommand.self,
            KillCommand.self, LocksCommand.self, CancelCommand.self, ExplainCommand.self, CapabilitiesCommand.self,
            UsersCommand.self, ReloadCommand.self, SecretsCommand.self,
            WhoamiCommand.self, VersionCommand.self, BackupCommand.self, ExportCommand.self, HealthCommand.self,
            TraceCommand.self, EditCommand.self, ApprovalsCommand.self, ApproveCommand.self, DenyCommand.self,
            GrantCommand.self, RevokeCommand.self, RequestGrantCommand.self, PlaybookCommand.self,
            SchedulesCommand.self,
        ]
    )
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The daemon's socket (default: $RUNVOY_SOCKET or \(RunvoyProtocol.defaultSocketPath)).", valueName: "path"))
    var socket: String?

    var socketPath: String { socket ?? Self.socketPath(in: []) }

    /// `--socket PATH` (or `--socket=PATH`) among `words`, else $RUNVOY_SOCKET, else the default. Shell completions
    /// have only the words typed so far: a `GlobalOptions()` of theirs has no value to read.
    static func socketPath(in words: [String]) -> String {
        for (index, word) in words.enumerated() {
            if word.hasPrefix("--socket=") { return String(word.dropFirst("--socket=".count)) }
            if word == "--socket", index + 1 < words.count { return words[index + 1] }
        }
        if let env = getenv("RUNVOY_SOCKET"), env[0] != 0 { return String(cString: env) }
        return RunvoyProtocol.defaultSocketPath
    }
}

/// Writes a runvoyctl message to stderr. Messages carry the daemon's words and other users' text (argv, names),
/// so what a terminal could act on is escaped (see `TerminalText`); line breaks stay.
func complain(_ message: String) {
    var bytes = Array("runvoyctl: \(TerminalText.escape(message, keepNewlines: true))\n".utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// Prints one line of human-readable output, with what a terminal could act on escaped (see `TerminalText`).
func printLine(_ line: String) {
    print(TerminalText.escape(line))
}

/// Exit statuses of runvoyctl itself, beside the command's own.
enum CtlExit {
    /// runvoyctl or the daemon refused or failed (like `env` and `docker run`).
    static let failure: Int32 = 125
    /// The command was found but could not be executed.
    static let cannotExecute: Int32 = 126
    /// The command was not found.
    static let notFound: Int32 = 127
    /// The command's timeout expired (like `timeout`).
    static let timedOut: Int32 = 124

    static func code(for error: ClientError) -> Int32 {
        guard let remote = error.remote else { return failure }
        if remote.code == .spawnFailed {
            return remote.reason == "not_found" ? notFound : cannotExecute
        }
        return failure
    }
}
