import RunvoyKit

/// How much of what a caller chose (its argv, its environment names) one execution object in a reply carries, so
/// that every reply stays within the 1 MiB the protocol promises whatever `limits.max_argv_bytes` allows (issue
/// 18). The history and the audit trail keep everything; only replies are cut. docs/PROTOCOL.md, "The execution
/// history", documents the figures.
///
/// Sizes are counted as `exec` counts them: UTF-8 bytes, each string with its NUL. In JSON a byte can take six
/// (`\u0001`), so an execution object carries at most 6 × (`argvBytes` + `envKeyBytes` + `reasonBytes`) bytes of
/// them, plus what the configuration bounds (executor, user and group names, the working directory) and the
/// edited file's path (at most `PATH_MAX`).
struct ReplyBounds: Equatable {
    /// Bytes of `argv`: whole arguments while they fit, the one that crosses the budget shortened (at a character
    /// boundary), the rest left out.
    let argvBytes: Int
    /// Bytes of `env_keys`: whole names while they fit (a shortened name would be another name).
    let envKeyBytes: Int

    /// A reply about one execution: `status`, the final replies of `logs` and `attach`, `export`'s events; one
    /// request of `approvals` with `id`.
    static let single = ReplyBounds(argvBytes: 64 << 10, envKeyBytes: 16 << 10)
    /// Each execution of a `list` reply, each request of an `approvals` listing.
    static let listed = ReplyBounds(argvBytes: 4 << 10, envKeyBytes: 1 << 10)
    /// Bytes of `reason` (the daemon's words, which can quote a command name): longer ones end with "…".
    static let reasonBytes = 4 << 10
}

extension ExecutionInfo {
    /// This execution as a reply carries it: `argv` and `env_keys` within `bounds` (with `argv_truncated` and
    /// `env_keys_truncated` set when cut), `reason` within `ReplyBounds.reasonBytes`.
    func bounded(_ bounds: ReplyBounds) -> ExecutionInfo {
        var info = self
        let argv = ReplyText.prefix(of: argv, bytes: bounds.argvBytes, shortenLast: true)
        info.argv = argv.items
        info.argvTruncated = argvTruncated || argv.cut
        let keys = ReplyText.prefix(of: envKeys, bytes: bounds.envKeyBytes, shortenLast: false)
        info.envKeys = keys.items
        info.envKeysTruncated = envKeysTruncated || keys.cut
        if let reason, reason.utf8.count > ReplyBounds.reasonBytes {
            info.reason = ReplyText.prefix(reason, bytes: ReplyBounds.reasonBytes) + "…"
        }
        return info
    }
}

extension ApprovalInfo {
    /// This request as a reply carries it: `argv` and `env_keys` within `bounds`, with `argv_truncated` and
    /// `env_keys_truncated` set when cut (`runvoyctl approve` then refuses to approve what it could not show).
    /// `reason` and comments are bounded by `exec` and `approve` (1024 bytes), the rest by the configuration.
    func bounded(_ bounds: ReplyBounds) -> ApprovalInfo {
        var info = self
        let argv = ReplyText.prefix(of: argv, bytes: bounds.argvBytes, shortenLast: true)
        info.argv = argv.items
        info.argvTruncated = argvTruncated || argv.cut
        let keys = ReplyText.prefix(of: envKeys, bytes: bounds.envKeyBytes, shortenLast: false)
        info.envKeys = keys.items
        info.envKeysTruncated = envKeysTruncated || keys.cut
        return info
    }
}

/// Cutting text to a number of UTF-8 bytes without splitting a character.
enum ReplyText {
    /// The first strings of `items` that fit in `bytes` (each counted with its NUL), and whether any were left
    /// out or shortened. With `shortenLast`, the string that crosses the budget is kept shortened to what is left.
    static func prefix(of items: [String], bytes: Int, shortenLast: Bool) -> (items: [String], cut: Bool) {
        var kept: [String] = []
        var left = bytes
        for item in items {
            let size = item.utf8.count + 1
            if size <= left {
                kept.append(item)
                left -= size
                continue
            }
            if shortenLast && left > 1 { kept.append(prefix(item, bytes: left - 1)) }
            return (kept, true)
        }
        return (kept, false)
    }

    /// The longest start of `text` of at most `bytes` UTF-8 bytes that ends on a character boundary.
    static func prefix(_ text: String, bytes: Int) -> String {
        var end = text.unicodeScalars.startIndex
        var used = 0
        for index in text.unicodeScalars.indices {
            let size = UTF8.width(text.unicodeScalars[index])
            if used + size > bytes { break }
            used += size
            end = text.unicodeScalars.index(after: index)
        }
        return String(text.unicodeScalars[..<end])
    }
}
