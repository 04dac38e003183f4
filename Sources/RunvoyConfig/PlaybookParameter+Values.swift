import RunvoyKit

/// The rules a value of a playbook parameter must meet, shared by the configuration (defaults, schedule
/// parameters) and the daemon (a run's parameters). A path's `under` is judged here on the text only; the daemon
/// also decides it as a command rule's `path_under` does, on the filesystem.
extension PlaybookParameter {
    /// The longest value, in UTF-8 bytes.
    public static let maxValueBytes = 4096

    /// What is wrong with `value` for this parameter, nil when nothing is. Messages never repeat the value (it may
    /// hold anything a caller typed); they name the rule it breaks.
    public func problem(with value: String) -> String? {
        Self.textProblem(value) ?? type.problem(with: value)
    }

    /// Length and characters, for every type: at most ``maxValueBytes`` bytes and no control character (C0, DEL or
    /// C1: a newline or an escape sequence must not reach an argv, a log line or a terminal).
    static func textProblem(_ value: String) -> String? {
        if value.utf8.count > maxValueBytes { return "is longer than \(maxValueBytes) bytes" }
        for (offset, scalar) in value.unicodeScalars.enumerated() where scalar.properties.generalCategory == .control {
            let hex = String(scalar.value, radix: 16, uppercase: true)
            let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            return "contains the control character \(code) at character \(offset + 1)"
        }
        return nil
    }
}

extension PlaybookParameterType {
    /// What is wrong with `value` for this type (its characters aside, see ``PlaybookParameter/problem(with:)``).
    public func problem(with value: String) -> String? {
        switch self {
        case .string(let pattern): Self.stringProblem(value, pattern)
        // Byte for byte: Swift's `==` takes canonically equivalent text as equal, and the step gets these bytes.
        case .enumeration(let members):
            members.contains { $0.utf8.elementsEqual(value.utf8) } ? nil : "must be one of \(JSONText.array(members))"
        case .integer(let min, let max): Self.integerProblem(value, min, max)
        case .boolean: value == "true" || value == "false" ? nil : "must be true or false"
        case .path(let under): Self.pathProblem(value, under)
        }
    }

    private static func stringProblem(_ value: String, _ pattern: String?) -> String? {
        guard let pattern else { return nil }
        guard let regex = try? Regex(pattern) else { return "the pattern \(JSONText.quoted(pattern)) does not compile" }
        let matched = (try? regex.wholeMatch(in: value)) ?? nil
        return matched == nil ? "does not match the pattern \(JSONText.quoted(pattern))" : nil
    }

    /// An integer is written in its one decimal form: an optional `-`, then `0` or digits not starting with `0`
    /// (`+1`, `01` and `-0` are refused, so the value the audit trail shows is the number the step gets).
    private static func integerProblem(_ value: String, _ min: Int64?, _ max: Int64?) -> String? {
        let digits = value.utf8.starts(with: "-".utf8) ? value.utf8.dropFirst() : value.utf8[...]
        let zero = UInt8(ascii: "0")
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= zero && $0 <= UInt8(ascii: "9") }),
            digits.count == 1 || digits.first != zero, value != "-0"
        else { return "must be a decimal integer: an optional '-', then digits without leading zeros" }
        guard let number = Int64(value) else { return "is outside the 64-bit integer range" }
        if let min, number < min { return "must be at least \(min)" }
        if let max, number > max { return "must be at most \(max)" }
        return nil
    }

    /// A path is absolute and written in its plain form (no `.` or `..` component, no `//`, no trailing `/`),
    /// so what the audit trail shows is what the step opens, and within one of `under` as text.
    private static func pathProblem(_ value: String, _ under: [String]) -> String? {
        guard value.hasPrefix("/") else { return "must be an absolute path" }
        let components = PlaybookPath.components(value)
        if value != "/", components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            return "must be written without '.' or '..' components, '//' or a trailing '/'"
        }
        guard under.contains(where: { PlaybookPath.isWithin(components, PlaybookPath.normalized(components: $0)) })
        else {
            return "must be under \(under.count == 1 ? JSONText.quoted(under[0]) : "one of \(JSONText.array(under))")"
        }
        return nil
    }
}
