import Yams

/// The entries of one mapping of the file whose keys are all declared in its section, by key name, with the key
/// path diagnostics give them.
struct ConfigEntries {
    /// The mapping's key path: `limits`, `executors.deploy`; empty for the top level.
    let path: String
    private let entries: [String: (key: Node, value: Node)]

    init(path: String, entries: [String: (key: Node, value: Node)]) {
        self.path = path
        self.entries = entries
    }

    /// The value written for `key`, if it is.
    subscript(_ key: ConfigKey) -> Node? { entries[key.name]?.value }

    func contains(_ key: ConfigKey) -> Bool { entries[key.name] != nil }

    /// The key path of `key` in this mapping: `limits.max_frame_bytes`, `executors.deploy.timeout`.
    func path(_ key: ConfigKey) -> String {
        path.isEmpty ? key.name : "\(path).\(key.name)"
    }
}
