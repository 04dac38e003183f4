import PropertyBased
import RunvoyKit
import Testing

struct FrameReaderTests {
    static func frames(_ payloads: [[UInt8]]) -> [UInt8] {
        payloads.flatMap { Frame.header(length: $0.count) + $0 }
    }

    static func decode(_ stream: [UInt8], splits: [Int], max: Int = 1 << 20) throws -> [[UInt8]] {
        let reader = FrameReader(maxFrameBytes: max, initialCapacity: 16)
        var out: [[UInt8]] = []
        var offset = 0
        var cuts = splits.map { $0 % (stream.count + 1) }.sorted()
        cuts.append(stream.count)
        for cut in cuts where cut >= offset {
            stream[offset..<cut].withUnsafeBytes { reader.append($0) }
            offset = cut
            try reader.forEachFrame { out.append(Array($0)) }
        }
        return out
    }

    @Test func anySplitOfTheStreamDecodesTheSameFrames() async {
        let payloads = Gen<UInt8>.value().array(of: 0...200).array(of: 0...12)
        let splits = Gen.int(in: 0...5000).array(of: 0...40)
        await propertyCheck(count: 300, input: payloads, splits) { payloads, splits in
            let stream = Self.frames(payloads)
            #expect((try? Self.decode(stream, splits: splits)) == payloads)
        }
    }

    @Test func binaryOutputFramesAndJSONFramesInterleaveUnderAnySplit() async {
        let chunks = Gen<UInt8>.value().array(of: 1...300).array(of: 0...10)
        let splits = Gen.int(in: 0...5000).array(of: 0...40)
        await propertyCheck(count: 200, input: chunks, splits) { chunks, splits in
            var stream: [UInt8] = []
            for (index, chunk) in chunks.enumerated() {
                if index % 3 == 2 {
                    stream += Frame.header(length: chunk.count) + chunk
                } else {
                    stream +=
                        BinaryOutputFrame.header(stream: index % 2 == 0 ? .stdout : .stderr, count: chunk.count) + chunk
                }
            }
            let reader = FrameReader(maxFrameBytes: 1 << 20, initialCapacity: 16)
            var seen: [[UInt8]] = []
            var kinds: [String] = []
            var offset = 0
            var cuts = splits.map { $0 % (stream.count + 1) }.sorted()
            cuts.append(stream.count)
            for cut in cuts where cut >= offset {
                stream[offset..<cut].withUnsafeBytes { reader.append($0) }
                offset = cut
                try? reader.forEachEntry { entry in
                    switch entry {
                    case .json(let payload):
                        seen.append(Array(payload))
                        kinds.append("json")
                    case .output(let kind, let bytes):
                        seen.append(Array(bytes))
                        kinds.append(kind.rawValue)
                    }
                }
            }
            #expect(seen == chunks)
            #expect(kinds == chunks.indices.map { $0 % 3 == 2 ? "json" : ($0 % 2 == 0 ? "stdout" : "stderr") })
        }
    }

    @Test func anOversizedHeaderIsRejectedBeforeItsPayload() throws {
        let reader = FrameReader(maxFrameBytes: 1024)
        let header = Frame.header(length: 1025)
        header.withUnsafeBytes { reader.append($0) }
        let error = #expect(throws: RunvoyError.self) { try reader.forEachFrame { _ in } }
        #expect(error?.code == .frameTooLarge)
    }

    @Test func aPartialFrameWaitsForTheRest() throws {
        let reader = FrameReader(maxFrameBytes: 1024)
        let stream = Self.frames([Array("{\"a\":1}".utf8)])
        stream.prefix(6).withUnsafeBytes { reader.append($0) }
        var count = 0
        try reader.forEachFrame { _ in count += 1 }
        #expect(count == 0)
        stream.dropFirst(6).withUnsafeBytes { reader.append($0) }
        try reader.forEachFrame { _ in count += 1 }
        #expect(count == 1)
        #expect(reader.bufferedCount == 0)
    }
}
