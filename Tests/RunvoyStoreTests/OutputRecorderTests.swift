import Glibc
import PropertyBased
import RunvoyKit
import Testing

@testable import RunvoyStore

struct OutputRecorderTests {
    struct Chunk: Equatable, Sendable {
        var stream: OutputStreamKind
        var bytes: [UInt8]
    }

    static let chunkGen = zip(Gen.bool, Gen<UInt8>.value().array(of: 1...300)).map { isErr, bytes in
        Chunk(stream: isErr ? .stderr : .stdout, bytes: bytes)
    }

    static func chunks(of entries: [OutputEntry]) -> [Chunk] {
        entries.compactMap {
            if case .chunk(let stream, let bytes, _) = $0 { return Chunk(stream: stream, bytes: bytes) }
            return nil
        }
    }

    /// Follows a recording to its end, reading at most `batch` bytes at a time.
    static func drain(_ follower: OutputFollower, batch: Int) async throws -> [OutputEntry] {
        var entries: [OutputEntry] = []
        while let next = try await follower.next(maxBytes: batch) { entries += next }
        follower.close()
        return entries
    }

    @Test func aFollowerAttachingAtAnyPointSeesTheExactStreamWithoutGapOrDuplicate() async {
        let input = (Self.chunkGen.array(of: 0...40), Gen.int(in: 0...40), Gen.int(in: 1...2000))
        await propertyCheck(count: 120, input: input.0, input.1, input.2) { chunks, attachAt, batch in
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let recorder = OutputRecorder(directory: directory.path + "/x", cap: 64 << 20)
            let before = min(attachAt, chunks.count)
            for chunk in chunks[..<before] { chunk.bytes.withUnsafeBytes { recorder.append(chunk.stream, $0) } }
            let follower = recorder.follow()
            let rest = Array(chunks[before...])
            let producer = Task {
                for chunk in rest {
                    chunk.bytes.withUnsafeBytes { recorder.append(chunk.stream, $0) }
                    await Task.yield()
                }
                recorder.finish()
            }
            let seen = try? await Self.drain(follower, batch: batch)
            await producer.value
            #expect(seen.map(Self.chunks) == chunks)
            // Stored output read back afterwards is the same stream.
            #expect((try? recorder.reader.readAll()).map(Self.chunks) == chunks)
        }
    }

    @Test func severalFollowersAtOnceEachSeeEverything() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let recorder = OutputRecorder(directory: directory.path + "/x", cap: 64 << 20)
        let chunks = (0..<500).map { Chunk(stream: $0 % 3 == 0 ? .stderr : .stdout, bytes: Array("line \($0)\n".utf8)) }
        let followers = (0..<4).map { _ in recorder.follow() }
        let producer = Task {
            for chunk in chunks {
                chunk.bytes.withUnsafeBytes { recorder.append(chunk.stream, $0) }
                if chunk.bytes.count % 2 == 0 { await Task.yield() }
            }
            recorder.finish()
        }
        try await withThrowingTaskGroup(of: [Chunk].self) { group in
            for (index, follower) in followers.enumerated() {
                nonisolated(unsafe) let follower = follower
                group.addTask { Self.chunks(of: try await Self.drain(follower, batch: 64 << index)) }
            }
            for try await seen in group { #expect(seen == chunks) }
        }
        await producer.value
    }

    @Test func theCapKeepsHeadAndTailWithADroppedMarker() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let cap: Int64 = 64 << 10
        let recorder = OutputRecorder(directory: directory.path + "/x", cap: cap)
        var stream: [UInt8] = []
        for index in 0..<2000 {
            let bytes = Array("chunk \(index) ".utf8) + [UInt8](repeating: UInt8(index % 251), count: 200)
            stream += bytes
            bytes.withUnsafeBytes { recorder.append(.stdout, $0) }
        }
        recorder.finish()
        let totals = recorder.totals
        #expect(totals.stdoutBytes == Int64(stream.count))
        #expect(totals.storedBytes + totals.droppedBytes == Int64(stream.count))
        #expect(totals.storedBytes <= cap)
        #expect(totals.droppedBytes > 0)

