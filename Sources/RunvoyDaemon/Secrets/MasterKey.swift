import Crypto
import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit

/// The 256-bit key that seals the secrets store.
///
/// Taken from the systemd credential `runvoy.key` when systemd passes one (`LoadCredential=` or
/// `LoadCredentialEncrypted=`), else from `secrets.key_file` (default `STATE_DIRECTORY/secrets.key`), which is
/// created on first start with 32 random bytes, mode 0600. A key file that others may read, or that another
/// user owns, is refused: the daemon does not start on a key it cannot trust.
enum MasterKey {
    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    static let credentialName = "runvoy.key"

    /// Where the key comes from, for messages: the credential or the file.
    static func source(_ config: DaemonConfig) -> String {
        if let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"],
            access(directory + "/" + credentialName, F_OK) == 0
        {
            return directory + "/" + credentialName
        }
        return config.secrets.keyFile ?? config.stateDirectory + "/secrets.key"
    }

    static func load(_ config: DaemonConfig) throws(LoadError) -> SymmetricKey {
        let path = source(config)
        let isCredential =
            path.hasSuffix("/" + credentialName) && path != config.secrets.keyFile
            && ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"].map { path.hasPrefix($0) } == true
        if !isCredential && access(path, F_OK) != 0 {
            try create(path)
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw LoadError(
                description: "cannot read the secrets master key \(path): \(SystemError.text())")
        }
        if !isCredential {
            guard info.st_uid == geteuid(), info.st_mode & 0o077 == 0 else {
                throw LoadError(
                    description:
                        "the secrets master key \(path) must be owned by uid \(geteuid()) with mode 0600 or stricter; it is owned by uid \(info.st_uid) with mode \(String(info.st_mode & 0o777, radix: 8)). Fix it with: chown \(geteuid()) \(path) && chmod 600 \(path)"
                )
            }
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoadError(description: "cannot read the secrets master key \(path)")
        }
        guard let key = parse(Array(data)) else {
            throw LoadError(
                description:
                    "the secrets master key \(path) is not a 256-bit key (32 bytes, or 64 hex digits, or base64 of 32 bytes)"
            )
        }
        return key
    }

    /// The key the file at `path` holds now, without creating one (for `health`); nil when it cannot be read or
    /// holds no key.
    static func current(at path: String) -> SymmetricKey? {
        FileManager.default.contents(atPath: path).flatMap { parse(Array($0)) }
    }

    /// 32 raw bytes, 64 hex digits or base64 of 32 bytes (surrounding whitespace ignored for the text forms).
    static func parse(_ bytes: [UInt8]) -> SymmetricKey? {
        if bytes.count == 32 { return SymmetricKey(data: bytes) }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count == 64, text.allSatisfy(\.isHexDigit) {
            var raw: [UInt8] = []
            var index = text.startIndex
            while index < text.endIndex {
                let next = text.index(index, offsetBy: 2)
                raw.append(UInt8(text[index..<next], radix: 16)!)
                index = next
            }
            return SymmetricKey(data: raw)
        }
        if let raw = Data(base64Encoded: text), raw.count == 32 { return SymmetricKey(data: raw) }
        return nil
    }

    private static func create(_ path: String) throws(LoadError) {
        var random = SystemRandomNumberGenerator()
        var bytes = (0..<4).flatMap { _ in withUnsafeBytes(of: random.next() as UInt64) { Array($0) } }
        defer { bytes.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw LoadError(
                description: "cannot create the secrets master key \(path): \(SystemError.text())")
        }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == 32, fsync(fd) == 0 else {
            unlink(path)
            throw LoadError(
                description: "cannot write the secrets master key \(path): \(SystemError.text())")
        }
    }
}
