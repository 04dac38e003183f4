import Crypto
import Foundation
import Glibc
import RunvoyConfig
import Testing

@testable import RunvoyDaemon

@Suite(.serialized)
struct MasterKeyTests {
    static func config(_ directory: String) throws -> DaemonConfig {
        var config = try ConfigLoader.parse(
            yaml: "state_directory: \(directory)\nexecutors:\n  x: {run_as: {user: nobody}, commands: any}\n",
            file: "k.yaml")
        config.secrets.keyFile = directory + "/secrets.key"
        return config
    }

    static func temporaryDirectory() -> String {
        var template = Array("/tmp/runvoy-key-test.XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    @Test func aKeyFileIsCreatedOnceWithMode0600AndThenReused() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = system("rm -rf \(directory)") }
        let config = try Self.config(directory)
        let first = try MasterKey.load(config)
        var info = stat()
        #expect(stat(directory + "/secrets.key", &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(info.st_size == 32)
        let again = try MasterKey.load(config)
        #expect(first == again)
    }

    @Test func aKeyFileOthersMayReadIsRefusedWithTheFix() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = system("rm -rf \(directory)") }
        let config = try Self.config(directory)
        _ = try MasterKey.load(config)
        chmod(directory + "/secrets.key", 0o644)
        let error = #expect(throws: MasterKey.LoadError.self) { try MasterKey.load(config) }
        #expect(error?.description.contains("mode 644") == true)
        #expect(error?.description.contains("chmod 600") == true)
    }

    @Test func keysAreAcceptedAsRawHexOrBase64AndAnythingElseIsRefused() throws {
        let raw = [UInt8](repeating: 7, count: 32)
        let hex = raw.map { String(format: "%02x", $0) }.joined()
        let base64 = Data(raw).base64EncodedString()
        let expected = SymmetricKey(data: raw)
        #expect(MasterKey.parse(raw) == expected)
        #expect(MasterKey.parse(Array((hex + "\n").utf8)) == expected)
        #expect(MasterKey.parse(Array(base64.utf8)) == expected)
        #expect(MasterKey.parse(Array("too short".utf8)) == nil)
        #expect(MasterKey.parse(Array(String(hex.dropLast() + "g").utf8)) == nil)
        #expect(MasterKey.parse(Array(("  " + base64 + "\r\n").utf8)) == expected)
        #expect(MasterKey.parse(Array(String(base64.dropLast() + "!").utf8)) == nil)

        let directory = Self.temporaryDirectory()
        defer { _ = system("rm -rf \(directory)") }
        _ = FileManager.default.createFile(
            atPath: directory + "/secrets.key", contents: Data("not a key".utf8), attributes: [.posixPermissions: 0o600]
        )
        let error = #expect(throws: MasterKey.LoadError.self) { try MasterKey.load(try Self.config(directory)) }
        #expect(error?.description.contains("not a 256-bit key") == true)
    }

    @Test func aSystemdCredentialWinsOverTheKeyFile() throws {
        let directory = Self.temporaryDirectory()
        defer {
            unsetenv("CREDENTIALS_DIRECTORY")
            _ = system("rm -rf \(directory)")
        }
        let raw = [UInt8](repeating: 9, count: 32)
        _ = FileManager.default.createFile(atPath: directory + "/runvoy.key", contents: Data(raw))
        setenv("CREDENTIALS_DIRECTORY", directory, 1)
        let config = try Self.config(directory + "/state-not-created")
        #expect(try MasterKey.load(config) == SymmetricKey(data: raw))
        #expect(MasterKey.source(config) == directory + "/runvoy.key")
    }

    /// The key file as `health` reads it: each form, and nothing from a file too large to be a key.
    @Test func theKeyFileIsReadInEachForm() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = system("rm -rf \(directory)") }
        let raw = (0..<32).map { UInt8($0 + 100) }
        let path = directory + "/k"
        for form in [Data(raw), Data((raw.map { String(format: "%02X", $0) }.joined() + "\n").utf8)] {
            try form.write(to: URL(fileURLWithPath: path))
            #expect(MasterKey.current(at: path) == SymmetricKey(data: raw))
        }
        try Data(repeating: 0x41, count: 5000).write(to: URL(fileURLWithPath: path))
        #expect(MasterKey.current(at: path) == nil)
        #expect(MasterKey.current(at: directory + "/none") == nil)
    }
}

extension MasterKeyTests {
    /// A key file that cannot be made, or that is a folder, stops the start with the path and the reason; no key
    /// is made up in its place.
    @Test func aKeyFileThatCannotBeMadeOrReadIsNamed() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = system("rm -rf \(directory)") }
        var config = try Self.config(directory)
        config.secrets.keyFile = directory + "/missing/secrets.key"
        let unmade = #expect(throws: MasterKey.LoadError.self) { try MasterKey.load(config) }
        #expect(
            unmade?.description
                == "cannot create the secrets master key \(directory)/missing/secrets.key: \(String(cString: strerror(ENOENT)))"
        )
        #expect(mkdir(directory + "/folder.key", 0o700) == 0)
        config.secrets.keyFile = directory + "/folder.key"
        let unread = #expect(throws: MasterKey.LoadError.self) { try MasterKey.load(config) }
        #expect(unread?.description == "cannot read the secrets master key \(directory)/folder.key")
    }
}
