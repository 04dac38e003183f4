import RunvoyKit

/// Binding a run's parameter values to a playbook's parameters, shared by the daemon (a person's run) and the
/// configuration (a schedule's `params`).
extension PlaybookConfig {
    /// Every parameter's value (given, or its default) that passes its type's rules and `check`, and every
    /// problem, each `param 'NAME': …`: unknown names (sorted; the first ``maxUnknownListed`` named, the others
    /// counted, so a request of many names cannot make a refusal larger than a frame), then the parameters in file
    /// order (a required one without a value, or a value the rules refuse). A parameter without a value is absent
    /// from `values`.
    public func bind(
        _ given: [String: String], check: (PlaybookParameter, String) -> String? = { _, _ in nil }
    ) -> (values: [String: String], problems: [String]) {
        var problems: [String] = []
        let unknown = given.keys.filter { parameter(named: $0) == nil }.sorted()
        for name in unknown.prefix(Self.maxUnknownListed) {
            problems.append("\(Self.label(name)): not a parameter of playbook '\(self.name)'")
        }
        if unknown.count > Self.maxUnknownListed {
            problems.append(
                "and \(unknown.count - Self.maxUnknownListed) more names that are not parameters of playbook '\(self.name)'"
            )
        }
        var values: [String: String] = [:]
        for parameter in parameters {
            guard let value = given[parameter.name] ?? parameter.defaultValue else {
                if parameter.required { problems.append("\(Self.label(parameter.name)): required") }
                continue
            }
            if let problem = parameter.problem(with: value) ?? check(parameter, value) {
                let origin = given[parameter.name] == nil ? " (its default)" : ""
                problems.append("\(Self.label(parameter.name))\(origin): \(problem)")
                continue
            }
            values[parameter.name] = value
        }
        return (values, problems)
    }

    /// How many unknown names a refusal names.
    public static let maxUnknownListed = 8

    /// `param 'NAME'`; a name that is not spelt like a parameter's (a caller may send anything) is shown as JSON
    /// text, cut to 64 characters, so it cannot carry controls or quotes into an error message.
    public static func label(_ name: String) -> String {
        isValidParameterName(name) ? "param '\(name)'" : "param \(JSONText.quoted(String(name.prefix(64))))"
    }

    /// 1-64 characters of a-z, 0-9 and '_', starting with a letter.
    public static func isValidParameterName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), (0x61...0x7A).contains(bytes[0]) else { return false }
        return bytes.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }
}
