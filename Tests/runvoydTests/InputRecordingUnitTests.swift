import Foundation
import NIOCore
import RunvoyKit
import Testing

@testable import RunvoyDaemon
@testable import RunvoyStore

/// `InputRecording` (issue 16, item 2): input stored as stream `stdin`, redacted with the execution's secrets
/// however it is split, nothing after the end.
struct InputRecordingUnitTests {
    static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    static func stored(_ recorder: OutputRecorder) throws -> (stdin: String, streams: Set<OutputStreamKind>) {
        let entries = try recorder.reader.readAll()
        var text: [UInt8] = []
        var streams: Set<OutputStreamKind> = []
        for case .chunk(let stream, let bytes, _) in entries {
            streams.insert(stream)
            if stream == .stdin { text += bytes }
        }
        return (String(decoding: text, as: UTF8.self), streams)
    }

    @Test func aSecretGivenOneByteAtATimeIsStoredRedacted() throws {
        let directory = NSTemporaryDirectory() + "input-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let recorder = OutputRecorder(directory: directory, cap: 1 << 20)
        let recording = InputRecording(
            recorder: recorder, redaction: RedactionSet(secrets: [(name: "pw", value: Array("hunter2-long".utf8))]))
        for byte in "login hunter2-long\nnext\n" { recording.record(Self.buffer(String(byte))) }
        // Held back until the end: the tail could still be the start of the secret.
        #expect(try Self.stored(recorder).stdin.count < "login [secret:pw]\nnext\n".count)
        recording.finish()
        recording.record(Self.buffer("after the end"))
        recorder.finish()
        let stored = try Self.stored(recorder)
        #expect(stored.stdin == "login [secret:pw]\nnext\n")
        #expect(stored.streams == [.stdin])
        #expect(recorder.totals.stdinBytes == Int64(stored.stdin.utf8.count))
        #expect(recorder.totals.stdoutBytes == 0 && recorder.totals.droppedBytes == 0)
    }

    @Test func withoutSecretsInputIsStoredAsGiven() throws {
        let directory = NSTemporaryDirectory() + "input-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let recorder = OutputRecorder(directory: directory, cap: 1 << 20)
        let recording = InputRecording(recorder: recorder, redaction: nil)
        recording.record(Self.buffer("ls -l\r"))
        "out".utf8.withContiguousStorageIfAvailable { recorder.append(.stdout, UnsafeRawBufferPointer($0)) }
        recording.record(Self.buffer("exit\r"))
        recording.finish()
        recording.finish()
        recorder.finish()
        let entries = try recorder.reader.readAll().compactMap { entry -> OutputStreamKind? in
            if case .chunk(let stream, _, _) = entry { return stream }
            return nil
        }
        #expect(entries == [.stdin, .stdout, .stdin])
        #expect(try Self.stored(recorder).stdin == "ls -l\rexit\r")
        let counted = try recorder.reader.totals()
        #expect(counted.stdin == 11 && counted.stdout == 3 && counted.stored == 14)
    }
}
