import Foundation
import Glibc

/// The `playbooks` folder beside the configuration file: each `NAME.yaml` in it is the playbook NAME.
///
/// A playbook decides what runs as its executors' users (a `trusted` step even past their command rules), so its
/// files are trusted as the daemon's own: the folder and each file must belong to the daemon's user (root) and be
/// writable by no one else, and neither may be a symbolic link. Files are read in name order; names starting
/// with `.` (editors' swap files) are skipped, other files not ending in `.yaml` are skipped with a warning. An
/// error in any playbook is an error of the whole configuration, as one in the main file is.
extension ConfigLoader {
    /// The largest playbook file read.
    static let maxPlaybookBytes = 1 << 20

    /// Reads the playbooks beside `configPath` into `config` (sorted by name), their warnings into its warnings,
    /// and their texts into its digest; throws every diagnostic when one is an error.
    static func loadPlaybooks(beside configPath: String, into config: inout DaemonConfig) throws(ConfigError) {
        let directory = (URL(fileURLWithPath: configPath).deletingLastPathComponent().path) + "/playbooks"
        var diagnostics: [ConfigDiagnostic] = []
        func problem(_ file: String, _ message: String, _ severity: ConfigDiagnostic.Severity = .error) {
            diagnostics.append(
                ConfigDiagnostic(file: file, line: 1, column: 1, keyPath: "", message: message, severity: severity))
        }
        guard let folder = TrustedFolder.open(directory, report: { problem(directory, $0) }) else {
            if diagnostics.isEmpty { return }
            throw ConfigError(diagnostics: diagnostics)
        }
        defer { close(folder.fd) }
        var texts: [String] = []
        for name in folder.names where !name.hasPrefix(".") {
            let path = directory + "/" + name
            guard name.hasSuffix(".yaml") else {
                problem(path, "ignored: only NAME.yaml files are playbooks", .warning)
                continue
            }
            guard let text = folder.read(name, limit: maxPlaybookBytes, report: { problem(path, $0) }) else { continue }
            let (playbook, found) = parsePlaybook(
                yaml: text, file: path, name: String(name.dropLast(".yaml".count)), config: config)
            diagnostics += found
            if let playbook { config.playbooks.append(playbook) }
            texts.append(name + "\u{0}" + text)
        }
        if diagnostics.contains(where: { $0.severity == .error }) { throw ConfigError(diagnostics: diagnostics) }
        config.warnings += diagnostics
        config.playbooks.sort { $0.name < $1.name }
        if !texts.isEmpty {
            // The digest names what is served: a changed playbook is a changed configuration.
            config.digest = digest(config.digest + "\u{0}" + texts.joined(separator: "\u{0}"))
        }
    }

    /// One playbook file's text, checked against `config`: the playbook (nil when the file has an error) and every
    /// diagnostic.
    static func parsePlaybook(
        yaml: String, file: String, name: String, config: DaemonConfig
    ) -> (PlaybookConfig?, [ConfigDiagnostic]) {
        let parser = ConfigParser(file: file, text: yaml)
        let playbook = parser.parsePlaybook(name: name, in: config)
        return (playbook, parser.diagnostics)
    }
}
