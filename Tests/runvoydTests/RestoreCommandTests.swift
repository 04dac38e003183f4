import ArgumentParser
import Crypto
import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// `runvoyd --restore`: without --key-file the secrets are checked with the key the configuration names; a key
/// file that cannot be read or holds no key refuses the restore, which then writes nothing.
@Suite(.serialized)
struct RestoreCommandTests {
    /// A backup of a history with one secret, and a configuration whose state directory is `conf/state`.
    struct Setup {
        let directory: String
        let key = SymmetricKey(size: .bits256)
        let archive: String
        let config: String
        var configuredKey: String { directory + "/conf/state/secrets.key" }

        init() throws {
            var template = Array("/tmp/runvoy-restore-cmd-XXXXXX".utf8CString)
            directory = String(cString: try #require(mkdtemp(&template)))
            let store = try ExecutionStore(stateDirectory: directory + "/state")
            try SecretStore(store: store, key: key).set(
                "db-pass", value: Array("hunter2".utf8), description: nil, uid: 0, user: "root", atMs: 1)
            let writer = try BackupWriter(store: store, softwareVersion: "test", key: nil) { _ in nil }
            var bytes: [UInt8] = []
            while let piece = try writer.next() { bytes += piece }
            archive = directory + "/backup.tar"
            try Data(bytes).write(to: URL(fileURLWithPath: archive))
            config = directory + "/runvoyd.yaml"
            try ConfigLoader.embeddedDefaultYAML(
                stateRoot: directory + "/conf", runAsUser: "nobody", runAsGroup: "nogroup"
            ).write(toFile: config, atomically: true, encoding: .utf8)
            try FileSystem.makeDirectories(directory + "/conf/state", mode: 0o700)
        }

        func write(_ key: SymmetricKey, to path: String) throws {
            try key.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: path))
        }

        func run(into name: String, keyFile: String? = nil, config: String? = nil) throws {
            try Restore.run(
                archive: archive, stateDirectory: directory + "/" + name, keyFile: keyFile, configPath: config)
        }

        func remove() { _ = system("rm -rf '\(directory)'") }
    }

    @Test func withoutAKeyFileTheConfiguredKeyChecksTheSecrets() throws {
        let setup = try Setup()
        defer { setup.remove() }
        #expect(Restore.configuredKey(setup.config) == setup.configuredKey)

        try setup.write(setup.key, to: setup.configuredKey)
        try setup.run(into: "right", config: setup.config)
        let restored = try ExecutionStore(stateDirectory: setup.directory + "/right")
        #expect(try SecretStore(store: restored, key: setup.key).value("db-pass") == Array("hunter2".utf8))

        // Another key there: the secrets do not open with it, so the restore is refused.
        try setup.write(SymmetricKey(size: .bits256), to: setup.configuredKey)
        let exit = #expect(throws: ExitCode.self) { try setup.run(into: "wrong", config: setup.config) }
        #expect(exit?.rawValue == 1)
        #expect(access(setup.directory + "/wrong", F_OK) != 0)
    }

    @Test func aConfigurationThatDoesNotLoadLendsNoKey() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let broken = setup.directory + "/broken.yaml"
        try "state_directory: [unclosed\n".write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(Restore.configuredKey(broken) == nil)
        // The secrets are then restored unchecked.
        try setup.run(into: "unchecked", config: broken)
        #expect(FileSystem.entries(setup.directory + "/unchecked").contains("history.sqlite"))
    }

    @Test func aKeyFileThatIsMissingOrHoldsNoKeyRefusesTheRestore() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let missing = setup.directory + "/missing.key"
        let unread = #expect(throws: BackupError.self) { try Restore.readKey(missing) }
        #expect(unread?.message.hasPrefix("cannot read the master key \(missing): ") == true)
        let short = setup.directory + "/short.key"
        try "0123456789abcdef\n".write(toFile: short, atomically: true, encoding: .utf8)
        let notAKey = #expect(throws: BackupError.self) { try Restore.readKey(short) }
        #expect(
            notAKey?.message == "\(short) is not a 256-bit key (32 bytes, or 64 hex digits, or base64 of 32 bytes)")

        for keyFile in [missing, short] {
            let exit = #expect(throws: ExitCode.self) { try setup.run(into: "restored", keyFile: keyFile) }
            #expect(exit?.rawValue == 1)
            #expect(access(setup.directory + "/restored", F_OK) != 0)
        }
    }
}
