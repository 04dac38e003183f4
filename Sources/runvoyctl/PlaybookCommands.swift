import ArgumentParser
import Foundation
import Glibc
import RunvoyKit

/// `runvoyctl playbook list|show|run|explain`: the administrators' playbooks.
struct PlaybookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "playbook",
        abstract: "List, show, run and explain the playbooks the administrators defined.",
        discussion: """
            A playbook is a list of steps, each a command on an executor with typed parameters filling whole \
            arguments; runvoyd checks every step against its executor's rules before the first runs.
            """,
        subcommands: [
            PlaybookListCommand.self, PlaybookShowCommand.self, PlaybookRunCommand.self, PlaybookExplainCommand.self,
        ])

    /// The playbooks the caller may run, for shell completions (`words`: the command line so far); none when
    /// runvoyd does not answer.
    static func names(_ words: [String]) -> [String] {
        guard let client = try? RunvoyClient(socketPath: GlobalOptions.socketPath(in: words)),
            let list = try? client.call(.playbookList, params: NoParams(), result: PlaybookListResult.self)
        else { return [] }
        return list.playbooks.map(\.name)
    }

    /// `NAME=` for each parameter of the playbook named among `words`, for shell completions.
    static func parameters(_ words: [String]) -> [String] {
        guard let client = try? RunvoyClient(socketPath: GlobalOptions.socketPath(in: words)),
            let list = try? client.call(.playbookList, params: NoParams(), result: PlaybookListResult.self),
            let playbook = list.playbooks.first(where: { words.contains($0.name) })
        else { return [] }
        return playbook.parameters.map { $0.name + "=" }
    }
}

/// `runvoyctl playbook list`.
struct PlaybookListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the playbooks you may run, with their parameters.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(global, .playbookList, params: NoParams(), result: PlaybookListResult.self, json: json) {
            for playbook in $0.playbooks {
                printLine(playbook.name + (playbook.description.map { "  " + $0 } ?? ""))
                for parameter in playbook.parameters {
                    printLine("    " + PlaybookShowCommand.describe(parameter))
                }
            }
        }
    }
}

/// `runvoyctl playbook show NAME`.
struct PlaybookShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a playbook: its parameters, steps, locks, approval and schedule.")

    @OptionGroup var global: GlobalOptions

    @Argument(
        help: ArgumentHelp("The playbook.", valueName: "name"),
        completion: .custom { words, _, _ in PlaybookCommand.names(words) })
    var name: String

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        try remoteCall(global, .playbookShow, params: PlaybookRef(name: name), result: PlaybookInfo.self, json: json) {
            for line in Self.describe($0) { printLine(line) }
        }
    }

    static func describe(_ info: PlaybookInfo) -> [String] {
        var lines = ["playbook " + info.name + (info.description.map { ": " + $0 } ?? "")]
        if !info.parameters.isEmpty { lines.append("parameters:") }
        lines += info.parameters.map { "  " + describe($0) }
        lines.append("steps:")
        for (index, step) in info.steps.enumerated() {
            var text = "  \(index + 1). \(step.name) on \(step.executor): \(JSONText.array(step.argv))"
            if step.when != "succeeded" { text += " when \(step.when)" }
            if step.continueOnError { text += ", continue on error" }
            if let ms = step.timeoutMs { text += ", timeout \(ms / 1000)s" }
            if step.trusted { text += ", TRUSTED (the executor's command rules are not applied)" }
            lines.append(text)
        }
        if !info.locks.isEmpty { lines.append("locks: " + info.locks.joined(separator: ", ")) }
        if let approval = info.approval { lines.append("approval: " + approval) }
        if let schedule = info.schedule {
            lines.append("schedule: \(schedule.calendar) as \(schedule.runAsCaller)")
        }
        return lines
    }

    static func describe(_ parameter: PlaybookParameterInfo) -> String {
        var text = "\(parameter.name) (\(parameter.type)"
        if parameter.required { text += ", required" }
        if let value = parameter.defaultValue { text += ", default \(JSONText.quoted(value))" }
        if let pattern = parameter.pattern { text += ", matching \(pattern)" }
        if let values = parameter.values { text += ", one of " + values.joined(separator: "|") }
        if parameter.min != nil || parameter.max != nil {
            text += ", \(parameter.min.map(String.init) ?? "")..\(parameter.max.map(String.init) ?? "")"
        }
        if let under = parameter.under { text += ", under " + under.joined(separator: ", ") }
        return text + ")" + (parameter.description.map { ": " + $0 } ?? "")
    }
}

/// `runvoyctl playbook run NAME --param k=v ...`.
struct PlaybookRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a playbook: its steps in order, their output as exec shows it, progress on stderr.",
        discussion: """
            Every parameter problem is listed and nothing runs; a step its executor's rules refuse refuses the \
            whole run before any step runs. Each step's output arrives on your stdout and stderr as exec's does, \
            and "[2/4] plan: started (id ...)", "succeeded", "failed (exit 3)" or "skipped" on stderr. Ctrl-C or \
            closing runvoyctl ends the run: the running step is killed and the others are skipped. runvoyctl \
            exits 0 when the run succeeded, else with the status of the last step that failed (its exit status, \
            128+N when signal N killed it), or 125 when runvoyd refused the run, a step could not start or the run \
            was cancelled. --params-file takes a JSON object of strings, {"name": "value", ...}; --param values \
            override it.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(
        help: ArgumentHelp("The playbook.", valueName: "name"),
        completion: .custom { words, _, _ in PlaybookCommand.names(words) })
    var name: String

    @OptionGroup var values: PlaybookValueOptions

    @Option(name: .long, help: "Why you run it: given to each step as exec's --reason, and audited.")
    var reason: String?

    @Flag(name: .long, help: "Run it as its schedule does (its values from the configuration; its user only).")
    var schedule = false

    @Flag(name: [.short, .long], help: "Show only failures on stderr.")
    var quiet = false

    func validate() throws {
        if schedule && !values.isEmpty {
            throw ValidationError("--schedule takes its parameters from the configuration: give no --param")
        }
    }

    func run() throws {
        let params = PlaybookRunParams(
            name: name, params: try values.values(), reason: reason, binaryOutput: true, schedule: schedule ? true : nil
        )
        do {
            let session = try ExecSession(socketPath: global.socketPath, quiet: quiet)
            throw ExitCode(try session.run(playbook: params))
        } catch let error as ClientError {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
    }
}
