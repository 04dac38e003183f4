import ArgumentParser
import RunvoyKit

/// `runvoyctl playbook explain NAME STEP --param k=v ...`: the command a step would run, and whether its
/// executor's rules allow it (or the administrator trusts the step).
struct PlaybookExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Say what command a playbook's step would run with these values, and whether it would be allowed.",
        discussion: """
            Nothing runs. The values are checked as a run checks them (every problem listed); the step's command \
            is then decided on its executor as the run decides it. A step the administrator marked trusted is \
            allowed past its executor's command rules, and the reason says so. Exits 0 when it would be \
            allowed, 1 when denied. Only administrators may ask about another user (--user).
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(
        help: ArgumentHelp("The playbook.", valueName: "name"),
        completion: .custom { words, _, _ in PlaybookCommand.names(words) })
    var name: String

    @Argument(help: ArgumentHelp("The step, by name.", valueName: "step"))
    var step: String

    @OptionGroup var values: PlaybookValueOptions

    @Option(name: [.short, .long], help: ArgumentHelp("Ask about this user instead of yourself.", valueName: "user"))
    var user: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        let params = ExplainParams(argv: [], user: user, playbook: name, step: step, params: try values.values())
        let result = try remoteCall(global, .explain, params: params, result: ExplainResult.self, json: json) {
            result in
            let roles = result.roles.isEmpty ? "no role" : "roles: " + result.roles.joined(separator: ", ")
            printLine("\(result.decision): \(result.user) (\(roles)) on executor '\(result.executor)'")
            if let argv = result.argv { printLine("command: \(JSONText.array(argv))") }
            if result.trusted == true { printLine("trusted: the executor's command rules are not applied") }
            printLine("reason: \(result.reason)")
            if let rule = result.rule { printLine("rule: \(rule)") }
            if let approval = result.approval { printLine("approval: \(approval)") }
        }
        if result.decision != "allow" { throw ExitCode(1) }
    }
}
