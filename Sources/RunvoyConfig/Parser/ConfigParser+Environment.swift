import RunvoyKit
import Yams

/// An executor's environment: `environment` (strings, or secrets by reference), `secret_files` and `allow_env`.
extension ConfigParser {
    /// `environment`: `NAME: value` (a string, quoted if it looks like a number) or `NAME: {secret: SECRET}`.
    func parseEnvironment(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        let key = ConfigSchema.ExecutorKeys.environment
        guard let node = entries[key] else { return }
        let path = entries.path(key)
        guard let mapping = node.mapping else {
            error(node, path, "expected a mapping of NAME: value")
            return
        }
        for (nameNode, value) in mapping {
            guard let name = environmentName(nameNode, path) else { continue }
            if value.mapping != nil {
                if let secret = secretReference(value, "\(path).\(name)") { executor.secretEnvironment[name] = secret }
            } else if let text = strictString(value, "\(path).\(name)") {
                executor.environment[name] = text
            }
        }
    }

    /// `secret_files`: `NAME: {secret: SECRET}`, for names the environment does not already set.
    func parseSecretFiles(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        let key = ConfigSchema.ExecutorKeys.secretFiles
        guard let node = entries[key] else { return }
        let path = entries.path(key)
        guard let mapping = node.mapping else {
            error(node, path, "expected a mapping of NAME: {secret: SECRET}")
            return
        }
        for (nameNode, value) in mapping {
            guard let name = environmentName(nameNode, path) else { continue }
            if executor.environment[name] != nil || executor.secretEnvironment[name] != nil {
                error(nameNode, "\(path).\(name)", "\(name) is already set in environment")
                continue
            }
            if let secret = secretReference(value, "\(path).\(name)") { executor.secretFiles[name] = secret }
        }
    }

    /// `allow_env`: names, or prefixes ending in `*`, a caller may add.
    func parseAllowEnv(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        let key = ConfigSchema.ExecutorKeys.allowEnv
        guard let names = strings(key, in: entries) else { return }
        for (index, entry) in names.enumerated() {
            let base = entry.hasSuffix("*") ? String(entry.dropLast()) : entry
            if (!base.isEmpty || !entry.hasSuffix("*")) && !Self.isValidEnvName(base)
                && !(entry.hasSuffix("*") && base.isEmpty)
            {
                error(
                    entries[key]?.sequence?[index], "\(entries.path(key))[\(index)]",
                    "'\(entry)' is not an environment name or prefix*")
            }
        }
        executor.allowEnv = names
    }

    /// A variable's name, or nil (reported at `path`) when it is not one.
    private func environmentName(_ node: Node, _ path: String) -> String? {
        guard let name = node.scalar?.string, Self.isValidEnvName(name) else {
            error(node, path, "environment names are letters, digits and '_', not starting with a digit")
            return nil
        }
        return name
    }

    /// `{secret: NAME}`: a reference to a secret in the store.
    func secretReference(_ node: Node, _ path: String) -> String? {
        typealias Keys = ConfigSchema.SecretReferenceKeys
        guard let entries = fields(node, path, Keys.section) else { return nil }
        guard let nameNode = entries[Keys.secret], let name = string(Keys.secret, in: entries) else {
            error(node, entries.path(Keys.secret), "required: the secret's name, as in {secret: aws-prod-key}")
            return nil
        }
        guard SecretName.isValid(name) else {
            error(
                nameNode, entries.path(Keys.secret),
                "secret names are 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
            return nil
        }
        return name
    }
}
