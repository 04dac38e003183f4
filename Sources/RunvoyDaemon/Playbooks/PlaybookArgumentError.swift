import RunvoyConfig
import RunvoyKit

/// Why a run's parameters were refused: every problem, each `param 'NAME': …`, in a stable order (unknown names
/// sorted, then the playbook's parameters in file order).
struct PlaybookArgumentError: Error, Sendable, Equatable {
    let problems: [String]

    /// `invalid_argument`, listing every problem.
    var runvoyError: RunvoyError {
        RunvoyError(
            .invalidArgument,
            "invalid playbook parameter\(problems.count == 1 ? "" : "s"): " + problems.joined(separator: "; "))
    }

    /// `param 'NAME'`, a name a caller sent escaped (see ``PlaybookConfig/label(_:)``).
    static func label(_ name: String) -> String {
        PlaybookConfig.label(name)
    }
}