        let entries = try recorder.reader.readAll()
        let markers = entries.compactMap { if case .dropped(let n) = $0 { return n } else { return nil } }
        #expect(markers == [totals.droppedBytes])
        let markerIndex = entries.firstIndex { if case .dropped = $0 { return true } else { return false } }!
        let head = Self.chunks(of: Array(entries[..<markerIndex])).flatMap(\.bytes)
        let tail = Self.chunks(of: Array(entries[(markerIndex + 1)...])).flatMap(\.bytes)
        #expect(Array(stream.prefix(head.count)) == head)
        #expect(Array(stream.suffix(tail.count)) == tail)
        #expect(Int64(head.count + tail.count) == totals.storedBytes)
        #expect(head.count >= Int(cap / 2))
        #expect(tail.count >= Int(cap / 4))
    }

    /// Issue 11, item 4: a segment took a whole read past its limit, so `seq 1 100000` (reads of up to 256 KiB)
    /// under a 64 KiB cap stored 457,823 bytes. Stored output now stays within the cap for any read sizes.
    @Test func storedOutputStaysWithinTheCapWhateverTheReadSizes() async {
        let sizes = Gen.int(in: 1...(300 << 10)).array(of: 1...12)
        let caps = Gen.int(in: (16 << 10)...(1 << 20))
        await propertyCheck(count: 60, input: sizes, caps) { sizes, cap in
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let recorder = OutputRecorder(directory: directory.path + "/x", cap: Int64(cap))
            var stream: [UInt8] = []
            for (index, size) in sizes.enumerated() {
                let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: size)
                stream += bytes
                bytes.withUnsafeBytes { recorder.append(index % 3 == 0 ? .stderr : .stdout, $0) }
            }
            recorder.finish()
            let totals = recorder.totals
            #expect(totals.storedBytes <= Int64(cap))
            #expect(totals.storedBytes + totals.droppedBytes == Int64(stream.count))
            // What is stored is the stream's head and tail, byte for byte.
            let entries = (try? recorder.reader.readAll()) ?? []
            let split = entries.firstIndex { if case .dropped = $0 { return true } else { return false } }
            let head = Self.chunks(of: Array(entries[..<(split ?? entries.count)])).flatMap(\.bytes)
            let tail = split.map { Self.chunks(of: Array(entries[($0 + 1)...])).flatMap(\.bytes) } ?? []
            #expect(Array(stream.prefix(head.count)) == head)
            #expect(Array(stream.suffix(tail.count)) == tail)
        }
    }

    @Test func aSlowFollowerKeepsTheSegmentItReadsUntilItMovesOn() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let recorder = OutputRecorder(directory: directory.path + "/x", cap: 64 << 10)
        let follower = recorder.follow()
        var stream: [UInt8] = []
        func write(_ count: Int) {
            for index in 0..<count {
                let bytes = [UInt8](repeating: UInt8(index % 256), count: 1000)
                stream += bytes
                bytes.withUnsafeBytes { recorder.append(.stdout, $0) }
            }
        }
        // The follower reads part of the head, then the writer fills the head and three tail segments.
        write(10)
        var seen = try await follower.next(maxBytes: 5000) ?? []
        write(100)
        recorder.finish()
        while let more = try await follower.next(maxBytes: 5000) { seen += more }
        follower.close()
        let bytes = Self.chunks(of: seen).flatMap(\.bytes)
        let dropped = seen.compactMap { if case .dropped(let n) = $0 { return n } else { return nil } }.reduce(0, +)
        // Held-back segments (at most OutputLogWriter.maximumPending) mean the follower lost less than storage:
        // strictly less, since it kept the segment it was reading when the writer moved past it.
        #expect(Int64(bytes.count) + dropped == Int64(stream.count))
        #expect(recorder.totals.droppedBytes > 0)
        #expect(
            dropped < recorder.totals.droppedBytes, "follower lost \(dropped), storage \(recorder.totals.droppedBytes)")
        #expect(Array(stream.prefix(bytes.count - 0).prefix(20_000)) == Array(bytes.prefix(20_000)))
    }

    @Test func aRecordCutShortByACrashIsIgnoredAndEarlierOutputStaysReadable() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/x"
        let recorder = OutputRecorder(directory: path, cap: 64 << 20)
        for text in ["one\n", "two\n", "three\n"] { Array(text.utf8).withUnsafeBytes { recorder.append(.stdout, $0) } }
        recorder.finish()
        // Simulate a crash in the middle of a write: a header announcing 100 bytes, only 10 of them present.
        let fd = open(path + "/head", O_WRONLY | O_APPEND)
        let torn = OutputLogFormat.recordHeader(.stderr, length: 100, tUsec: 5) + [UInt8](repeating: 65, count: 10)
        _ = torn.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let entries = try OutputLogReader(directory: path).readAll()
        #expect(
            Self.chunks(of: entries).map { String(decoding: $0.bytes, as: UTF8.self) } == ["one\n", "two\n", "three\n"])
        let totals = try OutputLogReader(directory: path).totals()
        #expect(totals.stdout == 14 && totals.stderr == 0)
    }

    @Test func aSegmentCutShortRightAfterItWasCreatedEndsTheOutputCleanly() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/x"
        let recorder = OutputRecorder(directory: path, cap: 64 << 10)
        var stream: [UInt8] = []
        for index in 0..<50 {
            let bytes = [UInt8](repeating: UInt8(index), count: 1000)
            stream += bytes
            bytes.withUnsafeBytes { recorder.append(.stdout, $0) }
        }
        recorder.finish()
        let segments = FileSystem.entries(path).compactMap(OutputLogFormat.segmentIndex)
        let next = OutputLogFormat.segmentName(segments.max()! + 1)
        for headerBytes in [0, 5, 12] {
            // The daemon died between creating the next segment and finishing its 16-byte header.
            let fd = open(path + "/" + next, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            let partial = Array(OutputLogFormat.segmentHeader(startOffset: 50_000).prefix(headerBytes))
            _ = partial.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            let entries = try OutputLogReader(directory: path).readAll()
            let bytes = Self.chunks(of: entries).flatMap(\.bytes)
            #expect(Array(stream.suffix(bytes.count - 32_000)) == Array(bytes.suffix(bytes.count - 32_000)))
            let totals = try OutputLogReader(directory: path).totals()
            #expect(totals.stored == recorder.totals.storedBytes)
        }
    }

    @Test func garbageInASegmentIsReportedAsCorruptNotReturnedAsOutput() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/x"
        let recorder = OutputRecorder(directory: path, cap: 64 << 20)
        Array("fine\n".utf8).withUnsafeBytes { recorder.append(.stdout, $0) }
        recorder.finish()
        let fd = open(path + "/head", O_WRONLY | O_APPEND)
        let garbage: [UInt8] = [9] + [UInt8](repeating: 0, count: 20)
        _ = garbage.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        #expect(throws: StoreError.self) { try OutputLogReader(directory: path).readAll() }
    }

    /// Regression (found by Fuzz/FuzzOutputLog): a tail segment's start offset (the output bytes before it) was
    /// taken as written, so a segment starting so far on that the bytes dropped before it, or the stream offset
    /// after its first record, overflowed 64 bits crashed the reader (`logs`, recovery of lost executions at start,
    /// restore) on an arithmetic overflow; one starting inside output already read moved the stream back. The writer
    /// never writes either: each is corrupt stored output now.
    @Test(arguments: [
        [Int64.min, Int64.max],  // 2^64 - 1 bytes "dropped" between the two tails
        [Int64.max - 2],  // its 3-byte record ends past 2^63 - 1
        [1],  // starts inside the 5 bytes the head holds
    ])
    func tailsThatDoNotFollowTheOutputBeforeThemAreCorrupt(starts: [Int64]) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/x"
        let recorder = OutputRecorder(directory: path, cap: 64 << 20)
        Array("head\n".utf8).withUnsafeBytes { recorder.append(.stdout, $0) }
        recorder.finish()
        for (index, start) in starts.enumerated() {
            let segment =
                OutputLogFormat.magic + OutputLogFormat.bigEndian(start)
                + OutputLogFormat.recordHeader(.stdout, length: 3, tUsec: 1) + Array("abc".utf8)
            let fd = open(path + "/" + OutputLogFormat.segmentName(index + 1), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            _ = segment.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        let reader = OutputLogReader(directory: path)
        let error = #expect(throws: StoreError.self) { try reader.readAll() }
        #expect(error?.code == .corrupt)
        #expect(throws: StoreError.self) { try reader.totals() }
        // What the head holds, all sound, reads as before.
        let (entries, _) = try reader.read(from: .start, upTo: recorder.committed)
        #expect(Self.chunks(of: entries) == [Chunk(stream: .stdout, bytes: Array("head\n".utf8))])
    }
}

