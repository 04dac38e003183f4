import Foundation
import Glibc
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// docs/SECURITY.md (edit, secrets): an edit's diff is kept in the history as its output, with the executor's
/// secrets redacted as a command's output is (a file that holds a credential the executor injects must not put it
/// in the history), and cut at `EditLimits.maxDiffBytes` with a note. Through `edit_open` and `edit_save` in process.
@Suite(.enabled(if: geteuid() == 0, "needs root: the executor's user (nobody) must own the edited folder"))
struct EditHistoryTests {
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)
    static let secret = "hunter2-correct-horse-battery"

    /// Opens `path`, saves `content` and returns what the history keeps as the edit's output.
    static func editedOutput(
        _ connection: InProcessConnection, _ path: String, _ content: [UInt8]
    ) async throws
        -> [UInt8]
    {
        let opened = try JSONSerialization.jsonObject(
            with: Data(
                await connection.call(#"{"v":1,"id":1,"method":"edit_open","params":{"path":"\#(path)"}}"#).utf8))
        let result = try #require((opened as? [String: Any])?["result"] as? [String: Any], "\(opened)")
        let token = try #require(result["token"] as? String)
        let sha = try #require(result["sha256"] as? String)
        let saved = try JSONSerialization.jsonObject(
            with: Data(
                await connection.call(
                    #"{"v":1,"id":2,"method":"edit_save","params":{"token":"\#(token)","content":"\#(Base64.encode(content))","base_sha256":"\#(sha)"}}"#
                ).utf8))
        let id = try #require(
            ((saved as? [String: Any])?["result"] as? [String: Any])?["execution_id"] as? String, "\(saved)")
        let entries = try OutputLogReader(directory: connection.executions.store.outputDirectory(id)).readAll()
        return entries.flatMap { entry -> [UInt8] in
            if case .chunk(_, let bytes, _) = entry { return bytes }
            return []
        }
    }

    static func yaml(_ base: String) -> String {
        RouterTests.developerYAML.replacingOccurrences(
            of: "      LANG: C.UTF-8\n", with: "      LANG: C.UTF-8\n      TOKEN: {secret: token}\n")
            + "\n    editable: [\"\(base)\"]\n"
    }

    @Test func aSecretWrittenIntoAnEditedFileIsRedactedInItsDiff() async throws {
        var template = Array("/tmp/runvoy-edit-history-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(base) }
        #expect(chmod(base, 0o755) == 0)
        try Data("key = old\n".utf8).write(to: URL(fileURLWithPath: base + "/app.conf"))
        #expect(chown(base, 65534, 65534) == 0 && chown(base + "/app.conf", 65534, 65534) == 0)
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml(base)) { connection in
            try connection.executions.secrets.set(
                "token", value: Array(Self.secret.utf8), description: nil, uid: 0, user: "root", atMs: 1)
            let diff = String(
                decoding: try await Self.editedOutput(
                    connection, base + "/app.conf", Array("key = \(Self.secret)\n".utf8)),
                as: UTF8.self)
            #expect(!diff.contains(Self.secret), "\(diff)")
            #expect(diff.contains("+key = [secret:token]"), "\(diff)")
            #expect(diff.contains("-key = old"), "\(diff)")
            // The file itself has what was written: redaction is of the record, not of the edit.
            #expect(try String(contentsOfFile: base + "/app.conf", encoding: .utf8) == "key = \(Self.secret)\n")
        }
    }

    @Test func aDiffLargerThanItsLimitIsCutWithANote() async throws {
        var template = Array("/tmp/runvoy-edit-history-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(base) }
        #expect(chmod(base, 0o755) == 0)
        try Data("one line\n".utf8).write(to: URL(fileURLWithPath: base + "/big.conf"))
        #expect(chown(base, 65534, 65534) == 0 && chown(base + "/big.conf", 65534, 65534) == 0)
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml(base)) { connection in
            try connection.executions.secrets.set(
                "token", value: Array(Self.secret.utf8), description: nil, uid: 0, user: "root", atMs: 1)
            // A few long lines (a diff of many lines stops at its own line limit, with a note of its own).
            let lines = (0..<3).map { String(repeating: "\($0)", count: 40_000) + "\n" }.joined()
            let diff = try await Self.editedOutput(connection, base + "/big.conf", Array(lines.utf8))
            let note = Array("\n[diff cut at \(EditLimits.maxDiffBytes) bytes]\n".utf8)
            #expect(diff.count == EditLimits.maxDiffBytes + note.count)
            #expect(Array(diff.suffix(note.count)) == note)
            #expect(try Data(contentsOf: URL(fileURLWithPath: base + "/big.conf")).count == lines.utf8.count)
        }
    }

    /// An edit whose history row the database refuses: the file was written (the edit is done), and the caller is
    /// told so with its new SHA-256, as `store_unavailable`.
    @Test func anEditWhoseRecordCannotBeStoredSaysTheFileWasWritten() async throws {
        var template = Array("/tmp/runvoy-edit-history-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(base) }
        #expect(chmod(base, 0o755) == 0)
        try Data("a\n".utf8).write(to: URL(fileURLWithPath: base + "/f.conf"))
        #expect(chown(base, 65534, 65534) == 0 && chown(base + "/f.conf", 65534, 65534) == 0)
        try await InProcessConnection.with(caller: Self.root, yaml: Self.yaml(base)) { connection in
            try connection.executions.secrets.set(
                "token", value: Array(Self.secret.utf8), description: nil, uid: 0, user: "root", atMs: 1)
            try StoreFaultTests.refuse(connection.executions.store, "INSERT", on: "executions")
            let opened = await connection.call(
                #"{"v":1,"id":1,"method":"edit_open","params":{"path":"\#(base)/f.conf"}}"#)
            let result = try #require(
                (try JSONSerialization.jsonObject(with: Data(opened.utf8)) as? [String: Any])?["result"]
                    as? [String: Any], "\(opened)")
            let token = try #require(result["token"] as? String)
            let sha = try #require(result["sha256"] as? String)
            let saved = await connection.call(
                #"{"v":1,"id":2,"method":"edit_save","params":{"token":"\#(token)","content":"\#(Base64.encode(Array("b\n".utf8)))","base_sha256":"\#(sha)"}}"#
            )
            let after = FileEditor.sha256(Array("b\n".utf8))
            #expect(
                saved.contains(
                    #""code":"store_unavailable","message":"\#(base)/f.conf was written (sha256 \#(after)), but its history record could not be stored""#
                ), "\(saved)")
            #expect(try String(contentsOfFile: base + "/f.conf", encoding: .utf8) == "b\n")
        }
    }
}
