import Glibc
import RunvoyKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Formatting shared by `list`, `status` and `logs`.
enum HistoryFormat {
    /// `2026-11-25 06:40:25` in local time.
    static func localTime(ms: Int64) -> String {
        var seconds = time_t(ms / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `2026-11-25T06:40:25.123456Z` (UTC, microseconds), for `logs --timestamps`.
    static func utcTimestamp(usec: Int64) -> String {
        var seconds = time_t(usec / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let fraction = String(usec % 1_000_000)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self) + "."
            + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
    }

    static func duration(usec: Int64?) -> String {
        guard let usec else { return "-" }
        if usec < 1000 { return "\(usec)µs" }
        if usec < 10_000_000 {
            let ms = Double(usec) / 1000
            return ms < 1000 ? "\(Int(ms.rounded()))ms" : "\(Int(ms / 1000))." + "\(Int(ms) % 1000 / 100)s"
        }
        return DurationParser.format(.milliseconds(usec / 1000 / 1000 * 1000))
    }

    static func exit(_ info: ExecutionInfo) -> String {
        if let code = info.exitCode { return String(code) }
        if let signal = info.signal { return "sig\(signal)" }
        return "-"
    }

    /// A shell-like rendering of argv: words with spaces or quotes are single-quoted, and words with characters
    /// a terminal could act on (see `TerminalText`) are written `$'...'` with those characters escaped, as
    /// bash's `printf %q` does, so what is shown is what ran and the shell reads it back the same.
    static func command(_ argv: [String]) -> String {
        argv.map { word in
            let safe =
                !word.isEmpty
                && word.unicodeScalars.allSatisfy {
                    ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_./=:,+@%".unicodeScalars.contains($0))
                        && $0.value < 0x7f
                }
            if safe { return word }
            if word.unicodeScalars.contains(where: TerminalText.isUnsafe) {
                var quoted = ""
                for scalar in word.unicodeScalars {
                    if scalar == "\\" || scalar == "'" { quoted += "\\" }
                    quoted.unicodeScalars.append(scalar)
                }
                return "$'" + TerminalText.escape(quoted) + "'"
            }
            return "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
        }.joined(separator: " ")
    }

    /// `command(argv)` of an execution, marked when the daemon sent only the start of its argv (the whole of it is
    /// in the history and the audit trail).
    static func command(_ info: ExecutionInfo) -> String {
        command(info.argv) + (info.argvTruncated ? " … (argv cut)" : "")
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count)B" : String(Int(value * 10) / 10) + "." + String(Int(value * 10) % 10) + units[unit]
    }

    /// The width to fit tables to: the terminal's when stdout is one, else $COLUMNS, else unlimited.
    static func terminalWidth() -> Int? {
        var size = winsize()
        if isatty(1) != 0 && ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 { return Int(size.ws_col) }
        if let text = getenv("COLUMNS"), let columns = Int(String(cString: text)), columns > 0 { return columns }
        return nil
    }

    /// Lays out rows in columns; the last column is cut (with …) so each line fits `width`. When even that is
    /// not enough, the columns in `dropOrder` (indices) are left out, first ones first.
    /// Every cell is shown through `TerminalText.escape`: the daemon's data is other users' text.
    static func table(_ header: [String], _ rows: [[String]], width: Int?, dropOrder: [Int] = []) -> String {
        var all = [header] + rows.map { $0.map { TerminalText.escape($0) } }
        if let width {
            var dropped: [Int] = []
            func fixedWidth() -> Int {
                header.indices.dropLast().filter { !dropped.contains($0) }.reduce(0) { total, column in
                    total + (all.map { $0[column].count }.max() ?? 0) + 2
                }
            }
            for column in dropOrder where fixedWidth() + 12 > width { dropped.append(column) }
            all = all.map { row in row.enumerated().filter { !dropped.contains($0.offset) }.map(\.element) }
        }
        let header = all[0]
        var widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        if let width {
            let fixed = widths.dropLast().reduce(0) { $0 + $1 + 2 }
            widths[widths.count - 1] = max(8, min(widths[widths.count - 1], width - fixed))
        }
        var out = ""
        for row in all {
            var line = ""
            for (column, cell) in row.enumerated() {
                let last = column == row.count - 1
                var text = cell
                if last && text.count > widths[column] {
                    text = String(text.prefix(max(0, widths[column] - 1))) + "…"
                }
                line += last ? text : text + String(repeating: " ", count: max(0, widths[column] + 2 - text.count))
            }
            out += line + "\n"
        }
        return out
    }

    /// Stable JSON for scripts: sorted keys, no escaped slashes.
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
