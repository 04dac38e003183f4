/// Splits a byte stream into frames, enforcing a maximum payload size as soon as a header arrives.
///
/// Single-threaded; owns a growable buffer that the socket reads straight into.
public final class FrameReader {
    /// The largest payload accepted.
    public let maxFrameBytes: Int
    private var storage: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0

    public init(maxFrameBytes: Int, initialCapacity: Int = 1 << 18) {
        self.maxFrameBytes = maxFrameBytes
        self.storage = .allocate(byteCount: initialCapacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Bytes received and not yet returned as frames.
    public var bufferedCount: Int { end - start }

    /// Appends bytes (for tests and callers that do their own reading).
    public func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        if let base = bytes.baseAddress, bytes.count > 0 {
            storage.baseAddress!.advanced(by: end).copyMemory(from: base, byteCount: bytes.count)
        }
        end += bytes.count
    }

    /// Lets `body` fill free space at the end of the buffer; `body` returns how many bytes it wrote.
    public func fill(minimum: Int = 1 << 16, _ body: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> Int {
        reserve(minimum)
        let free = UnsafeMutableRawBufferPointer(rebasing: storage[end...])
        let n = try body(free)
        if n > 0 { end += n }
        return n
    }

    /// One complete frame: a JSON payload, or a binary output frame (see `BinaryOutputFrame`).
    public enum Entry {
        case json(UnsafeRawBufferPointer)
        case output(OutputStreamKind, UnsafeRawBufferPointer)
    }

    /// Calls `body` with each complete JSON payload in order. Throws `frame_too_large` when a header
    /// announces more than `maxFrameBytes`, before the payload arrives, and `bad_request` for a binary frame.
    public func forEachFrame(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try forEachEntry { entry in
            switch entry {
            case .json(let payload): try body(payload)
            case .output: throw RunvoyError(.badRequest, "unexpected binary frame")
            }
        }
    }

    /// Calls `body` with each complete frame in order, JSON or binary output.
    public func forEachEntry(_ body: (Entry) throws -> Void) throws {
        while end - start >= RunvoyProtocol.headerSize {
            let header = Frame.length(from: UnsafeRawBufferPointer(rebasing: storage[start..<start + 4]))
            let binary = header & BinaryOutputFrame.flag != 0
            let length = Int(header & ~BinaryOutputFrame.flag)
            if length > maxFrameBytes || (binary && length < 1) {
                throw RunvoyError(
                    .frameTooLarge, "frame of \(length) bytes exceeds the maximum of \(maxFrameBytes) bytes")
            }
            guard end - start >= 4 + length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: storage[start + 4..<start + 4 + length])
            start += 4 + length
            if binary {
                let stream: OutputStreamKind = payload[0] == BinaryOutputFrame.stderrTag ? .stderr : .stdout
                try body(.output(stream, UnsafeRawBufferPointer(rebasing: payload[1...])))
            } else {
                try body(.json(payload))
            }
        }
        if start == end {
            start = 0
            end = 0
        }
    }

    private func reserve(_ extra: Int) {
        if storage.count - end >= extra { return }
        let live = end - start
        if start > 0 && storage.count - live >= extra {
            storage.baseAddress!.copyMemory(from: storage.baseAddress!.advanced(by: start), byteCount: live)
        } else {
            var capacity = storage.count
            while capacity - live < extra { capacity *= 2 }
            let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
            bigger.baseAddress!.copyMemory(from: storage.baseAddress!.advanced(by: start), byteCount: live)
            storage.deallocate()
            storage = bigger
        }
        start = 0
        end = live
    }
}
