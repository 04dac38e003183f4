import CSystemd
import Glibc

/// Writes structured entries to the systemd journal with `sd_journal_sendv`.
///
/// Field values may hold any bytes, newlines included: libsystemd switches to its binary-safe encoding.
enum Journal {
    /// Where journald listens; libsystemd always sends here.
    static let socketPath = "/run/systemd/journal/socket"

    /// Whether a journal socket exists on this machine.
    static var isAvailable: Bool { access(socketPath, F_OK) == 0 }

    /// Sends one entry. `fields` are `NAME=value` pairs. Throws the negative errno libsystemd returned.
    static func send(_ fields: [(String, String)]) throws(JournalError) {
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(fields.count)
        for (name, value) in fields {
            let start = buffer.count
            buffer.append(contentsOf: name.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer.append(contentsOf: value.utf8)
            ranges.append(start..<buffer.count)
        }
        let rc = buffer.withUnsafeMutableBytes { raw -> Int32 in
            var vectors = ranges.map { iovec(iov_base: raw.baseAddress! + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeMutableBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
        if rc < 0 { throw JournalError(errno: -rc) }
    }
}

/// A journal write that failed.
struct JournalError: Error, CustomStringConvertible {
    var errno: Int32
    var description: String { "cannot write to the journal: \(String(cString: strerror(errno)))" }
}
