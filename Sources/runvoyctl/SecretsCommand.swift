import ArgumentParser
import Glibc
import RunvoyKit

/// `runvoyctl secrets ...`: manage the secrets executors inject. Values go in on stdin and never come back out
/// (unless the configuration lets administrators read them).
struct SecretsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets",
        abstract: "Set, list and remove the secrets executors inject into commands.",
        subcommands: [
            SecretsSetCommand.self, SecretsListCommand.self, SecretsRemoveCommand.self, SecretsGetCommand.self,
        ])
}

struct SecretsSetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set or rotate a secret, reading its value from standard input.",
        discussion: """
            On a terminal the value is read without echo; otherwise all of standard input is the value, less one \
            trailing newline (so `printf %s "$V" | ...` and `echo "$V" | ...` store the same). The value is never \
            taken from the command line, where other users could see it.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The secret's name.", valueName: "name"))
    var name: String

    @Option(name: [.short, .long], help: ArgumentHelp("What the secret is for.", valueName: "text"))
    var description: String?

    func validate() throws {
        guard SecretName.isValid(name) else {
            throw ValidationError(
                "secret names are 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
        }
    }

    func run() throws {
        var value = isatty(0) != 0 ? Self.readHidden(prompt: "value for secret \(name) (not echoed): ") : Self.readAll()
        defer { value.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        if value.last == UInt8(ascii: "\n") { value.removeLast() }
        if value.last == UInt8(ascii: "\r") { value.removeLast() }
        guard !value.isEmpty else {
            complain("no value on standard input")
            throw ExitCode(CtlExit.failure)
        }
        let params = SecretSetParams(name: name, value: Base64.encode(value), description: description)
        try remoteCall(global, .secretsSet, params: params, result: SecretSetResult.self, json: false) { result in
            printLine("secret \(result.name) \(result.created ? "set" : "rotated") (version \(result.version))")
        }
    }

    static func readAll() -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in SystemCall.retrying { read(0, raw.baseAddress, raw.count) } }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return bytes
    }

    /// One line from the terminal with echo off.
    static func readHidden(prompt: String) -> [UInt8] {
        var saved = termios()
        let haveTerminal = tcgetattr(0, &saved) == 0
        if haveTerminal {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSANOW, &quiet)
        }
        defer {
            if haveTerminal {
                tcsetattr(0, TCSANOW, &saved)
                complainRaw("\n")
            }
        }
        complainRaw(prompt)
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(0, &byte, 1) == 1 && byte != UInt8(ascii: "\n") { line.append(byte) }
        return line
    }
}

struct SecretsListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List secrets (yours; all of them for administrators): names, descriptions, owners, executors.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(global, .secretsList, params: NoParams(), result: SecretListResult.self, json: json) { result in
            let rows = result.secrets.map {
                [
                    $0.name, $0.owner, $0.updatedBy, HistoryFormat.localTime(ms: $0.updatedAtMs), String($0.version),
                    $0.executors.isEmpty ? "-" : $0.executors.joined(separator: ","), $0.description ?? "",
                ]
            }
            print(
                HistoryFormat.table(
                    ["NAME", "OWNER", "SET BY", "UPDATED", "VERSION", "EXECUTORS", "DESCRIPTION"], rows,
                    width: HistoryFormat.terminalWidth()),
                terminator: "")
            if !result.missing.isEmpty {
                printLine("not set, but used by executors: \(result.missing.joined(separator: ", "))")
            }
        }
    }
}

struct SecretsRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a secret.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The secret's name.", valueName: "name"))
    var name: String

    func run() throws {
        try remoteCall(
            global, .secretsRemove, params: SecretRef(name: name), result: SecretRemoveResult.self, json: false
        ) {
            printLine("secret \($0.name) removed")
        }
    }
}

struct SecretsGetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print a secret's value (administrators, only when secrets.admin_read is on; every read is audited).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The secret's name.", valueName: "name"))
    var name: String

    func run() throws {
        try remoteCall(global, .secretsGet, params: SecretRef(name: name), result: SecretValueResult.self, json: false)
        {
            var bytes = Base64.decode($0.value) ?? []
            defer { bytes.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
            _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
    }
}

/// Writes text to stderr as is.
func complainRaw(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
