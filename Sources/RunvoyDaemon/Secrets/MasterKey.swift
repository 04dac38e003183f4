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
        guard let contents = read(path) else {
            throw LoadError(description: "cannot read the secrets master key \(path)")
        }
        guard let key = contents else {
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
        read(path) ?? nil
    }

    /// The most a key file may hold (a key is 32 bytes, or 64 hex digits or 44 base64 characters, with spaces).
    static let maximumFileBytes = 4096

    /// Reads the key file at `path` into a buffer that is cleared once the key is parsed, so no copy of the key
    /// is left in memory nobody clears (`SymmetricKey` clears its own). nil: it cannot be read; .some(nil): it
    /// holds no key.
    static func read(_ path: String) -> SymmetricKey?? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: maximumFileBytes + 1, alignment: 1)
        defer {
            ConstantTime.zero(buffer)
            buffer.deallocate()
        }
        var count = 0
        while count < buffer.count {
            let got = Glibc.read(fd, buffer.baseAddress! + count, buffer.count - count)
            if got < 0 && errno == EINTR { continue }
            if got < 0 { return nil }
            if got == 0 { break }
            count += got
        }
        guard count <= maximumFileBytes else { return .some(nil) }
        return .some(parse(UnsafeRawBufferPointer(rebasing: buffer[..<count])))
    }

    /// 32 raw bytes, 64 hex digits or base64 of 32 bytes (surrounding whitespace ignored for the text forms).
    static func parse(_ bytes: [UInt8]) -> SymmetricKey? {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// As `parse(_:)`, decoding into a buffer that is cleared after.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> SymmetricKey? {
        if bytes.count == 32 { return SymmetricKey(data: bytes) }
        let space: Set<UInt8> = [9, 10, 11, 12, 13, 32]
        var (start, end) = (0, bytes.count)
        while start < end, space.contains(bytes[start]) { start += 1 }
        while end > start, space.contains(bytes[end - 1]) { end -= 1 }
        let text = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 1) { raw -> SymmetricKey? in
            defer { ConstantTime.zero(raw) }
            let decoded =
                text.count == 64 ? hex(text, into: raw) : text.count == 44 ? Base64.decode(text, into: raw) : nil
            guard decoded == 32 else { return nil }
            return SymmetricKey(data: UnsafeRawBufferPointer(rebasing: raw[..<32]))
        }
    }

    /// Decodes hex digits into `output`; the count of bytes written, or nil when one is not a hex digit.
    private static func hex(_ text: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        func nibble(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        for index in 0..<text.count / 2 {
            guard let high = nibble(text[2 * index]), let low = nibble(text[2 * index + 1]) else { return nil }
            output[index] = high << 4 | low
        }
        return text.count / 2
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