/// Recorded input (issue 16, item 2): records of kind 3 in the same files, within the same cap, counted apart.
struct RecordedInputStoreTests {
    @Test func inputChunksRoundTripAndCountAgainstTheCap() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let recorder = OutputRecorder(directory: directory.path + "/x", cap: 4096)
        let typed = [UInt8](repeating: UInt8(ascii: "k"), count: 1000)
        for _ in 0..<20 { typed.withUnsafeBytes { recorder.append(.stdin, $0) } }
        Array("bye\n".utf8).withUnsafeBytes { recorder.append(.stdout, $0) }
        recorder.finish()
        let totals = recorder.totals
        #expect(totals.stdinBytes == 20_000 && totals.stdoutBytes == 4)
        #expect(totals.storedBytes <= 4096 + 1000 && totals.droppedBytes == 20_004 - totals.storedBytes)
        let entries = try recorder.reader.readAll()
        #expect(entries.contains { if case .dropped = $0 { true } else { false } })
        #expect(
            entries.last
                == .chunk(
                    .stdout, Array("bye\n".utf8),
                    tUsec: { if case .chunk(_, _, let t) = entries.last! { t } else { 0 } }()))
        let counted = try recorder.reader.totals()
        #expect(counted.stdin + counted.stdout == counted.stored && counted.stored == totals.storedBytes)
        #expect(OutputLogFormat.stream(OutputLogFormat.kind(.stdin)) == .stdin)
        #expect(OutputLogFormat.stream(4) == nil)
    }
}

extension OutputRecorderTests {
    @Test func aFollowerOfOutputCutShortUnderItIsToldAndAClosedOneReadsNothing() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path)
        let id = ExecutionStoreTests.id(1)
        let recorder = store.makeRecorder(id, cap: 1 << 20)
        for n in 0..<2 { Array("line \(n)\n".utf8).withUnsafeBytes { recorder.append(.stdout, $0) } }
        let follower = recorder.follow()
        // The records the recorder counts as committed are gone from the file (cut by someone, or a bad disk).
        truncate(store.outputDirectory(id) + "/head", Int(OutputLogFormat.segmentHeaderSize))
        let error = await #expect(throws: StoreError.self) { _ = try await follower.next() }
        #expect(error?.code == .corrupt)
        #expect(
            error?.message
                == "stored output in \(store.outputDirectory(id)) cannot be read past \(OutputPosition.start)")
        follower.close()
        #expect(try await follower.next() == nil)
        recorder.finish()
    }
}
