import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyStore

/// The backup writer when the state directory misbehaves under it: gone, full, its work folder emptied, stored
/// output removed, replaced, or cut short while it is copied. A fault is said with its error code; output
/// retention removed meanwhile is recorded as pruned in the copy; no work folder stays behind.
@Suite(.serialized)
struct BackupWriterFaultTests {
    static func writer(
        _ store: ExecutionStore, live: @escaping @Sendable (String) -> OutputPosition? = { _ in nil }
    ) throws(StoreError) -> BackupWriter {
        try BackupWriter(store: store, softwareVersion: "test", key: nil, livePosition: live)
    }

    /// Streams the whole archive into `path`, calling `between` with each piece once it is produced.
    static func drain(
        _ writer: BackupWriter, to path: String, maxBytes: Int = 65536, between: ([UInt8]) -> Void = { _ in }
    ) throws(StoreError) {
        var bytes: [UInt8] = []
        while let piece = try writer.next(maxBytes: maxBytes) {
            bytes += piece
            between(piece)
        }
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    /// The error `body` throws.
    static func failure(_ body: () throws(StoreError) -> Void) -> StoreError? {
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }

    /// The writer's work folder in `state`.
    static func work(_ state: String) -> String? {
        FileSystem.entries(state).first { $0.hasPrefix(".backup-") }.map { state + "/" + $0 }
    }

    /// Whether `piece` is the tar header of member `name` (under `runvoy-backup/`).
    static func isHeader(_ piece: [UInt8], of name: String) -> Bool {
        piece.count == TarFormat.blockSize && (try? TarFormat.parse(piece[...]))?.name == "runvoy-backup/" + name
    }

    @Test func aStateDirectoryThatIsGoneIsSaid() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let state = directory.path + "/state"
        let store = try ExecutionStore(stateDirectory: state)
        _ = system("rm -rf '\(state)'")
        let error = try #require(Self.failure { () throws(StoreError) in _ = try Self.writer(store) })
        #expect(error.code == .database)
        #expect(error.message == "cannot create a work folder in \(state): No such file or directory")
    }

    @Test func aWorkFolderEmptiedUnderTheWriterIsSaidNotArchived() throws {
        let fixture = try BackupTests.Fixture()
        defer { fixture.directory.remove() }
        let archive = fixture.directory.path + "/backup.tar"
        for (member, code, says) in [
            (BackupLayout.database, StoreError.Code.database, "the copy of the history"),
            (BackupLayout.manifest, .output, "the backup manifest"),
        ] {
            let writer = try Self.writer(fixture.store)
            let work = try #require(Self.work(fixture.state))
            unlink(work + "/" + member)
            let error = try #require(Self.failure { () throws(StoreError) in try Self.drain(writer, to: archive) })
            #expect(error.code == code && error.message == "\(says) disappeared from \(work)")
            writer.discard()
            #expect(Self.work(fixture.state) == nil)
        }
    }

    @Test func outputThatRetentionRemovesWhileTheBackupRunsIsMarkedPrunedInTheCopyOnly() throws {
        let fixture = try BackupTests.Fixture()
        defer { fixture.directory.remove() }
        // Execution 7's folder goes before its turn; execution 3's tail segments while its head is being copied.
        let (gone, cut) = (ExecutionStoreTests.id(7), ExecutionStoreTests.id(3))
        let tails = FileSystem.entries(fixture.store.outputDirectory(cut)).filter { $0.hasPrefix("tail.") }
        try #require(!tails.isEmpty)
        let writer = try Self.writer(fixture.store)
        _ = system("rm -rf '\(fixture.store.outputDirectory(gone))'")
        let archive = fixture.directory.path + "/backup.tar"
        try Self.drain(writer, to: archive, maxBytes: TarFormat.blockSize) { piece in
            guard Self.isHeader(piece, of: "output/\(cut)/head") else { return }
            for tail in tails { unlink(fixture.store.outputDirectory(cut) + "/" + tail) }
        }
        let listed = try TestArchive(archive).manifest.files.map(\.path)
        #expect(!listed.contains { $0.hasPrefix("output/\(gone)/") || $0.hasPrefix("output/\(cut)/tail.") })

        let target = fixture.directory.path + "/restored"
        _ = try BackupTests.restore(archive, into: target, key: fixture.key)
        let restored = try ExecutionStore(stateDirectory: target)
        for id in [gone, cut] {
            let copy = try #require(try restored.get(id))
            #expect(copy.outputPruned && copy.storedBytes == 0, "\(id)")
            // The live history is the writer's to read, never to change.
            let live = try #require(try fixture.store.get(id))
            #expect(!live.outputPruned && live.storedBytes > 0, "\(id)")
        }
        let kept = try #require(try restored.get(ExecutionStoreTests.id(8)))
        #expect(!kept.outputPruned && kept.storedBytes > 0)
    }

