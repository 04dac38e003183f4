import Glibc
import RunvoyKit

/// Reads an execution's stored output in order, from any position, up to a limit or to the last complete record.
public struct OutputLogReader: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// Whether any stored output exists for this execution.
    public var exists: Bool { access(directory + "/head", F_OK) == 0 }

    /// Reads entries from `position` up to `limit` (exclusive; nil reads to the last complete record), stopping
    /// after about `maxBytes` of output. Returns the entries and the position after them.
    public func read(
        from position: OutputPosition, upTo limit: OutputPosition? = nil, maxBytes: Int = 1 << 20
    ) throws(StoreError) -> (entries: [OutputEntry], next: OutputPosition) {
        if let limit, position >= limit { return ([], position) }
        var cursor = OutputLogCursor(directory: directory, position: position, limit: limit)
        // No head: the execution printed nothing (the folder is created with the first chunk).
        guard try cursor.openFirst() else { return ([], position) }
        while cursor.payload < maxBytes, try cursor.step() {}
        return (cursor.entries, cursor.position)
    }

    /// Reads everything stored, in order.
    public func readAll() throws(StoreError) -> [OutputEntry] {
        var all: [OutputEntry] = []
        var position = OutputPosition.start
        while true {
            let (entries, next) = try read(from: position)
            all += entries
            if next == position { return all }
            position = next
        }
    }

    /// Bytes per stream (recorded input as `stdin`) and stored bytes, counted from the files (after a crash).
    public func totals() throws(StoreError) -> (
        stdout: Int64, stderr: Int64, stdin: Int64, stored: Int64, dropped: Int64
    ) {
        var result: (stdout: Int64, stderr: Int64, stdin: Int64, stored: Int64, dropped: Int64) = (0, 0, 0, 0, 0)
        for entry in try readAll() {
            switch entry {
            case .chunk(.stdout, let bytes, _):
                result.stdout += Int64(bytes.count)
                result.stored += Int64(bytes.count)
            case .chunk(.stderr, let bytes, _):
                result.stderr += Int64(bytes.count)
                result.stored += Int64(bytes.count)
            case .chunk(.stdin, let bytes, _):
                result.stdin += Int64(bytes.count)
                result.stored += Int64(bytes.count)
            case .dropped(let count): result.dropped += count
            }
        }
        return result
    }
}
