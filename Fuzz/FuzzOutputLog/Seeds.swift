import FuzzSupport
import Glibc
import RunvoyKit
import RunvoyStore

/// Seed inputs for FuzzOutputLog: output written by the real writer (through `OutputRecorder`), packed in the
/// form `fuzz` takes apart. Fuzz/Corpus/FuzzOutputLog was made with
/// `FuzzOutputLog --write-seeds Fuzz/Corpus/FuzzOutputLog`.
enum Seeds {
    static func all() -> [(name: String, input: [UInt8])] {
        let long = (0..<24).map { "line \($0) of a command that prints more than the cap keeps\n" }
        var cut = record(cap: 1 << 20, ["complete\n", "cut short by a crash\n"])
        cut[0].bytes.removeLast(5)
        return [
            // Head only: both streams, an empty chunk between.
            ("small", pack(record(cap: 1 << 20, ["hello\n", "", "warning: disk almost full\n"]), mode: 0)),
            // Head and rotating tails, the oldest tails deleted: the reader reports the bytes between as dropped.
            ("rotated", pack(record(cap: 512, long), mode: 0)),
            ("rotated-logs", pack(record(cap: 512, long), mode: 1, maxBytes: 100)),
            ("rotated-limit", pack(record(cap: 512, long), mode: 2, maxBytes: 200)),
            // A head whose last record was cut short, as a crash in the middle of a write leaves it.
            ("crash", pack(cut, mode: 0)),
        ]
    }

    /// The files `OutputRecorder` writes for `chunks` (even ones to stdout, odd ones to stderr).
    static func record(cap: Int64, _ chunks: [String]) -> [(name: String, bytes: [UInt8])] {
        var template = Array("/tmp/runvoy-fuzz-seeds-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
        let parent = String(cString: made)
        let directory = parent + "/output"
        defer {
            FileSystem.removeTree(directory)
            rmdir(parent)
        }
        let recorder = OutputRecorder(directory: directory, cap: cap)
        for (index, chunk) in chunks.enumerated() {
            Array(chunk.utf8).withUnsafeBytes { recorder.append(index % 2 == 0 ? .stdout : .stderr, $0) }
        }
        recorder.finish()
        return FileSystem.entries(directory).sorted().map { name in
            (name, readFile(directory + "/" + name) ?? [])
        }
    }

    /// The input `fuzz` reads as these files and this way of reading them.
    static func pack(_ files: [(name: String, bytes: [UInt8])], mode: Int, maxBytes: Int = 4096) -> [UInt8] {
        var seed = FuzzInputBuilder()
        seed.int(files.count, in: 0...6)
        for file in files {
            seed.byte(file.name == "head" ? 0 : UInt8(Int(file.name.dropFirst(5))!))
            seed.int(file.bytes.count, in: 0...0xFFFF)
            seed.int(0, in: 0...8)
        }
        seed.int(mode, in: 0...2)
        seed.int(maxBytes, in: 1...4096)
        for file in files { seed.bytes(file.bytes) }
        return seed.input
    }
}
