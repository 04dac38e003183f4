import ArgumentParser
import RunvoyKit

/// `runvoyctl explain -- CMD...`: whether a command would be allowed, and the rule that decides.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Say whether a command would be allowed, and which rule (file and line) decides.",
        discussion: """
            Nothing runs. Exits 0 when the command would be allowed, 1 when it would be denied. Only \
            administrators may ask about another user (--user).
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .long], help: ArgumentHelp("Ask about this user instead of yourself.", valueName: "user"))
    var user: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Executor (default: the daemon's default).", valueName: "name"))
    var executor: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command, after --.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        if argv.isEmpty { throw ValidationError("name a command after --, e.g. runvoyctl explain -- terraform plan") }
    }

    var argv: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    func run() throws {
        let result = try remoteCall(
            global, .explain, params: ExplainParams(argv: argv, executor: executor, user: user),
            result: ExplainResult.self, json: json
        ) { result in
            let roles = result.roles.isEmpty ? "no role" : "roles: " + result.roles.joined(separator: ", ")
            printLine("\(result.decision): \(result.user) (\(roles)) on executor '\(result.executor)'")
            printLine("reason: \(result.reason)")
            if let rule = result.rule { printLine("rule: \(rule)") }
            if let approval = result.approval { printLine("approval: \(approval)") }
        }
        if result.decision != "allow" { throw ExitCode(1) }
    }
}

/// `runvoyctl capabilities`: the executors and command rules you may use, like `sudo -l`.
struct CapabilitiesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capabilities", abstract: "List your roles, and the executors and commands you may use.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(global, .capabilities, params: NoParams(), result: CapabilitiesResult.self, json: json) {
            result in
            printLine("user: \(result.user)")
            printLine("roles: \(result.roles.isEmpty ? "none" : result.roles.joined(separator: ", "))")
            printLine(
                "permissions: \(result.permissions.isEmpty ? "none" : result.permissions.joined(separator: ", "))")
            for grant in result.grants ?? [] {
                printLine(
                    "temporary: \(grant.subject) until \(GrantOptions.time(grant.expiresAtMs)) (grant \(grant.id))")
            }
            if result.executors.isEmpty { printLine("executors: none") }
            for executor in result.executors {
                printLine("")
                var title =
                    "executor \(executor.name)\(executor.isDefault ? " (default)" : "") runs as \(executor.runAs)"
                if let description = executor.description { title += ": \(description)" }
                printLine(title)
                if let approval = executor.approval { printLine("  (\(approval) before a command runs)") }
                if executor.recordInput == true {
                    printLine("  (what you type or pipe in is recorded, redacted of its secrets, with the output)")
                }
                for rule in executor.rules {
                    let verb = rule.effect == "deny" ? "  deny  " : "  allow "
                    let body = rule.pattern.hasPrefix("deny ") ? String(rule.pattern.dropFirst(5)) : rule.pattern
                    printLine(verb + body + (rule.rule.map { "    (\($0))" } ?? ""))
                    if let approval = rule.approval { printLine("          \(approval)") }
                }
            }
        }
    }
}

/// `runvoyctl users`: the role bindings in force and each user's roles (administrators and operators).
struct UsersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "List the role bindings in force and every user's effective roles.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(global, .users, params: NoParams(), result: UsersResult.self, json: json) { result in
            printLine("bindings (root is always admin):")
            for binding in result.bindings {
                var who: [String] = binding.users.map { "user \($0)" }
                who += binding.groups.map { "group \($0)" }
                printLine(
                    "  \(binding.role): \(who.isEmpty ? "nobody" : who.joined(separator: ", "))    (\(binding.rule))")
            }
            printLine("")
            let rows = result.users.map { [$0.user, String($0.uid), $0.roles.joined(separator: ",")] }
            print(
                HistoryFormat.table(["USER", "UID", "ROLES"], rows, width: HistoryFormat.terminalWidth()),
                terminator: "")
            guard let grants = result.grants, !grants.isEmpty else { return }
            printLine("")
            let grantRows = grants.map {
                [$0.id, $0.user, $0.subject, GrantOptions.time($0.expiresAtMs), $0.grantedBy, $0.reason]
            }
            print(
                HistoryFormat.table(
                    ["GRANT", "USER", "GIVES", "UNTIL", "BY", "REASON"], grantRows,
                    width: HistoryFormat.terminalWidth(),
                    dropOrder: [5, 4]),
                terminator: "")
        }
    }
}

/// `runvoyctl reload`: apply the configuration file now (administrators).
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Apply runvoyd's configuration file now, like SIGHUP, and report the outcome.",
        discussion: """
            An invalid file, or one whose policy expectations fail, is rejected with every problem listed, and \
            the configuration in force stays. Administrators only.
            """)

    @OptionGroup var global: GlobalOptions

    func run() throws {
        do {
            let client = try RunvoyClient(socketPath: global.socketPath)
            let result = try client.call(.reload, params: NoParams(), result: ReloadResult.self)
            printLine(
                "reloaded: configuration \(result.configDigest), policy \(result.policyDigest), executors "
                    + result.executors.joined(separator: ", "))
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
    }
}
