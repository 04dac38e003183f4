import ArgumentParser
import Crypto
import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// `runvoyd --restore FILE --state-directory DIR`: restores a backup archive offline (see `BackupRestore`).
enum Restore {
    static func run(archive: String, stateDirectory: String, keyFile: String?, configPath: String?) throws {
        let configured = configuredKey(configPath)
        let chooseKey: BackupRestore.KeyChoice = { archiveKey throws(BackupError) in
            if let archiveKey { return (SymmetricKey(data: archiveKey), "the archive") }
            if let keyFile { return (try readKey(keyFile), keyFile) }
            if let configured, access(configured, F_OK) == 0 { return (try readKey(configured), configured) }
            return nil
        }
        let report: BackupRestore.Report
        do throws(BackupError) {
            report = try BackupRestore.restore(archive: archive, into: stateDirectory, chooseKey: chooseKey)
        } catch {
            Daemon.shout("runvoyd: restore refused: \(error.message)")
            throw ExitCode(1)
        }
        print(
            "runvoyd: restored the backup of \(BackupRestore.utc(report.createdAtMs)) (runvoyd "
                + "\(report.softwareVersion), schema \(report.schema.joined(separator: ", "))) into \(stateDirectory)")
        print(
            "  \(report.files) files checked; \(report.executions) executions"
                + (report.markedLost > 0 ? " (\(report.markedLost) that were running are now lost)" : "")
                + ", \(report.secrets) secrets")
        if report.secretsVerified {
            print("  secrets: every one opens with the master key from \(report.keySource ?? "?")")
        } else {
            print("  secrets: not checked, no master key at hand (give --key-file to check them)")
        }
        if report.keyInstalled {
            print(
                "  master key: from the archive, installed as \(stateDirectory)/secrets.key (the default "
                    + "secrets.key_file); move it where the configuration expects it if that is elsewhere")
        } else {
            print(
                "  master key: not in the archive; the daemon needs the key the secrets were sealed with "
                    + "(secrets.key_file, by default \(stateDirectory)/secrets.key, or the runvoy.key credential)")
        }
    }

    /// Where the configuration (`--config`, or the default file when it exists) takes the master key from.
    static func configuredKey(_ configPath: String?) -> String? {
        let path = configPath ?? RunvoydCommand.defaultConfigPath
        guard configPath != nil || access(path, F_OK) == 0 else { return nil }
        guard let config = try? ConfigLoader.load(path: path) else {
            Daemon.shout("runvoyd: warning: cannot load \(path); its master key is not used to check the secrets")
            return nil
        }
        return MasterKey.source(config)
    }

    static func readKey(_ path: String) throws(BackupError) -> SymmetricKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BackupError("cannot read the master key \(path): \(SystemError.text())")
        }
        guard let key = MasterKey.parse(Array(data)) else {
            throw BackupError(
                "\(path) is not a 256-bit key (32 bytes, or 64 hex digits, or base64 of 32 bytes)")
        }
        return key
    }
}
