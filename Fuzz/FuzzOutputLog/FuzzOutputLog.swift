import FuzzSupport
import Glibc
import RunvoyKit
import RunvoyStore

/// The stored-output reader (`OutputLogReader`, as `logs`, history recovery and restore use it) over a folder of
/// segment files holding any bytes: a disk error, a crash mid-write or someone with access to the state folder
/// can leave anything there. Checks, besides "no crash":
/// - reading ends: every loop the daemon runs (`readAll`, `totals`, and `logs`' read-until-no-progress, to the
///   end or up to a position) makes progress on every call, so it stops;
/// - memory stays bounded: one read returns no more output than the files hold.
///
/// Input, from the end: how many files, each one's name, size and header, and how to read; from the front, the
/// files' contents in order. `FuzzOutputLog --write-seeds FOLDER` writes real output (by `OutputRecorder`) in this form.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let folder = OutputFolder.shared
    folder.clear()
    var files: [(name: String, size: Int, header: [UInt8])] = []
    for _ in 0..<input.int(in: 0...6) {
        files.append((OutputFolder.name(input.byte()), input.int(in: 0...0xFFFF), segmentHeader(&input)))
    }
    let mode = input.int(in: 0...2)
    let maxBytes = input.int(in: 1...4096)
    var stored = 0
    for file in files {
        let bytes = file.header + input.bytes(file.size)
        folder.write(file.name, bytes)
        stored += bytes.count
    }
    let reader = OutputLogReader(directory: folder.path)
    _ = reader.exists
    switch mode {
    case 0:
        if let all = try? reader.readAll() { checkBounded(all, stored) }
        _ = try? reader.totals()
    case 1: readUntilNoProgress(reader, upTo: nil, maxBytes: maxBytes, stored: stored)
    default:
        // Up to a position a read ended at, as a live execution's reader reads up to the writer's last record.
        guard let (_, limit) = try? reader.read(from: .start, maxBytes: maxBytes) else { break }
        readUntilNoProgress(reader, upTo: limit, maxBytes: maxBytes, stored: stored)
    }
    return 0
}

/// Most often none (the file is all fuzzer bytes); else a valid segment header whose start offset (the output
/// bytes before the segment, the one number that ties segments together) is one of the extremes or any number.
func segmentHeader(_ input: inout FuzzInput) -> [UInt8] {
    let starts: [Int64] = [0, 1, 4096, .max, .max - 1, .min, -1]
    let choice = input.int(in: 0...starts.count + 1)
    guard choice > 0 else { return [] }
    let start = choice <= starts.count ? starts[choice - 1] : Int64(bitPattern: input.uint64())
    return Array("RVYOUT01".utf8) + withUnsafeBytes(of: start.bigEndian) { Array($0) }
}

/// `LogsHandler.sendStored`'s loop: read on from where the last read ended until a read brings nothing.
func readUntilNoProgress(_ reader: OutputLogReader, upTo limit: OutputPosition?, maxBytes: Int, stored: Int) {
    var position = OutputPosition.start
    // Every call that does not end the loop moves past at least one record header or one segment file.
    let bound = stored / 13 + 16
    for _ in 0..<bound {
        guard let (entries, next) = try? reader.read(from: position, upTo: limit, maxBytes: maxBytes) else { return }
        checkBounded(entries, stored)
        if entries.isEmpty && next == position { return }
        guard next > position || !entries.isEmpty else {
            fatalError("reading from \(position) went back to \(next) without output")
        }
        position = next
    }
    fatalError("reading \(stored) stored bytes did not end after \(bound) reads (at \(position))")
}

func checkBounded(_ entries: [OutputEntry], _ stored: Int) {
    var bytes = 0
    for case .chunk(_, let chunk, _) in entries { bytes += chunk.count }
    guard bytes <= stored else { fatalError("read \(bytes) bytes of output from \(stored) bytes of files") }
}

/// The folder the segment files are written to, one per fuzzing process, emptied before every input.
final class OutputFolder: @unchecked Sendable {
    static let shared = OutputFolder()

    let path: String

    private init() {
        var template = Array("/tmp/runvoy-fuzz-output-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp: \(String(cString: strerror(errno)))") }
        path = String(cString: made)
        atexit { OutputFolder.shared.remove() }
    }

    /// A segment's name: mostly `head` and `tail.N` as the writer names them, sometimes names the reader must
    /// skip or read carefully (an index that is not canonical, too large, negative, or a folder).
    static func name(_ selector: UInt8) -> String {
        switch selector {
        case 0: return "head"
        case 201: return "tail.0"
        case 202: return "tail.99999999999999999999"
        case 203: return "tail.\(Int.max)"
        case 204: return "tail.+5"
        case 205: return "tail.-1"
        case 206: return "tail.00000007"
        case 207: return "tail.1000000"
        case 208...215: return "dir:tail.00000\(selector - 207)"
        default: return "tail." + String(repeating: "0", count: 6 - String(selector).count) + String(selector)
        }
    }

    func write(_ name: String, _ bytes: [UInt8]) {
        if name.hasPrefix("dir:") {
            mkdir(path + "/" + name.dropFirst(4), 0o700)
            return
        }
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            guard n > 0 else { fatalError("write: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    func clear() {
        for name in FileSystem.entries(path) {
            if unlink(path + "/" + name) != 0 { rmdir(path + "/" + name) }
        }
    }

    func remove() {
        clear()
        rmdir(path)
    }
}

@main enum FuzzOutputLogMain {
    static func main() { FuzzDriver.run({ data, size in fuzz(data!, size) }, seeds: Seeds.all) }
}
