import Foundation
import FuzzSupport
import RunvoyKit

/// The client's side of the wire: `FrameReader` splitting a byte stream into JSON and binary frames, and what
/// `runvoyctl` does with each frame (`OutputFrame.parseFast` and base64 for `output` events, `FrameHead` for
/// routing). Checks, besides "no crash, no memory error":
/// - any split of the stream into reads yields the same frames, and the same `frame_too_large` at the same
///   place, as the whole stream at once;
/// - the fast path never reads an `output` event differently from a JSON parser: when it finds base64 it can
///   decode in a frame that is JSON, that JSON's `data` is that text and its `stream` the one it found.
///
/// Input: the stream from the front; from the end, the frame limit, the reader's starting capacity, and the
/// sizes of the reads (see `Seeds` for inputs built this way).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let limit = [0, 1, 16, 300, 4096, 1 << 20][input.int(in: 0...5)]
    let capacity = [1, 5, 64, 1 << 12][input.int(in: 0...3)]
    var reads: [Int] = []
    for _ in 0..<input.int(in: 0...15) { reads.append(input.int(in: 0...600)) }
    let stream = input.rest()

    let whole = FrameReader(maxFrameBytes: limit, initialCapacity: capacity)
    stream.withUnsafeBytes { whole.append($0) }
    let expected = Frames(whole)

    let split = FrameReader(maxFrameBytes: limit, initialCapacity: capacity)
    var frames = Frames()
    var offset = 0
    var turn = 0
    while offset < stream.count && frames.failure == nil {
        let count = min(stream.count - offset, reads.isEmpty ? stream.count : max(1, reads[turn % reads.count]))
        if turn % 2 == 0 {
            stream.withUnsafeBytes { split.append(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
        } else {
            // As the socket does: straight into the reader's free space.
            _ = split.fill(minimum: count) { free in
                stream.withUnsafeBytes {
                    free.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: count)
                }
                return count
            }
        }
        frames.read(split)
        offset += count
        turn += 1
    }
    guard frames == expected else {
        fatalError("split reads gave \(frames), the whole stream \(expected)")
    }
    if frames.failure == nil && split.bufferedCount != whole.bufferedCount {
        fatalError("\(split.bufferedCount) bytes left over after split reads, \(whole.bufferedCount) after one")
    }
    for case .json(let payload) in expected.entries { checkClientReading(payload) }
    return 0
}

/// Frames read so far, copied out of the reader, and the error that stopped it.
struct Frames: Equatable, CustomStringConvertible {
    enum Entry: Equatable {
        case json([UInt8])
        case output(OutputStreamKind, [UInt8])
    }

    var entries: [Entry] = []
    var failure: String?

    init() {}

    init(_ reader: FrameReader) {
        read(reader)
    }

    mutating func read(_ reader: FrameReader) {
        do {
            try reader.forEachEntry { entry in
                switch entry {
                case .json(let payload): entries.append(.json(Array(payload)))
                case .output(let stream, let bytes): entries.append(.output(stream, Array(bytes)))
                }
            }
        } catch let error as RunvoyError {
            failure = "\(error.code): \(error.message)"
        } catch {
            fatalError("FrameReader threw something other than a RunvoyError: \(error)")
        }
    }

    var description: String { "\(entries.count) frames, then \(failure ?? "no error")" }
}

/// What the client does with one JSON frame, with the fast path checked against Foundation.
func checkClientReading(_ payload: [UInt8]) {
    payload.withUnsafeBytes { raw in
        _ = try? Frame.decode(FrameHead.self, from: raw)
        _ = JSONValue.parse(raw)
        guard let fast = OutputFrame.parseFast(raw) else { return }
        let base64 = UnsafeRawBufferPointer(rebasing: raw[fast.base64])
        let destination = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Base64.maxDecodedLength(base64.count), alignment: 1)
        defer { destination.deallocate() }
        // Base64 it cannot decode is reported and dropped by the client: safe whatever the frame was. A frame
        // that is not JSON at all (an id literal the fast path skips without reading: invalid UTF-8, no digits)
        // cannot be read differently by a JSON parser; the client takes output only on its own connection.
        guard Base64.decode(base64, into: destination) != nil,
            let object = try? JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any]
        else { return }
        guard object["event"] as? String == "output", object["stream"] as? String == fast.stream.rawValue,
            object["data"] as? String == String(decoding: base64, as: UTF8.self)
        else {
            fatalError(
                "the fast path read output from a frame that says otherwise: \(String(decoding: raw, as: UTF8.self))")
        }
    }
}

@main enum FuzzFrameMain {
    static func main() { FuzzDriver.run({ data, size in fuzz(data!, size) }, seeds: Seeds.all) }
}
