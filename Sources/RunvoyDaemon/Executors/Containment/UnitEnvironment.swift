import CRunvoyPosix
import Glibc
import RunvoyKit

/// The environment of a sandboxed execution, for systemd's `EnvironmentFiles=`: a file only root can read,
/// written before the unit starts and removed once it has (its values, secrets among them, never go into a unit
/// property, which every user can read over D-Bus and in `systemctl show`).
enum UnitEnvironment {
    /// The file's text: one `NAME="VALUE"` line per variable, sorted. In double quotes systemd's environment file
    /// parser takes every byte as it is (newlines too) but `\`, which escapes the next byte: `"`, `\`, `` ` `` and
    /// `$` are written after one and read back as themselves. Values are not expanded.
    static func text(_ environment: [String: String]) -> String {
        var text = ""
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) {
            text += name + "=\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" || character == "`" || character == "$" { text += "\\" }
                text.unicodeScalars.append(character)
            }
            text += "\"\n"
        }
        return text
    }

    /// Writes the file, mode 0600, owned by the daemon (root); it must not exist yet.
    static func write(_ environment: [String: String], to path: String) throws(SystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open \(path)") }
        defer { close(fd) }
        var bytes = Array(text(environment).utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let error = SystemError("write \(path)")
                unlink(path)
                throw error
            }
            offset += count
        }
    }
}
