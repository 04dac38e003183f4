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

    @Test func anOversizedHeaderIsRejectedBeforeItsPayload() throws {
        let reader = FrameReader(maxFrameBytes: 1024)
        let header = Frame.header(length: 1025)
        header.withUnsafeBytes { reader.append($0) }
        #expect(throws: RunvoyError.self) { try reader.forEachFrame { _ in } }
        do {
            try reader.forEachFrame { _ in }
        } catch let error as RunvoyError {
            #expect(error.code == .frameTooLarge)
        } catch {
            Issue.record("unexpected \(error)")
        }
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
