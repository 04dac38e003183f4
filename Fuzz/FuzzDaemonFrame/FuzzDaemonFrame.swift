// This target reads runvoyd's internals (`@testable import RunvoyDaemon`), which only a debug build allows;
// scripts/fuzz builds in debug. A release build of the package (scripts/build-deb, check-release) gets a stub.
#if DEBUG
    import FuzzSupport
    import NIOCore
    import RunvoyKit

    @testable import RunvoyDaemon

    /// runvoyd's side of the wire: `FrameDecoder` splitting what a client sends into request payloads, with a user's
    /// budget of unfinished large frames. Checks, besides "no crash, no memory error":
    /// - any split of the stream into reads yields the same payloads and the same error at the same place as a plain
    ///   reference reader of the whole stream (4-byte big-endian length, then that many bytes);
    /// - a header over the limit is refused as soon as its 4 bytes are in, before its payload arrives;
    /// - at the end of input, bytes of an unfinished frame are `TruncatedFrame` with their count;
    /// - the budget of unfinished large frames is never exceeded and is given back in full once the decoder is gone.
    ///
    /// Input: the stream from the front; from the end, the frame limit, the budget, and the sizes of the reads.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
        var input = FuzzInput(data, size)
        let limit = [0, 1, 16, 300, 4096, 1 << 20, 1 << 24][input.int(in: 0...6)]
        let budgetLimit = [0, PendingFrames.threshold, 1 << 20][input.int(in: 0...2)]
        var reads: [Int] = []
        for _ in 0..<input.int(in: 0...15) { reads.append(input.int(in: 0...600)) }
        let stream = input.rest()

        let expected = Reference(stream, limit: limit, budgetLimit: budgetLimit, split: !reads.isEmpty)
        let pending = PendingFrames()
        do {
            var decoder = FrameDecoder(
                maxFrameBytes: limit, budget: .init(pending: pending, uid: 4242, limit: budgetLimit))
            let got = Decoded(stream, reads: reads, decoder: &decoder, pending: pending, budgetLimit: budgetLimit)
            check(got, against: expected)
        }
        guard pending.held(by: 4242) == 0 else {
            fatalError("\(pending.held(by: 4242)) bytes of the budget still held after the decoder is gone")
        }
        return 0
    }

    /// What a plain reader of the whole stream expects the decoder to give.
    struct Reference: CustomStringConvertible {
        enum End: Equatable {
            case clean
            case tooLarge(length: Int)
            case overBudget
            case truncated(received: Int)
        }

        var payloads: [[UInt8]] = []
        var end = End.clean

        /// `split`: whether the stream arrives in small reads (at most 600 bytes), so that every frame over 600 bytes
        /// is seen unfinished first and takes its share of the budget.
        init(_ stream: [UInt8], limit: Int, budgetLimit: Int, split: Bool) {
            var offset = 0
            while stream.count - offset >= 4 {
                let length = stream[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
                if length > limit {
                    end = .tooLarge(length: length)
                    return
                }
                let complete = stream.count - offset - 4 >= length
                if (split || !complete) && length > PendingFrames.threshold && length > budgetLimit {
                    end = .overBudget
                    return
                }
                guard complete else { break }
                payloads.append(Array(stream[offset + 4..<offset + 4 + length]))
                offset += 4 + length
            }
            if stream.count > offset { end = .truncated(received: stream.count - offset) }
        }

        var description: String { "\(payloads.count) payloads, then \(end)" }
    }

    /// What `FrameDecoder` gives when the stream arrives in `reads`, as NIO drives it: after each read, `decode`
    /// until it returns nil or throws; at the end, `decodeLast` with EOF seen.
    struct Decoded {
        var payloads: [[UInt8]] = []
        var error: (any Error)?

        init(
            _ stream: [UInt8], reads: [Int], decoder: inout FrameDecoder, pending: PendingFrames, budgetLimit: Int
        ) {
            var buffer = ByteBufferAllocator().buffer(capacity: 16)
            var offset = 0
            var turn = 0
            while offset < stream.count {
                let count = min(stream.count - offset, reads.isEmpty ? stream.count : max(1, reads[turn % reads.count]))
                buffer.writeBytes(stream[offset..<offset + count])
                offset += count
                turn += 1
                guard drain(&buffer, &decoder, last: false) else { return }
                guard pending.held(by: 4242) <= budgetLimit else {
                    fatalError("the budget of \(budgetLimit) is exceeded: \(pending.held(by: 4242)) held")
                }
            }
            _ = drain(&buffer, &decoder, last: true)
        }

        private mutating func drain(_ buffer: inout ByteBuffer, _ decoder: inout FrameDecoder, last: Bool) -> Bool {
            do {
                while true {
                    let frame =
                        last
                        ? try decoder.decodeLast(buffer: &buffer, seenEOF: true) : try decoder.decode(buffer: &buffer)
                    guard let frame else { return true }
                    payloads.append(Array(frame.readableBytesView))
                }
            } catch {
                self.error = error
                return false
            }
        }
    }

    func check(_ got: Decoded, against expected: Reference) {
        let end: Reference.End
        switch got.error {
        case nil: end = .clean
        case let error as FrameDecoder.FrameTooLarge: end = .tooLarge(length: error.length)
        case is FrameDecoder.PendingBudgetExceeded: end = .overBudget
        case let error as FrameDecoder.TruncatedFrame: end = .truncated(received: error.received)
        case let error?: fatalError("unexpected error \(error)")
        }
        guard end == expected.end, got.payloads == expected.payloads else {
            fatalError("the decoder gave \(got.payloads.count) payloads, then \(end); the reference \(expected)")
        }
    }

    @main enum FuzzDaemonFrameMain {
        static func main() { FuzzDriver.run({ data, size in fuzz(data!, size) }, seeds: Seeds.all) }
    }
#else
    @main enum FuzzDaemonFrameMain {
        static func main() {
            fatalError("FuzzDaemonFrame needs a debug build (scripts/fuzz), where @testable import works")
        }
    }
#endif