    @Test func aRunningExecutionIsCopiedUpToItsCommittedPositionAcrossSegments() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path + "/state")
        let id = ExecutionStoreTests.id(1)
        try store.insert(ExecutionStoreTests.info(id, status: .running, createdAtMs: 1000))
        // Head 2048 bytes, tails 1024: lines 0..<128 fill the head, 128..<192 tail.1, the rest go to tail.2.
        let recorder = store.makeRecorder(id, cap: 4096)
        func line(_ n: Int) -> [UInt8] { Array("line \(String(n + 10000)) ....\n".utf8) }
        var committed = recorder.committed
        for n in 0..<200 {
            if n == 160 { committed = recorder.committed }
            line(n).withUnsafeBytes { recorder.append(.stdout, $0) }
        }
        try #require(line(0).count == 16 && committed.segment == 1)
        let (tail1, tail2) = (OutputLogFormat.segmentName(1), OutputLogFormat.segmentName(2))
        try #require(Set(FileSystem.entries(store.outputDirectory(id))) == ["head", tail1, tail2])

        let live = committed
        let writer = try Self.writer(store) { $0 == id ? live : nil }
        let archive = directory.path + "/backup.tar"
        try Self.drain(writer, to: archive)
        #expect(
            try TestArchive(archive).manifest.files.map(\.path).filter { $0.hasPrefix("output/") }.sorted()
                == ["output/\(id)/head", "output/\(id)/\(tail1)"])
        let target = directory.path + "/restored"
        #expect(try BackupTests.restore(archive, into: target).markedLost == 1)
        let restored = try ExecutionStore(stateDirectory: target)
        let output = try OutputLogReader(directory: restored.outputDirectory(id)).readAll()
        let bytes = output.flatMap { entry -> [UInt8] in if case .chunk(_, let bytes, _) = entry { bytes } else { [] } }
        #expect(bytes == (0..<160).flatMap(line))
        #expect(try restored.get(id)?.stdoutBytes == 160 * 16)
        recorder.finish()
    }

    @Test func aSegmentReplacedByALinkOrAFolderOrCutShortIsSaid() throws {
        let fixture = try BackupTests.Fixture()
        defer { fixture.directory.remove() }
        let id = ExecutionStoreTests.id(5)
        let head = fixture.store.outputDirectory(id) + "/head"
        let saved = try Data(contentsOf: URL(fileURLWithPath: head))
        let archive = fixture.directory.path + "/backup.tar"
        func failure(maxBytes: Int = 65536, between: ([UInt8]) -> Void = { _ in }) throws -> StoreError {
            let writer = try Self.writer(fixture.store)
            defer {
                writer.discard()
                #expect(Self.work(fixture.state) == nil)
            }
            return try #require(
                Self.failure { () throws(StoreError) in
                    try Self.drain(writer, to: archive, maxBytes: maxBytes, between: between)
                })
        }

        unlink(head)
        symlink(fixture.directory.path + "/elsewhere", head)
        var error = try failure()
        #expect(error.code == .output && error.message == "cannot open \(head): Too many levels of symbolic links")

        unlink(head)
        mkdir(head, 0o700)
        _ = FileManager.default.createFile(atPath: head + "/x", contents: Data("x".utf8))
        error = try failure()
        #expect(error.code == .output && error.message == "cannot read output/\(id)/head: pread: Is a directory")
        _ = system("rm -rf '\(head)'")

        try saved.write(to: URL(fileURLWithPath: head))
        error = try failure(maxBytes: TarFormat.blockSize) { piece in
            if Self.isHeader(piece, of: "output/\(id)/head") { truncate(head, 100) }
        }
        #expect(error.code == .output && error.message == "output/\(id)/head became shorter while it was copied")
    }

    @Test func discardingInTheMiddleOfAMemberClosesItAndRemovesTheWorkFolder() throws {
        let fixture = try BackupTests.Fixture()
        defer { fixture.directory.remove() }
        let writer = try Self.writer(fixture.store)
        let work = try #require(Self.work(fixture.state))
        var piece = try #require(try writer.next(maxBytes: TarFormat.blockSize))
        while !Self.isHeader(piece, of: "output/\(ExecutionStoreTests.id(5))/head") {
            piece = try #require(try writer.next(maxBytes: TarFormat.blockSize))
        }
        _ = try writer.next(maxBytes: TarFormat.blockSize)
        writer.discard()
        #expect(Self.work(fixture.state) == nil)
        // A writer that was discarded has nothing more to give.
        let error = try #require(Self.failure { () throws(StoreError) in _ = try writer.next() })
        #expect(error.message == "the copy of the history disappeared from \(work)")
    }

    @Test func aManifestLargerThanItsBufferIsWrittenWhole() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let store = try ExecutionStore(stateDirectory: directory.path + "/state")
        // 160 executions of three stored segments each: about 480 manifest entries of some 150 bytes.
        for n in 0..<160 {
            let id = ExecutionStoreTests.id(n)
            try store.insert(ExecutionStoreTests.info(id, createdAtMs: 1000 + Int64(n)))
            let recorder = store.makeRecorder(id, cap: 64)
            for _ in 0..<6 { Array("sixteen bytes..\n".utf8).withUnsafeBytes { recorder.append(.stdout, $0) } }
            recorder.finish()
        }
        let archive = directory.path + "/backup.tar"
        try Self.drain(try Self.writer(store), to: archive)
        let manifest = try #require(TestArchive(archive)[BackupLayout.manifest])
        #expect(manifest.count > 1 << 16)
        let report = try BackupTests.restore(archive, into: directory.path + "/restored")
        #expect(report.executions == 160 && report.files == 160 * 3 + 1)
    }
}
