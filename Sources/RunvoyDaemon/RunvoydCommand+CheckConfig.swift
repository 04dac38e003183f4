import ArgumentParser
import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// `runvoyd --check-config`: everything wrong or risky in a configuration, without serving it.
extension RunvoydCommand {
    /// Prints the configuration's warnings, failed expectations and directory problems, then "OK" with its digests;
    /// throws exit status 1 when an expectation fails or a directory is unsafe.
    static func check(_ loaded: DaemonConfig, source: String) throws {
        for warning in loaded.warnings { print(warning.description) }
        if loaded.roles.isEmpty {
            print(
                "\(source): warning: roles: no roles are bound, so only root can use runvoyd; bind users or groups, e.g. roles: {developer: {groups: [runvoy]}}"
            )
        }
        for warning in missingSecrets(loaded) + sharedRunAs(loaded) + changeableWorkingDirectories(loaded) {
            print("\(source): warning: \(warning)")
        }
        let failures = PolicyReport.failedExpectations(loaded)
        for failure in failures { print(failure.description) }
        let directories = PrivateDirectories.report(
            stateDirectory: loaded.stateDirectory, runtimeDirectory: loaded.secrets.runtimeDirectory)
        for warning in directories.warnings { print("\(source): warning: \(warning)") }
        for error in directories.errors { print("\(source): error: \(error)") }
        if !failures.isEmpty {
            print("\(source): \(failures.count) policy expectation(s) failed")
            throw ExitCode(1)
        }
        if !directories.errors.isEmpty { throw ExitCode(1) }
        print(
            "\(source): OK (\(loaded.executors.count) executors, \(loaded.playbooks.count) playbooks, default '\(loaded.defaultExecutorName)', \(loaded.expectations.count) expectations hold, digest \(loaded.digest), policy \(PolicyReport.digest(loaded)))"
        )
    }

    /// Executors that inject secrets and share their run-as user with executors that do not inject the same
    /// ones: commands on those can read the secrets (the process environment and files of the same uid), and
    /// their output is not redacted.
    /// What a daemon running as root without CAP_SETUID or CAP_SETGID (a unit whose `CapabilityBoundingSet=`
    /// leaves them out) cannot do: take a run-as user's identity.
    static func missingCapabilities() -> [String] {
        guard geteuid() == 0 else { return [] }
        let missing = [(6, "CAP_SETGID"), (7, "CAP_SETUID")].filter { !SubreaperContainment.hasCapability($0.0) }
        guard !missing.isEmpty else { return [] }
        return [
            "runvoyd runs as root without \(missing.map(\.1).joined(separator: " and ")): it cannot take a run_as user's identity, so commands of executors that run as another user are refused; keep them in the unit's CapabilityBoundingSet="
        ]
    }

    /// Executors whose working directory, or a folder above it, an account other than root and the run-as user
    /// could change: programs read files from their working directory (`python3 -c` and `-m` put it first on
    /// `sys.path`), so that account could run code as the run-as user. The real path is walked from `/`, and a
    /// folder everyone may write counts even when sticky (`/tmp`): anyone may make a missing folder there first.
    static func changeableWorkingDirectories(_ config: DaemonConfig) -> [String] {
        config.executors.compactMap { executor in
            let user = executor.runAs.user
            let owner = UserDatabase.user(named: user)?.uid ?? geteuid()
            guard let folder = changeableFolder(on: PathResolver.resolve(executor.workingDirectory).path, owner: owner)
            else { return nil }
            return
                "executors.\(executor.name).working_directory: \(folder) may be changed by an account other than root or '\(user)'; programs read files from their working directory (python3 -c and -m put it first on sys.path), so that account could run code as '\(user)'. Use a folder only root or '\(user)' can write"
        }
    }

    /// The first folder from `/` to `path` (the path itself included) that is not a directory of root's or
    /// `owner`'s writable by no one else; nil when there is none. A missing folder ends the walk.
    static func changeableFolder(on path: String, owner: uid_t) -> String? {
        var prefix = ""
        for component in [Substring("")] + path.split(separator: "/") {
            prefix += component.isEmpty ? "/" : (prefix == "/" ? "" : "/") + component
            var info = stat()
            guard stat(prefix, &info) == 0 else { return nil }
            let owned = info.st_uid == 0 || info.st_uid == owner
            guard info.st_mode & S_IFMT == S_IFDIR, owned, info.st_mode & 0o022 == 0 else { return prefix }
        }
        return nil
    }

    static func sharedRunAs(_ config: DaemonConfig) -> [String] {
        var warnings: [String] = []
        for executor in config.executors where !executor.secretNames.isEmpty {
            let others = config.executors.filter {
                $0.name != executor.name && $0.runAs.user == executor.runAs.user
                    && !executor.secretNames.isSubset(of: $0.secretNames)
            }
            if !others.isEmpty {
                warnings.append(
                    "executors.\(executor.name): injects secrets and runs as '\(executor.runAs.user)', as "
                        + others.map { "'\($0.name)'" }.joined(separator: ", ")
                        + " does: commands there can read these secrets from /proc or the secret files, unredacted; give it a user of its own"
                )
            }
        }
        return warnings
    }

    /// Secrets executors reference that the store does not hold, or whose value a user who is not an admin wrote
    /// (read by name and owner, without the master key): either way the executor's commands are refused.
    static func missingSecrets(_ config: DaemonConfig) -> [String] {
        let referenced = config.executors.flatMap { executor in executor.secretNames.map { (executor.name, $0) } }
        guard !referenced.isEmpty else { return [] }
        let owners = SecretStore.owners(databasePath: config.stateDirectory + "/history.sqlite") ?? [:]
        return referenced.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.compactMap { executor, name in
            guard let owner = owners[name] else {
                return "executors.\(executor): secret '\(name)' is not set; commands on this executor are refused"
                    + " (secret_missing) until `runvoyctl secrets set \(name)`"
            }
            guard Authorizer.mayWriteInjectedSecrets(uid: owner, config) else {
                let writer = UserDatabase.user(uid: owner)?.name ?? "#\(owner)"
                return "executors.\(executor): secret '\(name)' was set by \(writer), who is not an admin; it is not"
                    + " injected (secret_missing) until an admin sets it again with `runvoyctl secrets set \(name)`"
            }
            return nil
        }
    }

}
