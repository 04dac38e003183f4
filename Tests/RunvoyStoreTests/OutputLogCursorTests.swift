import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyStore

/// Reading stored output that is missing, damaged, or replaced by something that is not a segment file.
@Suite(.serialized)
struct OutputLogCursorTests {
    /// A folder holding a head segment with `lines` records.
    static func output(
        _ directory: TemporaryDirectory, lines: Int
    ) throws -> (path: String, recorder: OutputRecorder) {
        let store = try ExecutionStore(stateDirectory: directory.path + "/state")
        let id = ExecutionStoreTests.id(1)
        let recorder = store.makeRecorder(id, cap: 1 << 20)
        for n in 0..<lines { Array("line \(n)\n".utf8).withUnsafeBytes { recorder.append(.stdout, $0) } }
        return (store.outputDirectory(id), recorder)
    }

    @Test func noFolderReadsAsNothing() throws {
        let reader = OutputLogReader(directory: "/nonexistent/runvoy-output")
        let (entries, next) = try reader.read(from: .start)
        #expect(entries.isEmpty && next == .start)
    }

    @Test func aLimitPastTheLastCompleteRecordStopsThereInsideTheSegment() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, recorder) = try Self.output(directory, lines: 3)
        let committed = recorder.committed
        // A limit the writer has not reached yet (its record is still being written): read to what is complete.
        let beyond = OutputPosition(segment: 0, fileOffset: committed.fileOffset + 4096, streamOffset: 1 << 20)
        let (entries, next) = try OutputLogReader(directory: path).read(from: .start, upTo: beyond)
        #expect(entries.count == 3 && next == committed)
        recorder.finish()
    }

    @Test func aSegmentThatIsDamagedALinkOrAFolderIsSaid() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (path, recorder) = try Self.output(directory, lines: 2)
        recorder.finish()
        let head = path + "/head"
        /// The code and message of the refusal to read.
        func failure() -> String? {
            do {
                _ = try OutputLogReader(directory: path).readAll()
                return nil
            } catch {
                return "\(error.code): \(error.message)"
            }
        }
        unlink(head)
        _ = FileManager.default.createFile(atPath: head, contents: Data("this is no segment".utf8))
        #expect(failure() == "corrupt: stored output in \(path) has a bad segment header")
        unlink(head)
        symlink(head, head)
        #expect(failure() == "output: cannot open stored output in \(path): Too many levels of symbolic links")
        unlink(head)
        mkdir(head, 0o700)
        #expect(failure() == "output: cannot read stored output in \(path): pread: Is a directory")
    }
}
