import RunvoyKit
import Yams

/// Walks the YAML node tree, so every diagnostic can name its line and key path, and collects all of them.
///
/// One file per section (`ConfigParser+Limits.swift`, `ConfigParser+Executors.swift`, …); each takes its keys,
/// their types and their ranges from `ConfigSchema`. The sections are read in the order of the file's
/// description, so that diagnostics come out in a stable order.
final class ConfigParser {
    let file: String
    let text: String
    private(set) var diagnostics: [ConfigDiagnostic] = []

    init(file: String, text: String) {
        self.file = file
        self.text = text
    }

    // MARK: - Diagnostics

    /// Records a problem at `node` (the top of the file when nil), or at `line` when given.
    func report(
        _ severity: ConfigDiagnostic.Severity, _ node: Node?, _ path: String, _ message: String, line: Int? = nil
    ) {
        diagnostics.append(
            ConfigDiagnostic(
                file: file, line: line ?? node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, keyPath: path,
                message: message, severity: severity))
    }

    func error(_ node: Node?, _ path: String, _ message: String) { report(.error, node, path, message) }
    func warning(_ node: Node?, _ path: String, _ message: String) { report(.warning, node, path, message) }

    // MARK: - Document

    func parse() -> DaemonConfig? {
        guard let root = composeDocument(),
            let top = fields(root, "", ConfigSchema.TopKeys.section)
        else { return nil }
        typealias Keys = ConfigSchema.TopKeys
        let socket = parseSocket(top)
        let stateDirectory = absolutePath(Keys.stateDirectory, in: top) ?? defaultValue(Keys.stateDirectory)
        let adminContact = string(Keys.adminContact, in: top)
        let limits = parseLimits(top)
        let shutdownGrace = duration(Keys.shutdownGrace, in: top) ?? defaultDuration(Keys.shutdownGrace)
        let killGrace = duration(Keys.killGrace, in: top) ?? defaultDuration(Keys.killGrace)
        let audit = parseAudit(top)
        let history = parseHistory(top)
        let secrets = parseSecrets(top)
        let metrics = parseMetrics(top)
        let roles = parseRoles(top)
        let expectations = parseExpectations(top)
        let executors = parseExecutors(top, root: root)
        let defaultName = defaultExecutorName(executors, top)
        let approvals = parseApprovalSettings(top)
        checkApprovals(executors, approvals)
        let hooks = parseHooks(top[Keys.hooks], "hooks", ConfigSchema.HookKeys.section)
        checkHookEdits(executors, hooks)

        var config = DaemonConfig(
            socket: socket, stateDirectory: stateDirectory, limits: limits, shutdownGrace: shutdownGrace,
            killGrace: killGrace, audit: audit, adminContact: adminContact, executors: executors,
            defaultExecutorName: defaultName, sourcePath: nil, digest: Self.digest(text),
            warnings: diagnostics.filter { $0.severity == .warning })
        config.history = history
        config.roles = roles
        config.secrets = secrets
        config.metrics = metrics
        config.expectations = expectations
        config.containment = parseContainmentSetting(top)
        config.approvals = approvals
        config.grantSettings = parseGrantSettings(top, executors: executors)
        config.hooks = hooks
        checkExpectedExecutors(expectations, executors)
        return config
    }

    /// The document's root node, or nil (reported, `empty` when the file is empty) when it is empty or not YAML.
    func composeDocument(empty: String = "the file is empty; at least one executor is required") -> Node? {
        do {
            guard let node = try Yams.compose(yaml: text) else {
                error(nil, "", empty)
                return nil
            }
            return node
        } catch let yamlError as YamlError {
            reportSyntax(yamlError)
            return nil
        } catch {
            self.error(nil, "", "cannot parse YAML: \(error)")
            return nil
        }
    }

    private func reportSyntax(_ yamlError: YamlError) {
        switch yamlError {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            diagnostics.append(
                ConfigDiagnostic(
                    file: file, line: mark.line, column: mark.column, keyPath: "", message: "YAML syntax: \(problem)",
                    severity: .error))
        case .duplicatedKeysInMapping(let duplicates, let context):
            diagnostics.append(
                ConfigDiagnostic(
                    file: file, line: context.mark.line, column: context.mark.column, keyPath: "",
                    message:
                        "duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.map { "'\($0)'" }.joined(separator: ", "))",
                    severity: .error))
        default:
            error(nil, "", "cannot parse YAML: \(yamlError)")
        }
    }
}
