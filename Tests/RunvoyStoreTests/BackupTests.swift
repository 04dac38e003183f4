import Crypto
import Foundation
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyStore

/// Backup archives: written while the history changes, read back only when every check passes.
@Suite(.serialized)
struct BackupTests {
    /// A history with finished executions and output (one over its cap), a running one, and two secrets.
    struct Fixture {
        let directory = TemporaryDirectory()
        let store: ExecutionStore
        let key = SymmetricKey(size: .bits256)
        let running: OutputRecorder
        var state: String { directory.path + "/state" }

        init() throws {
            store = try ExecutionStore(stateDirectory: directory.path + "/state")
            for n in 0..<20 {
                try store.insert(ExecutionStoreTests.info(ExecutionStoreTests.id(n), createdAtMs: 1000 + Int64(n)))
                let recorder = store.makeRecorder(ExecutionStoreTests.id(n), cap: n == 3 ? 4096 : 1 << 20)
                for line in 0..<(n * 50) {
                    let text = Array("execution \(n) line \(line)\n".utf8)
                    text.withUnsafeBytes { recorder.append(line % 7 == 0 ? .stderr : .stdout, $0) }
                }
                recorder.finish()
                try store.finish(
                    ExecutionStoreTests.id(n),
                    .init(
                        status: .succeeded, pid: 10, exitCode: 0, signal: nil, startedAtMs: 1000, finishedAtMs: 2000,
                        durationUsec: 5, totals: recorder.totals, reason: nil))
            }
            try store.insert(ExecutionStoreTests.info(ExecutionStoreTests.id(99), status: .running, createdAtMs: 5000))
            running = store.makeRecorder(ExecutionStoreTests.id(99), cap: 1 << 20)
            Array("still going\n".utf8).withUnsafeBytes { running.append(.stdout, $0) }
            let secrets = try SecretStore(store: store, key: key)
            try secrets.set(
                "db-pass", value: Array("hunter2-hunter2".utf8), description: nil, uid: 0, user: "root", atMs: 1)
            try secrets.set(
                "api", value: Array("s3cr3t-value".utf8), description: "x", uid: 1000, user: "alice", atMs: 2)
        }

        /// Writes an archive to `path`, reading the running execution's committed position.
        func backup(to path: String, includeKey: Bool = false, maxBytes: Int = 65536) throws -> BackupWriter.Summary {
            let running = running
            let writer = try BackupWriter(
                store: store, softwareVersion: "test",
                key: includeKey ? SecretStore(store: store, key: key).keyBytes : nil,
                livePosition: { $0 == ExecutionStoreTests.id(99) ? running.committed : nil })
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            defer { close(fd) }
            while let piece = try writer.next(maxBytes: maxBytes) {
                #expect(piece.count <= maxBytes)
                _ = piece.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            }
            return writer.summary
        }
    }

    static func restore(
        _ archive: String, into target: String, key: SymmetricKey? = nil
    ) throws(BackupError) -> BackupRestore.Report {
        try BackupRestore.restore(archive: archive, into: target) { archiveKey in
            if let archiveKey { return (SymmetricKey(data: archiveKey), "the archive") }
            return key.map { ($0, "the test") }
        }
    }

