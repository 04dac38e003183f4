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

    /// `param 'NAME'`; a name a caller sent that is not spelt like a parameter's is shown escaped (as JSON text)
    /// and cut to 64 characters, so it cannot carry controls into an error message.
    static func label(_ name: String) -> String {
        let plain =
            !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy { $0.isASCII && !JSONText.isHidden($0) && $0 != "'" && $0 != "\\" }
        return plain ? "param '\(name)'" : "param \(JSONText.quoted(String(name.prefix(64))))"
    }
}
