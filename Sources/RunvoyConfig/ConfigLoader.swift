import Foundation
import RunvoyKit
import Yams

/// Loads and validates configuration files.
public enum ConfigLoader {
    /// Reads and validates the file at `path`, and the playbooks of the `playbooks` folder beside it.
    public static func load(path: String) throws(ConfigError) -> DaemonConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? "\(error.localizedDescription)"
            throw ConfigError(diagnostics: [
                ConfigDiagnostic(
                    file: path, line: 0, column: 0, keyPath: "", message: "cannot read the file: \(reason)",
                    severity: .error)
            ])
        }
        var config = try parse(yaml: text, file: path)
        config.sourcePath = path
        try loadPlaybooks(beside: path, into: &config)
        return config
    }

    /// Validates YAML text; `file` names it in diagnostics.
    public static func parse(yaml: String, file: String) throws(ConfigError) -> DaemonConfig {
        let parser = ConfigParser(file: file, text: yaml)
        guard let config = parser.parse(), !parser.diagnostics.contains(where: { $0.severity == .error }) else {
            throw ConfigError(diagnostics: parser.diagnostics)
        }
        return config
    }

    /// The embedded development configuration (`runvoyd --dev`), as YAML.
    public static func embeddedDefaultYAML(stateRoot: String, runAsUser: String, runAsGroup: String) -> String {
        """
        # Embedded development configuration (runvoyd --dev).
        socket:
          path: \(quoted(stateRoot + "/runvoyd.sock"))
          mode: "0666"
        state_directory: \(quoted(stateRoot + "/state"))
        audit:
          fail_closed: false
        secrets:
          runtime_directory: \(quoted(stateRoot + "/secrets-run"))
        roles:
          developer: {users: ["*"]}
        executors:
          default:
            default: true
            description: Development executor
            run_as: {user: \(quoted(runAsUser)), group: \(quoted(runAsGroup))}
            environment:
              PATH: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
              HOME: /
              LANG: C.UTF-8
            allow_env: [TERM]
            working_directory: /
            timeout: 1h
            max_timeout: 24h
            allow:
              users: ["*"]
            commands: any
        """
    }

    /// The embedded development configuration, parsed. It is valid by construction for existing accounts.
    public static func embeddedDefault(stateRoot: String, runAsUser: String, runAsGroup: String) -> DaemonConfig {
        let yaml = embeddedDefaultYAML(stateRoot: stateRoot, runAsUser: runAsUser, runAsGroup: runAsGroup)
        do {
            return try parse(yaml: yaml, file: "(embedded)")
        } catch {
            preconditionFailure("the embedded configuration does not validate: \(error)")
        }
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A stable 64-bit FNV-1a digest of `text` (16 hex digits), as configuration and policy digests are written.
    public static func digest(_ text: String) -> String {
        ConfigParser.digest(text)
    }
}
