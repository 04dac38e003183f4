/// `executors.NAME.sandbox`: the systemd execution properties a sandboxed executor's units get
/// (`SandboxCatalog`; the names are systemd's, see systemd.exec(5)).
extension ConfigSchema {
    public enum SandboxKeys {
        /// One key per catalog property, of the type its kind is written in.
        public static let keys: [ConfigKey] = SandboxCatalog.kinds.map { name, kind in
            switch kind {
            case .boolean: ConfigKey(name, .boolean, default: .none, "systemd's \(name)=")
            case .word(let words):
                ConfigKey(name, .string, default: .none, "systemd's \(name)=: " + words.joined(separator: ", "))
            case .mode: ConfigKey(name, .octalMode, default: .none, "systemd's \(name)=, octal")
            case .paths, .capabilities, .syscallFilter, .addressFamilies, .architectures:
                ConfigKey(name, .strings, default: .none, "systemd's \(name)=, as a list")
            }
        }

        public static func key(_ name: String) -> ConfigKey {
            guard let key = keys.first(where: { $0.name == name }) else { preconditionFailure("no key \(name)") }
            return key
        }

        public static let section = ConfigSection(
            path: "executors.NAME.sandbox", doc: "systemd execution properties of each execution's unit",
            docsHeading: "### `executors`", docsPrefix: "sandbox.", keys: keys)
    }
}
