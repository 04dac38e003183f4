import RunvoyKit
import Yams

/// An executor's `sandbox:`: each property read by its kind (`SandboxCatalog`) and checked here, so
/// `--check-config` refuses what systemd would refuse at the first execution, with the file and line.
extension ConfigParser {
    func parseSandbox(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        guard let sandbox = fields(ConfigSchema.ExecutorKeys.sandbox, in: entries) else { return }
        var config = SandboxConfig()
        for (name, kind) in SandboxCatalog.kinds {
            let key = ConfigSchema.SandboxKeys.key(name)
            guard sandbox.contains(key), let value = sandboxValue(key, kind, in: sandbox) else { continue }
            config.properties.append(SandboxProperty(name: name, value: value))
        }
        executor.sandbox = config
        if !executor.editable.isEmpty {
            error(
                entries[ConfigSchema.ExecutorKeys.editable], entries.path(ConfigSchema.ExecutorKeys.editable),
                "runvoyctl edit reads and writes files in the daemon's own view of the file system, not in the "
                    + "sandbox: a sandboxed executor cannot have editable paths")
        }
        if executor.tty == .require {
            error(
                entries[ConfigSchema.ExecutorKeys.tty], entries.path(ConfigSchema.ExecutorKeys.tty),
                "a sandboxed executor runs commands without a terminal: tty: require cannot be honoured")
        }
    }

    private func sandboxValue(
        _ key: ConfigKey, _ kind: SandboxCatalog.Kind, in entries: ConfigEntries
    ) -> SandboxProperty.Value? {
        let node = entries[key]
        let path = entries.path(key)
        switch kind {
        case .boolean:
            return boolean(key, in: entries).map { .boolean($0) }
        case .word(let words):
            guard let text = string(key, in: entries) else { return nil }
            guard words.contains(text) else {
                error(node, path, "must be one of: " + words.joined(separator: ", "))
                return nil
            }
            return .word(text == "true" ? "yes" : text == "false" ? "no" : text)
        case .mode:
            return octalMode(key, in: entries).map { .mode($0) }
        case .paths:
            guard let list = strings(key, in: entries) else { return nil }
            for (index, item) in list.enumerated() where !Self.isSandboxPath(item) {
                error(
                    node?.sequence?[index] ?? node, "\(path)[\(index)]",
                    "'\(item)' is not an absolute, normalized path (a leading '-' ignores a missing one)")
                return nil
            }
            return .strings(list)
        case .capabilities:
            return capabilityMask(key, in: entries)
        case .syscallFilter, .addressFamilies, .architectures:
            return filter(key, kind, in: entries)
        }
    }

    /// An absolute path without `.` or `..` components, empty components or control characters; `-` first
    /// makes a missing path no error (systemd's prefix).
    static func isSandboxPath(_ item: String) -> Bool {
        let path = item.hasPrefix("-") ? String(item.dropFirst()) : item
        guard path.hasPrefix("/"), !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
        else { return false }
        if path == "/" { return true }
        let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        return !parts.contains { $0.isEmpty || $0 == "." || $0 == ".." }
    }

    private func capabilityMask(_ key: ConfigKey, in entries: ConfigEntries) -> SandboxProperty.Value? {
        guard let names = strings(key, in: entries) else { return nil }
        var mask: UInt64 = 0
        for (index, name) in names.enumerated() {
            guard let bit = SandboxCatalog.capabilities[name.uppercased()] else {
                error(
                    entries[key]?.sequence?[index] ?? entries[key], "\(entries.path(key))[\(index)]",
                    "unknown capability '\(name)' (names such as CAP_NET_BIND_SERVICE; see capabilities(7))")
                return nil
            }
            mask |= 1 << UInt64(bit)
        }
        return .capabilities(mask)
    }

    /// A list that is an allow-list, or a deny-list when its first item starts with `~`.
    private func filter(
        _ key: ConfigKey, _ kind: SandboxCatalog.Kind, in entries: ConfigEntries
    ) -> SandboxProperty.Value? {
        guard var names = strings(key, in: entries) else { return nil }
        let path = entries.path(key)
        guard !names.isEmpty else {
            error(entries[key], path, "must name at least one entry")
            return nil
        }
        let allow = !names[0].hasPrefix("~")
        if !allow { names[0].removeFirst() }
        if kind == .architectures && !allow {
            error(entries[key], path, "takes no '~' (a list of the architectures allowed)")
            return nil
        }
        for (index, name) in names.enumerated() where !Self.isFilterName(name, kind) {
            let what =
                switch kind {
                case .addressFamilies: "an address family such as AF_UNIX"
                case .architectures: "an architecture such as native or x86-64"
                default: "a system call name or one of systemd's @groups"
                }
            error(entries[key]?.sequence?[index] ?? entries[key], "\(path)[\(index)]", "'\(name)' is not \(what)")
            return nil
        }
        if kind == .architectures { return .strings(names) }
        return .filter(allow: allow, names)
    }

    static func isFilterName(_ name: String, _ kind: SandboxCatalog.Kind) -> Bool {
        switch kind {
        case .addressFamilies:
            return SandboxCatalog.addressFamilies.contains(name)
        case .syscallFilter where name.hasPrefix("@"):
            return SandboxCatalog.syscallGroups.contains(name)
        default:
            let allowed =
                kind == .architectures
                ? "abcdefghijklmnopqrstuvwxyz0123456789_-" : "abcdefghijklmnopqrstuvwxyz0123456789_"
            return !name.isEmpty && name.count <= 64 && name.allSatisfy { allowed.contains($0) }
        }
    }
}
