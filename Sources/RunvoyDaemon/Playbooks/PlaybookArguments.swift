import RunvoyConfig
import RunvoyKit

/// The validated values of a run's parameters, and the argv of each step.
///
/// A value only ever fills the one argument its placeholder stands in (or the documented part of it): it is never
/// split, globbed or given to a shell, so no value changes how many arguments a step has or what the others are.
struct PlaybookArguments: Sendable, Equatable {
    /// Every parameter's value (given, or its default); parameters without a value are absent.
    let values: [String: String]

    /// Validates `given` against `playbook`'s parameters: every problem, not just the first, is listed. A `path`
    /// value must also be under one of its `under` the way a command rule's `path_under` decides, with `writer`
    /// (the caller, nil for root) as who must not be able to redirect it.
    static func bind(
        _ given: [String: String], to playbook: PlaybookConfig, writer: PathResolver.Writer?
    ) -> Result<PlaybookArguments, PlaybookArgumentError> {
        let (values, problems) = playbook.bind(given) { parameter, value in
            pathProblem(value, for: parameter, writer: writer)
        }
        guard problems.isEmpty else { return .failure(PlaybookArgumentError(problems: problems)) }
        return .success(PlaybookArguments(values: values))
    }

    /// The argv of `step` for these values: each template is one argument; an argument whose parameter has no
    /// value is left out.
    func argv(of step: PlaybookStep) -> [String] {
        step.argv.compactMap { $0.render(values) }
    }

    /// For a path, the filesystem's say, as `path_under` decides it (see
    /// ``CommandMatcher/isPath(_:under:workingDirectory:writer:liberal:)``): links followed, and no directory on
    /// the way the caller could change.
    private static func pathProblem(
        _ value: String, for parameter: PlaybookParameter, writer: PathResolver.Writer?
    ) -> String? {
        guard case .path(let under) = parameter.type else { return nil }
        let inside = under.contains {
            CommandMatcher.isPath(value, under: $0, workingDirectory: "/", writer: writer)
        }
        return inside
            ? nil
            : "is not under \(JSONText.array(under)) once links are followed, or passes through a directory "
                + "the caller can change"
    }
}
