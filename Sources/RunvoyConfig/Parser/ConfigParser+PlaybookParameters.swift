import RunvoyKit
import Yams

/// A playbook's `parameters`: each a name and a type with the keys its type takes; a default must be valid for it.
extension ConfigParser {
    /// The parameters in file order; a parameter with an error is reported and left out.
    func parsePlaybookParameters(_ top: ConfigEntries) -> [PlaybookParameter] {
        let key = ConfigSchema.PlaybookKeys.parameters
        guard let node = top[key] else { return [] }
        guard let mapping = node.mapping else {
            error(node, top.path(key), "expected a mapping of parameter names to {type: …}")
            return []
        }
        var parameters: [PlaybookParameter] = []
        for (nameNode, value) in mapping {
            guard let name = nameNode.scalar?.string else {
                error(nameNode, top.path(key), "parameter names must be strings")
                continue
            }
            let path = "\(top.path(key)).\(name)"
            guard PlaybookConfig.isValidParameterName(name) else {
                error(nameNode, path, "parameter names are 1-64 characters of a-z, 0-9 and '_', starting with a letter")
                continue
            }
            if let parameter = parsePlaybookParameter(name, value, path) { parameters.append(parameter) }
        }
        return parameters
    }

    private func parsePlaybookParameter(_ name: String, _ node: Node, _ path: String) -> PlaybookParameter? {
        typealias Keys = ConfigSchema.PlaybookParameterKeys
        guard let entries = fields(node, path, Keys.section) else { return nil }
        guard let typeNode = entries[Keys.type] else {
            error(node, entries.path(Keys.type), "required: string, enum, integer, boolean or path")
            return nil
        }
        guard let type = parameterType(typeNode, entries) else { return nil }
        var parameter = PlaybookParameter(name: name, type: type, line: node.mark?.line ?? 1)
        parameter.description = string(Keys.description, in: entries)
        parameter.required = boolean(Keys.required, in: entries) ?? false
        if let defaultNode = entries[Keys.defaultValue] {
            guard let value = string(defaultNode, entries.path(Keys.defaultValue)) else { return nil }
            if let problem = parameter.problem(with: value) {
                error(defaultNode, entries.path(Keys.defaultValue), "the default \(problem)")
                return nil
            }
            if parameter.required {
                error(
                    entries[Keys.required], entries.path(Keys.required), "a parameter with a default is never required")
                return nil
            }
            parameter.defaultValue = value
        }
        return parameter
    }

    /// The type named by `type`, with the keys it takes; a key of another type is an error.
    private func parameterType(_ typeNode: Node, _ entries: ConfigEntries) -> PlaybookParameterType? {
        typealias Keys = ConfigSchema.PlaybookParameterKeys
        let own: [String: [ConfigKey]] = [
            "string": [Keys.pattern], "enum": [Keys.values], "integer": [Keys.min, Keys.max], "boolean": [],
            "path": [Keys.under],
        ]
        guard let name = string(typeNode, entries.path(Keys.type)) else { return nil }
        guard let allowed = own[name] else {
            error(typeNode, entries.path(Keys.type), "must be string, enum, integer, boolean or path")
            return nil
        }
        var ok = true
        for key in [Keys.pattern, Keys.values, Keys.min, Keys.max, Keys.under]
        where entries.contains(key) && !allowed.contains(key) {
            error(entries[key], entries.path(key), "`\(key.name)` is not a key of a \(name) parameter")
            ok = false
        }
        let type: PlaybookParameterType? =
            switch name {
            case "string": stringType(entries)
            case "enum": enumType(entries, typeNode)
            case "integer": integerType(entries)
            case "path": pathType(entries, typeNode)
            default: .boolean
            }
        return ok ? type : nil
    }

    private func stringType(_ entries: ConfigEntries) -> PlaybookParameterType? {
        let key = ConfigSchema.PlaybookParameterKeys.pattern
        guard let node = entries[key] else { return .string(pattern: nil) }
        guard let pattern = string(node, entries.path(key)) else { return nil }
        do {
            _ = try Regex(pattern)
        } catch {
            self.error(node, entries.path(key), "the pattern does not compile: \(error)")
            return nil
        }
        return .string(pattern: pattern)
    }

    private func enumType(_ entries: ConfigEntries, _ typeNode: Node) -> PlaybookParameterType? {
        let key = ConfigSchema.PlaybookParameterKeys.values
        guard let node = entries[key] else {
            error(typeNode, entries.path(key), "required for an enum parameter: the values it may take")
            return nil
        }
        guard let values = strings(key, in: entries) else { return nil }
        guard !values.isEmpty else {
            error(node, entries.path(key), "an enum parameter needs at least one value")
            return nil
        }
        for (index, value) in values.enumerated() {
            if let problem = PlaybookParameter.textProblem(value) {
                error(node.sequence?[index], "\(entries.path(key))[\(index)]", "the value \(problem)")
                return nil
            }
            if values[..<index].contains(value) {
                error(
                    node.sequence?[index], "\(entries.path(key))[\(index)]", "\(JSONText.quoted(value)) is listed twice"
                )
                return nil
            }
        }
        return .enumeration(values)
    }

    private func integerType(_ entries: ConfigEntries) -> PlaybookParameterType? {
        typealias Keys = ConfigSchema.PlaybookParameterKeys
        let min = entries.contains(Keys.min) ? integer(Keys.min, in: entries) : nil
        let max = entries.contains(Keys.max) ? integer(Keys.max, in: entries) : nil
        if (entries.contains(Keys.min) && min == nil) || (entries.contains(Keys.max) && max == nil) { return nil }
        if let min, let max, min > max {
            error(entries[Keys.max], entries.path(Keys.max), "\(max) is below min \(min)")
            return nil
        }
        return .integer(min: min.map(Int64.init), max: max.map(Int64.init))
    }

    private func pathType(_ entries: ConfigEntries, _ typeNode: Node) -> PlaybookParameterType? {
        let key = ConfigSchema.PlaybookParameterKeys.under
        guard let node = entries[key] else {
            error(typeNode, entries.path(key), "required for a path parameter: the directories values must be in")
            return nil
        }
        guard let under = strings(key, in: entries) else { return nil }
        guard !under.isEmpty else {
            error(node, entries.path(key), "a path parameter needs at least one directory")
            return nil
        }
        for (index, directory) in under.enumerated() where !directory.hasPrefix("/") {
            error(node.sequence?[index], "\(entries.path(key))[\(index)]", "'\(directory)' is not an absolute path")
            return nil
        }
        return .path(under: under)
    }
}
