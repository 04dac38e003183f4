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

    /// Calls `body` with each complete payload in order. Throws `frame_too_large` when a header
    /// announces more than `maxFrameBytes`, before the payload arrives.
    public func forEachFrame(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        while end - start >= RunvoyProtocol.headerSize {
            let length = Int(Frame.length(from: UnsafeRawBufferPointer(rebasing: storage[start..<start + 4])))
            if length > maxFrameBytes {
                throw RunvoyError(
                    .frameTooLarge, "frame of \(length) bytes exceeds the maximum of \(maxFrameBytes) bytes")
            }
            guard end - start >= 4 + length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: storage[start + 4..<start + 4 + length])
            start += 4 + length
            try body(payload)
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
