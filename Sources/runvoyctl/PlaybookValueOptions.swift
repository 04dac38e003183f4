import ArgumentParser
import Foundation
import RunvoyKit

/// `--param NAME=VALUE` (repeatable) and `--params-file FILE`: a playbook run's values, for `playbook run` and
/// `playbook explain`.
struct PlaybookValueOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("A parameter's value (repeatable).", valueName: "name=value"),
        completion: .custom { words, _, _ in PlaybookCommand.parameters(words) })
    var param: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("A JSON object of parameter values: {\"name\": \"value\"}.", valueName: "file"),
        completion: .file())
    var paramsFile: String?

    var isEmpty: Bool { param.isEmpty && paramsFile == nil }

    func validate() throws {
        for item in param where !item.contains("=") || item.hasPrefix("=") {
            throw ValidationError("--param takes NAME=VALUE, not '\(item)'")
        }
    }

    /// The values: `--params-file`'s, then each `--param` over them.
    func values() throws -> [String: String] {
        var values = try fileValues()
        for item in param {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            values[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return values
    }

    /// The values of `--params-file`: a JSON object whose values are strings.
    private func fileValues() throws -> [String: String] {
        guard let paramsFile else { return [:] }
        guard let data = FileManager.default.contents(atPath: paramsFile) else {
            complain("cannot read \(paramsFile)")
            throw ExitCode(CtlExit.failure)
        }
        guard let values = try? JSONDecoder().decode([String: String].self, from: data) else {
            complain("\(paramsFile) is not a JSON object of strings: {\"name\": \"value\", ...}")
            throw ExitCode(CtlExit.failure)
        }
        return values
    }
}
