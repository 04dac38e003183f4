import Crypto
import RunvoyKit

/// The layout of a backup archive (docs/ARCHITECTURE.md, "Backup and restore").
///
/// A plain ustar archive whose members all lie under `runvoy-backup/`, in this order:
/// `output/ID/head`, `output/ID/tail.N` (the stored output of the executions in the snapshot),
/// `history.sqlite` (the history and the sealed secrets), `secrets.key` (only with `--include-key`),
/// `manifest.json`, and `manifest.json.sha256` (`sha256sum -c` reads it). The manifest comes last because it
/// holds every other member's size and SHA-256, which are known only once the member has been streamed.
public enum BackupLayout {
    public static let root = "runvoy-backup"
    public static let database = "history.sqlite"
    public static let key = "secrets.key"
    public static let manifest = "manifest.json"
    public static let manifestDigest = "manifest.json.sha256"
    public static let formatName = "runvoy-backup"
    /// The one format version this build writes and reads.
    public static let formatVersion = 1

    /// Whether `path` (relative to `root`) is a member a backup may hold besides the manifest and its digest.
    public static func isDataMember(_ path: String) -> Bool {
        if path == database || path == key { return true }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        // Segment names as the writer spells them: `tail.01` or `tail.+1` would name a segment no reader opens.
        return parts.count == 3 && parts[0] == "output" && isExecutionID(parts[1])
            && OutputLogFormat.segmentIndex(String(parts[2])).map(OutputLogFormat.segmentName) == String(parts[2])
    }

    /// 26 characters of lower-case Crockford base32 (the daemon's execution ids).
    static func isExecutionID(_ text: Substring) -> Bool {
        text.utf8.count == 26
            && text.utf8.allSatisfy { (48...57).contains($0) || ((97...122).contains($0) && !"ilou".utf8.contains($0)) }
    }

    /// The line `manifest.json.sha256` holds for a manifest with this digest.
    public static func digestLine(_ hex: String) -> String { hex + "  " + manifest + "\n" }
}

/// `manifest.json`, as restore reads it.
public struct BackupManifest: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        public var path: String
        public var size: Int64
        public var sha256: String
    }

    public var format: String
    public var formatVersion: Int
    public var softwareVersion: String
    /// The history's schema versions (migration identifiers), oldest first.
    public var schema: [String]
    public var createdAtMs: Int64
    public var includesKey: Bool
    public var files: [File]
    /// Executions in the snapshot, and how many of them were running.
    public var executions: Int
    public var runningExecutions: Int

    enum CodingKeys: String, CodingKey {
        case format, schema, files, executions
        case formatVersion = "format_version"
        case softwareVersion = "software_version"
        case createdAtMs = "created_at_ms"
        case includesKey = "includes_key"
        case runningExecutions = "running_executions"
    }
}

/// Lower-case hex of a digest.
enum Hex {
    static func string<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func sha256(_ hasher: SHA256) -> String { string(hasher.finalize()) }
}
