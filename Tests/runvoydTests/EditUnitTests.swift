import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The parts of `runvoyctl edit` that need no daemon: the diff the history keeps, the open-edit tokens, and the
/// file operations as the daemon's own identity (the integration tests run them as other users).
@Suite struct EditUnitTests {
    func text(_ string: String) -> [UInt8] { Array(string.utf8) }

    @Test func theDiffOfTwoTextsIsUnifiedWithThreeLinesOfContext() {
        let old = text((1...12).map { "line \($0)\n" }.joined())
        let new = text((1...12).map { $0 == 6 ? "six\n" : "line \($0)\n" }.joined())
        let diff = String(decoding: LineDiff.unified(old, new, label: "/f"), as: UTF8.self)
        #expect(
            diff
                == "--- /f\n+++ /f\n@@ -3,7 +3,7 @@\n line 3\n line 4\n line 5\n-line 6\n+six\n line 7\n line 8\n line 9\n"
        )
        #expect(LineDiff.unified(old, old, label: "/f").isEmpty)
    }

    @Test func diffsApplyWithPatchToGiveTheNewText() throws {
        var generator = SystemRandomNumberGenerator()
        let directory = NSTemporaryDirectory() + "edit-diff-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for round in 0..<40 {
            let words = ["a", "b", "c", "d"]
            let count = Int.random(in: 0...30, using: &generator)
            let old = (0..<count).map { _ in words.randomElement(using: &generator)! + "\n" }
            var new = old
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                let place = Int.random(in: 0...new.count, using: &generator)
                if Bool.random(using: &generator) || new.isEmpty {
                    new.insert(words.randomElement(using: &generator)! + "\n", at: place)
                } else {
                    new.remove(at: min(place, new.count - 1))
                }
            }
            let oldText = text(old.joined())
            let newText = text(new.joined()) + (round % 5 == 0 ? text("tail") : [])
            let diff = LineDiff.unified(oldText, newText, label: "f")
            if oldText == newText { continue }
            let file = directory + "/f"
            FileManager.default.createFile(atPath: file, contents: Data(oldText))
            FileManager.default.createFile(atPath: directory + "/d", contents: Data(diff))
            let patch = Process()
            patch.executableURL = URL(fileURLWithPath: "/usr/bin/patch")
            patch.arguments = ["-s", "-p0", "-i", directory + "/d", file]
            try patch.run()
            patch.waitUntilExit()
            #expect(patch.terminationStatus == 0, "\(String(decoding: diff, as: UTF8.self))")
            #expect(FileManager.default.contents(atPath: file) == Data(newText), "round \(round)")
        }
    }

    @Test func tooManyChangedLinesAreSummarised() {
        let old = text((0..<(LineDiff.maxChanges + 10)).map { "o\($0)\n" }.joined())
        let new = text((0..<(LineDiff.maxChanges + 10)).map { "n\($0)\n" }.joined())
        let diff = String(decoding: LineDiff.unified(old, new, label: "/f"), as: UTF8.self)
        #expect(diff.contains("too many lines differ to show"))
    }

    @Test func tokensBelongToTheirUserAndTheOldestGoesFirst() {
        let sessions = EditSessions()
        let open = EditSessions.Open(uid: 4242, executor: "e", path: "/p", sha256: "h", openedAt: .now)
        let first = sessions.add(open)
        #expect(sessions.find(first, uid: 4242)?.path == "/p")
        #expect(sessions.find(first, uid: 4243) == nil)
        for _ in 0..<16 { _ = sessions.add(open) }
        #expect(sessions.find(first, uid: 4242) == nil)
        #expect(sessions.count == 16)
        let old = EditSessions.Open(
            uid: 7, executor: "e", path: "/p", sha256: "h", openedAt: .now - .seconds(13 * 3600))
        let expired = sessions.add(old)
        #expect(sessions.find(expired, uid: 7) == nil)
    }

    @Test func theEditorReadsRegularFilesOnlyAndReplacesThemAtomically() async throws {
        let directory = NSTemporaryDirectory() + "edit-io-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/f"
        FileManager.default.createFile(atPath: path, contents: Data("abc\n".utf8))
        chmod(path, 0o640)
        let editor = FileEditor(identity: nil)
        let snapshot = try editor.read(path, maxBytes: 100)
        #expect(snapshot.content == text("abc\n") && snapshot.mode == 0o640)
        #expect(snapshot.sha256 == "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb")
        #expect(throws: RunvoyError.self) { try editor.read(path, maxBytes: 3) }
        #expect(throws: RunvoyError.self) { try editor.read(directory, maxBytes: 100) }
        symlink(path, directory + "/link")
        #expect(throws: RunvoyError.self) { try editor.read(directory + "/link", maxBytes: 100) }
        #expect(throws: RunvoyError.self) { try editor.read(directory + "/missing", maxBytes: 100) }

        try await editor.write(path, content: text("new\n"), over: snapshot) {}
        #expect(FileManager.default.contents(atPath: path) == Data("new\n".utf8))
        var info = stat()
        stat(path, &info)
        #expect(info.st_mode & 0o7777 == 0o640)
        // Written over a file that has changed since: refused, nothing left behind.
        await #expect(throws: RunvoyError.self) { try await editor.write(path, content: text("x"), over: snapshot) {} }
        // Refused before the rename: the old file stays, the new one is removed.
        let now = try editor.read(path, maxBytes: 100)
        await #expect(throws: RunvoyError.self) {
            try await editor.write(path, content: text("y"), over: now) { throw RunvoyError(.auditUnavailable, "no") }
        }
        #expect(FileManager.default.contents(atPath: path) == Data("new\n".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["f", "link"])
        #expect(FileEditor.split("/a") == ("/", "a") && FileEditor.split("/a/b") == ("/a", "b"))
    }
}
