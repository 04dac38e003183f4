import RunvoyKit
import Yams

/// Reading values: a section's mapping checked against its declared keys, and each scalar by the type its key
/// declares (range, bound and the word that turns it off included). Every reader reports what is wrong with the
/// value where it stands and returns nil for it.
extension ConfigParser {
    // MARK: - Mappings

    /// A mapping's entries by key, reporting a wrong type, non-string keys and keys `section` does not declare.
    func fields(_ node: Node, _ path: String, _ section: ConfigSection) -> ConfigEntries? {
        guard let mapping = node.mapping else {
            error(node, path, "expected a mapping of keys to values")
            return nil
        }
        let allowed = section.names
        var result: [String: (key: Node, value: Node)] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                error(key, path, "keys must be plain strings")
                continue
            }
            let keyPath = path.isEmpty ? name : "\(path).\(name)"
            guard allowed.contains(name) else {
                var message = "unknown key '\(name)'"
                if let suggestion = Self.closest(name, in: allowed) { message += " (did you mean '\(suggestion)'?)" }
                error(key, keyPath, message)
                continue
            }
            result[name] = (key, value)
        }
        return ConfigEntries(path: path, entries: result)
    }

    /// The entries of the sub-section `key` holds, if it is written and is a mapping of declared keys.
    func fields(_ key: ConfigKey, in entries: ConfigEntries) -> ConfigEntries? {
        guard let path = key.type.sectionPath, let section = ConfigSchema.section(at: path) else {
            preconditionFailure("\(key.name) does not hold a section")
        }
        guard let node = entries[key] else { return nil }
        return fields(node, entries.path(key), section)
    }

    // MARK: - Scalars by their declared type

    func string(_ key: ConfigKey, in entries: ConfigEntries) -> String? {
        guard case .string = key.type else { preconditionFailure("\(key.name) is not a string") }
        return entries[key].flatMap { string($0, entries.path(key)) }
    }

    /// A string that must start with `/`.
    func absolutePath(_ key: ConfigKey, in entries: ConfigEntries) -> String? {
        guard case .absolutePath = key.type else { preconditionFailure("\(key.name) is not a path") }
        guard let node = entries[key], let value = string(node, entries.path(key)) else { return nil }
        guard value.hasPrefix("/") else {
            error(node, entries.path(key), "must be an absolute path")
            return nil
        }
        return value
    }

    /// Permission bits written in octal, `"0660"` or `"0o660"`.
    func octalMode(_ key: ConfigKey, in entries: ConfigEntries) -> UInt32? {
        guard case .octalMode = key.type else { preconditionFailure("\(key.name) is not a mode") }
        guard let node = entries[key], let text = string(node, entries.path(key)) else { return nil }
        let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
        guard let mode = UInt32(digits, radix: 8), mode <= 0o777 else {
            error(node, entries.path(key), "expected octal permission bits such as \"0660\"")
            return nil
        }
        return mode
    }

    /// The name of a user or a group that must exist; a name that does not is reported and still returned.
    func account(_ key: ConfigKey, in entries: ConfigEntries) -> String? {
        guard let node = entries[key], let name = string(node, entries.path(key)) else { return nil }
        switch key.type {
        case .user where !SystemAccounts.userExists(name):
            error(node, entries.path(key), "unknown user \"\(name)\"")
        case .group where !SystemAccounts.groupExists(name):
            error(node, entries.path(key), "unknown group \"\(name)\"")
        case .user, .group: break
        default: preconditionFailure("\(key.name) is not an account")
        }
        return name
    }

    func boolean(_ key: ConfigKey, in entries: ConfigEntries) -> Bool? {
        guard case .boolean = key.type else { preconditionFailure("\(key.name) is not a boolean") }
        return entries[key].flatMap { bool($0, entries.path(key)) }
    }

    func integer(_ key: ConfigKey, in entries: ConfigEntries) -> Int? {
        guard case .integer(let range) = key.type else { preconditionFailure("\(key.name) is not an integer") }
        return entries[key].flatMap { int($0, entries.path(key), in: range) }
    }

    func size(_ key: ConfigKey, in entries: ConfigEntries) -> Int64? {
        guard case .size(let range, _) = key.type else { preconditionFailure("\(key.name) is not a size") }
        return entries[key].flatMap { size($0, entries.path(key), in: range) }
    }

    /// A size, or nil inside when the key's word (`unlimited`) is written.
    func sizeOrWord(_ key: ConfigKey, in entries: ConfigEntries) -> Int64?? {
        guard case .size(_, let word?) = key.type else { preconditionFailure("\(key.name) takes no word") }
        guard let node = entries[key] else { return nil }
        if node.scalar?.string == word { return .some(nil) }
        return size(key, in: entries).map { Optional($0) }
    }

    /// A duration within the key's bound.
    func duration(_ key: ConfigKey, in entries: ConfigEntries) -> Duration? {
        guard case .duration(let bound, let word) = key.type else {
            preconditionFailure("\(key.name) is not a duration")
        }
        guard let node = entries[key], let value = duration(node, entries.path(key)) else { return nil }
        guard bound.admits(value) else {
            error(node, entries.path(key), bound.requirement + (word.map { ", or \($0)" } ?? ""))
            return nil
        }
        return value
    }

    /// A duration, or nil inside when the key's word (`never`) is written.
    func durationOrWord(_ key: ConfigKey, in entries: ConfigEntries) -> Duration?? {
        guard case .duration(_, let word?) = key.type else { preconditionFailure("\(key.name) takes no word") }
        guard let node = entries[key] else { return nil }
        if node.scalar?.string == word { return .some(nil) }
        return duration(key, in: entries).map { Optional($0) }
    }

    /// A list of strings.
    func strings(_ key: ConfigKey, in entries: ConfigEntries) -> [String]? {
        guard case .strings = key.type else { preconditionFailure("\(key.name) is not a list of strings") }
        return entries[key].flatMap { strings($0, entries.path(key)) }
    }

    // MARK: - Defaults the parser supplies

    /// The declared default of a key that no settings type holds a default for.
    func defaultValue(_ key: ConfigKey) -> String {
        guard case .value(let text) = key.defaultValue else { preconditionFailure("\(key.name) declares no value") }
        return text
    }

    func defaultDuration(_ key: ConfigKey) -> Duration {
        guard let value = DurationParser.parse(defaultValue(key)) else {
            preconditionFailure("\(key.name)'s default is not a duration")
        }
        return value
    }

    // MARK: - Nodes

    func string(_ node: Node, _ path: String) -> String? {
        guard let scalar = node.scalar else {
            error(node, path, "expected a string")
            return nil
        }
        return scalar.string
    }

    /// A value that must be written as a string: numbers and booleans are refused rather than converted.
    func strictString(_ node: Node, _ path: String) -> String? {
        guard let scalar = node.scalar else {
            error(node, path, "expected a string")
            return nil
        }
        if scalar.style == .plain {
            let kind: String? =
                node.bool != nil
                ? "boolean"
                : node.int != nil ? "number" : node.float != nil ? "number" : node.null != nil ? "null" : nil
            if let kind {
                error(node, path, "'\(scalar.string)' is read as a \(kind), not a string; quote it")
                return nil
            }
        }
        return scalar.string
    }

    func int(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard node.scalar != nil, let value = node.int else {
            error(node, path, "expected an integer")
            return nil
        }
        guard range.contains(value) else {
            error(node, path, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard node.scalar != nil, let value = node.bool else {
            error(node, path, "expected true or false")
            return nil
        }
        return value
    }

    func duration(_ node: Node, _ path: String) -> Duration? {
        guard let text = node.scalar?.string, let value = DurationParser.parse(text) else {
            error(node, path, "expected a duration such as 30s, 5m, 1h30m or 250ms")
            return nil
        }
        return value
    }

    /// A byte count: an integer, or a number with a unit (`512KiB`, `64MiB`, `10GiB`, `1TiB`; `K`/`M`/`G`/`T`
    /// and `KB`/`MB`/`GB`/`TB` are read as the same binary units).
    func size(_ node: Node, _ path: String, in range: ClosedRange<Int64>) -> Int64? {
        guard let text = node.scalar?.string, let value = Self.parseSize(text) else {
            error(node, path, "expected a size such as 64MiB, 10GiB or a number of bytes")
            return nil
        }
        guard range.contains(value) else {
            error(node, path, "\(value) bytes is outside \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    static func parseSize(_ text: String) -> Int64? {
        let units: [String: Int64] = [
            "": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
            "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
        ]
        let trimmed = text.filter { $0 != " " }
        let number = trimmed.prefix { $0.isNumber }
        guard !number.isEmpty, let value = Int64(number),
            let unit = units[trimmed.dropFirst(number.count).lowercased()]
        else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }

    func strings(_ node: Node, _ path: String) -> [String]? {
        guard let sequence = node.sequence else {
            error(node, path, "expected a list of strings")
            return nil
        }
        var out: [String] = []
        for (index, item) in sequence.enumerated() {
            guard let scalar = item.scalar else {
                error(item, "\(path)[\(index)]", "expected a string")
                continue
            }
            out.append(scalar.string)
        }
        return out
    }
}