    static func refusal(_ archive: String, into target: String, key: SymmetricKey? = nil) -> String? {
        do {
            _ = try restore(archive, into: target, key: key)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func anArchiveRestoresEveryRecordOutputAndSecretAndTarReadsIt() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let archive = fixture.directory.path + "/backup.tar"
        let summary = try fixture.backup(to: archive)
        // Output written after the backup is not in it.
        Array("after the backup\n".utf8).withUnsafeBytes { fixture.running.append(.stdout, $0) }
        #expect(summary.executions == 21 && summary.runningExecutions == 1 && !summary.includesKey)
        var info = stat()
        #expect(stat(archive, &info) == 0 && Int64(info.st_size) == summary.bytes)
        #expect(summary.bytes % Int64(TarFormat.recordSize) == 0)
        // No work folder is left in the state directory.
        #expect(!FileSystem.entries(fixture.state).contains { $0.hasPrefix(".backup-") })

        // tar(1) reads it, and sha256sum checks the manifest.
        let listing = try Self.shell("tar tf '\(archive)'")
        #expect(listing.contains("runvoy-backup/history.sqlite\n"))
        #expect(listing.hasSuffix("runvoy-backup/manifest.json\nrunvoy-backup/manifest.json.sha256\n"))
        let unpacked = fixture.directory.path + "/unpacked"
        _ = try Self.shell(
            "mkdir '\(unpacked)' && tar xf '\(archive)' -C '\(unpacked)' && cd '\(unpacked)/runvoy-backup' && sha256sum -c manifest.json.sha256"
        )

        let target = fixture.directory.path + "/restored"
        let report = try Self.restore(archive, into: target, key: fixture.key)
        #expect(report.executions == 21 && report.markedLost == 1 && report.secrets == 2 && report.secretsVerified)
        #expect(!report.keyInstalled)
        #expect(stat(target, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(stat(target + "/history.sqlite", &info) == 0 && info.st_mode & 0o777 == 0o600)

        let restored = try ExecutionStore(stateDirectory: target)
        for n in 0..<20 {
            let id = ExecutionStoreTests.id(n)
            #expect(try restored.get(id) == fixture.store.get(id))
            #expect(
                try OutputLogReader(directory: restored.outputDirectory(id)).readAll()
                    == OutputLogReader(directory: fixture.store.outputDirectory(id)).readAll())
        }
        let lost = try #require(try restored.get(ExecutionStoreTests.id(99)))
        #expect(lost.status == .lost && lost.stdoutBytes == 12 && lost.reason?.contains("backup") == true)
        let output = try OutputLogReader(directory: restored.outputDirectory(ExecutionStoreTests.id(99))).readAll()
        #expect(
            output.map { if case .chunk(_, let bytes, _) = $0 { bytes } else { [] } } == [Array("still going\n".utf8)])
        let secrets = try SecretStore(store: restored, key: fixture.key)
        #expect(try secrets.value("db-pass") == Array("hunter2-hunter2".utf8))
        #expect(try secrets.value("api") == Array("s3cr3t-value".utf8))
        #expect(try restored.integrityCheck() == ["ok"])
    }

    @Test func theKeyTravelsOnlyWhenAskedAndThenOpensTheSecrets() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let without = fixture.directory.path + "/without.tar"
        _ = try fixture.backup(to: without)
        let raw = try Data(contentsOf: URL(fileURLWithPath: without))
        let keyBytes = fixture.key.withUnsafeBytes { Data($0) }
        #expect(raw.range(of: keyBytes) == nil)
        #expect(!(try Self.shell("tar tf '\(without)'")).contains("secrets.key"))
        // Without a key the secrets are restored unchecked; with a wrong one the restore is refused.
        let unchecked = try Self.restore(without, into: fixture.directory.path + "/unchecked")
        #expect(!unchecked.secretsVerified && unchecked.secrets == 2)
        let wrong = Self.refusal(
            without, into: fixture.directory.path + "/wrong", key: SymmetricKey(size: .bits256))
        #expect(wrong?.contains("do not open with the master key") == true)
        #expect(access(fixture.directory.path + "/wrong", F_OK) != 0)

        let with = fixture.directory.path + "/with.tar"
        #expect(try fixture.backup(to: with, includeKey: true).includesKey)
        let report = try Self.restore(with, into: fixture.directory.path + "/keyed")
        #expect(report.keyInstalled && report.secretsVerified && report.keySource == "the archive")
        let installed = try Data(contentsOf: URL(fileURLWithPath: fixture.directory.path + "/keyed/secrets.key"))
        #expect(installed == keyBytes)
    }

    @Test func aTruncatedOrAlteredArchiveIsRefusedAndLeavesNothing() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let archive = fixture.directory.path + "/backup.tar"
        _ = try fixture.backup(to: archive)
        let good = try Data(contentsOf: URL(fileURLWithPath: archive))
        let bad = fixture.directory.path + "/bad.tar"
        let target = fixture.directory.path + "/restored"
        func refused(_ bytes: Data) throws -> String {
            try bytes.write(to: URL(fileURLWithPath: bad))
            let message = try #require(Self.refusal(bad, into: target, key: fixture.key))
            #expect(access(target, F_OK) != 0, "\(message)")
            #expect(
                !FileSystem.entries(fixture.directory.path).contains { $0.contains(".restore-") }, "\(message)")
            return message
        }
        // Cut anywhere: inside a header or a member, at a member boundary, before or inside the end marker.
        let digestHeader = try #require(good.range(of: Data("runvoy-backup/manifest.json.sha256".utf8)))
        let contentEnd = digestHeader.lowerBound + 1024
        for cut in [100, 512, 700, good.count / 2, contentEnd - 512, contentEnd - 1, contentEnd, contentEnd + 512] {
            let message = try refused(good.prefix(cut))
            #expect(message.contains("truncated"), "\(cut): \(message)")
        }
        // One byte flipped inside a data file (the first member's data, after its header).
        var flipped = good
        flipped[512 + 20] ^= 0x01
        #expect(try refused(flipped).contains("does not match the manifest"))
        // A header's byte changed.
        var header = good
        header[3] ^= 0x01
        #expect(try refused(header).contains("checksum"))
        // The manifest edited (same length, one digit changed).
        let manifestRange = try #require(good.range(of: Data("\"created_at_ms\":".utf8)))
        var edited = good
        let digit = manifestRange.upperBound
        edited[digit] = edited[digit] == UInt8(ascii: "1") ? UInt8(ascii: "2") : UInt8(ascii: "1")
        #expect(try refused(edited).contains("manifest was altered"))
    }

    @Test func anUnknownFormatOrANewerSchemaIsRefusedWithAClearMessage() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let archive = fixture.directory.path + "/backup.tar"
        _ = try fixture.backup(to: archive)
        let unpacked = fixture.directory.path + "/unpacked"
        _ = try Self.shell("mkdir '\(unpacked)' && tar xf '\(archive)' -C '\(unpacked)'")
        let folder = unpacked + "/runvoy-backup"
        let original = try String(contentsOfFile: folder + "/manifest.json", encoding: .utf8)
        /// Repacks with an edited manifest and a digest that matches it (GNU tar writes ustar like ours).
        func repack(_ manifest: String) throws -> String {
            try manifest.write(toFile: folder + "/manifest.json", atomically: false, encoding: .utf8)
            _ = try Self.shell(
                "cd '\(folder)' && sha256sum manifest.json > manifest.json.sha256 && cd .. && "
                    + "tar --format=ustar -cf '\(fixture.directory.path)/repacked.tar' "
                    + "$(tar tf '\(archive)')")
            return fixture.directory.path + "/repacked.tar"
        }
        let target = fixture.directory.path + "/restored"
        // Repacked unchanged, GNU tar's archive restores: the format is plain ustar.
        #expect(try Self.restore(repack(original), into: target, key: fixture.key).executions == 21)
        _ = try Self.shell("rm -rf '\(target)'")

        let future = original.replacingOccurrences(of: "\"format_version\":1", with: "\"format_version\":2")
        #expect(Self.refusal(try repack(future), into: target)?.contains("format version 2") == true)
        let last = try #require(ExecutionStore.schemaVersions.last)
        let newer = original.replacingOccurrences(of: "\"\(last)\"]", with: "\"\(last)\",\"v9-future\"]")
        #expect(Self.refusal(try repack(newer), into: target)?.contains("newer schema (v9-future)") == true)
        #expect(access(target, F_OK) != 0)
    }

    @Test func onlyAnEmptyOrNewDirectoryIsRestoredInto() throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let archive = fixture.directory.path + "/backup.tar"
        _ = try fixture.backup(to: archive)
        #expect(Self.refusal(archive, into: fixture.state)?.contains("is not empty") == true)
        let empty = fixture.directory.path + "/empty"
        mkdir(empty, 0o755)
        #expect(try Self.restore(archive, into: empty + "/").executions == 21)
        var info = stat()
        #expect(stat(empty, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test func tarHeadersRoundTripIncludingLargeSizes() throws {
        for size: Int64 in [0, 1, 511, 512, 0o77777777777, 0o77777777777 + 1, 1 << 40] {
            let header = TarFormat.header(name: "runvoy-backup/x", size: size, mtime: 1_700_000_000)
            #expect(try TarFormat.parse(header[...]) == TarFormat.Member(name: "runvoy-backup/x", size: size))
        }
    }

    @discardableResult
    static func shell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BackupError("`\(command)` failed with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
