import CRunvoyPosix
import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The secrets one execution gets: environment variables, files in a private folder on the runtime
/// directory, and the redaction set that takes them out of its output again.
struct SecretInjection: Sendable {
    /// Variables to add to the command's environment (secret values, and the paths of secret files).
    var environment: [String: String] = [:]
    /// The execution's folder of secret files, removed when it ends.
    var directory: String?
    var redaction: RedactionSet?
    /// Names of the injected secrets (for the audit trail; never values).
    var names: [String] = []

    static let none = SecretInjection()

    /// Reads the executor's secrets and writes its secret files. Throws `secret_missing` when one is not set, or
    /// when whoever wrote its value last may not write injected secrets (`trustedWriter` says no): a value a
    /// non-administrator set before an executor referenced it is not injected until an administrator sets it.
    static func prepare(
        executor: ExecutorConfig, store: SecretStore, executionID: String, runtimeDirectory: String,
        owner: (uid: uid_t, gid: gid_t)?, adminContact: String?, trustedWriter: (UInt32) -> Bool
    ) throws(RunvoyError) -> SecretInjection {
        let names = executor.secretNames.sorted()
        guard !names.isEmpty else { return .none }
        var values: [String: [UInt8]] = [:]
        for name in names {
            let value: [UInt8]?
            let info: SecretStore.Info?
            do {
                info = try store.info(name)
                value = try store.value(name)
            } catch {
                throw RunvoyError(.internalError, "the secrets store cannot be read")
            }
            guard let value, let info, trustedWriter(info.ownerUid) else {
                var message = "executor '\(executor.name)' needs secret '\(name)', which is not set by an admin"
                if let adminContact { message += "; ask \(adminContact)" }
                throw RunvoyError(.secretMissing, message)
            }
            values[name] = value
        }
        var injection = SecretInjection(names: names)
        for (variable, name) in executor.secretEnvironment {
            let value = values[name]!
            guard !value.contains(0), let text = String(validating: value, as: UTF8.self) else {
                throw RunvoyError(
                    .invalidState,
                    "secret '\(name)' is not text without NUL bytes, so it cannot go into \(variable); use secret_files"
                )
            }
            injection.environment[variable] = text
        }
        if !executor.secretFiles.isEmpty {
            let directory = runtimeDirectory + "/" + executionID
            injection.directory = directory
            do throws(SystemError) {
                try write(files: executor.secretFiles, values: values, in: directory, owner: owner)
            } catch {
                remove(directory)
                throw RunvoyError(.internalError, "cannot write secret files for the command: \(error)")
            }
            for (variable, name) in executor.secretFiles { injection.environment[variable] = directory + "/" + name }
        }
        injection.redaction = RedactionSet(secrets: names.map { (name: $0, value: values[$0]!) })
        return injection
    }

    /// Removes the execution's secret files.
    func cleanUp() {
        if let directory { Self.remove(directory) }
    }

    /// Creates the runtime directory (mode 0711) and removes what a previous daemon left in it. Returns a warning
    /// when it is not on a tmpfs.
    static func prepareRuntimeDirectory(_ path: String) throws(SystemError) -> String? {
        try FileSystem.makeDirectories(path, mode: 0o711)
        chmod(path, 0o711)
        for name in FileSystem.entries(path) { remove(path + "/" + name) }
        if runvoy_is_tmpfs(path) == 0 {
            return "secret files go to \(path), which is not a tmpfs: they reach the disk while commands run"
        }
        return nil
    }

    private static func write(
        files: [String: String], values: [String: [UInt8]], in directory: String, owner: (uid: uid_t, gid: gid_t)?
    ) throws(SystemError) {
        guard mkdir(directory, 0o700) == 0 else { throw SystemError("mkdir \(directory)") }
        for name in Set(files.values) {
            let path = directory + "/" + name
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o400)
            guard fd >= 0 else { throw SystemError("open \(path)") }
            let value = values[name]!
            let written = value.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            let failed = written != value.count
            if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
                close(fd)
                throw SystemError("fchown \(path)")
            }
            close(fd)
            if failed { throw SystemError("write \(path)", errno: EIO) }
        }
        if let owner, chown(directory, owner.uid, owner.gid) != 0 { throw SystemError("chown \(directory)") }
        chmod(directory, 0o500)
    }

    static func remove(_ directory: String) {
        // The folder is 0500 for the command; make it writable again to empty it.
        chmod(directory, 0o700)
        FileSystem.removeTree(directory)
    }
}
