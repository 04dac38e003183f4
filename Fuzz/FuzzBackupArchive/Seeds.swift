import Crypto
import RunvoyKit
import RunvoyStore

/// Seed inputs for FuzzBackupArchive: small archives laid out as `BackupWriter` lays them out (members under
/// `runvoy-backup/`, the manifest and its digest last), with a manifest whose sizes and digests match, so that
/// the restore gets as far as opening the history (which here is not a database). Fuzz/Corpus/FuzzBackupArchive
/// was made with `FuzzBackupArchive --write-seeds Fuzz/Corpus/FuzzBackupArchive`.
enum Seeds {
    static func all() -> [(name: String, input: [UInt8])] {
        let id = "01jdx7y3m1qk2f6e8v9w0zabcd"
        let segment =
            Array("RVYOUT01".utf8) + [UInt8](repeating: 0, count: 8) + [1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 9]
            + Array("hi\n".utf8)
        let history = Array("SQLite format 3\0 (not a database)".utf8)
        return [
            ("output", archive([("output/\(id)/head", segment), (BackupLayout.database, history)], running: 1)),
            ("history-only", archive([(BackupLayout.database, history)], running: 0)),
            ("empty", [UInt8](repeating: 0, count: 1024)),
        ]
    }

    static func archive(_ files: [(path: String, bytes: [UInt8])], running: Int) -> [UInt8] {
        var out: [UInt8] = []
        func add(_ path: String, _ bytes: [UInt8]) {
            out += TarFormat.header(
                name: BackupLayout.root + "/" + path, size: Int64(bytes.count), mtime: 1_700_000_000)
            out += bytes + [UInt8](repeating: 0, count: TarFormat.padding(after: Int64(bytes.count)))
        }
        for (path, bytes) in files { add(path, bytes) }
        let listed = files.map { #"{"path":"\#($0.path)","size":\#($0.bytes.count),"sha256":"\#(sha256($0.bytes))"}"# }
        let schema = ExecutionStore.schemaVersions.map { "\"\($0)\"" }.joined(separator: ",")
        let manifest = Array(
            (#"{"format":"runvoy-backup","format_version":1,"software_version":"0.1.0","schema":[\#(schema)],"#
                + #""created_at_ms":1700000000000,"includes_key":false,"files":[\#(listed.joined(separator: ","))],"#
                + #""executions":1,"running_executions":\#(running)}"#).utf8)
        add(BackupLayout.manifest, manifest)
        add(BackupLayout.manifestDigest, Array(BackupLayout.digestLine(sha256(manifest)).utf8))
        return out + [UInt8](repeating: 0, count: 2 * TarFormat.blockSize)
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
