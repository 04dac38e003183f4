/// One problem found in a configuration, located by file, line, column and key path.
public struct ConfigDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable {
        case error
        case warning
    }

    public var file: String
    public var line: Int
    public var column: Int
    /// Dotted path of the key, e.g. `executors.deploy.run_as.user`; empty for the whole document.
    public var keyPath: String
    public var message: String
    public var severity: Severity

    public init(file: String, line: Int, column: Int, keyPath: String, message: String, severity: Severity) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
        self.severity = severity
    }

    /// `file:line:column: error: key.path: message`, as compilers and `visudo -c` print.
    public var description: String {
        let key = keyPath.isEmpty ? "" : "\(keyPath): "
        return "\(file):\(line):\(column): \(severity.rawValue): \(key)\(message)"
    }
}

/// A configuration that cannot be used, with every problem found.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]

    public init(diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
