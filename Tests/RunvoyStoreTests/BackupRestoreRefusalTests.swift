import Crypto
import Foundation
import GRDB
import Glibc
import RunvoyKit
import Testing

@testable import RunvoyStore

/// A backup file is untrusted input: someone hands it to the administrator. Every way it can be damaged, forged
/// or aimed outside the target is refused with a message that says what is wrong, and nothing is left behind.
@Suite(.serialized)
struct BackupRestoreRefusalTests {
    /// A backup of `BackupTests.Fixture` taken apart, and where to write altered copies and restore them.
    struct Setup {
        let fixture: BackupTests.Fixture
        let original: TestArchive
        let bad: String
        let target: String

        init(includeKey: Bool = false) throws {
            fixture = try BackupTests.Fixture()
            let path = fixture.directory.path + "/backup.tar"
            _ = try fixture.backup(to: path, includeKey: includeKey)
            original = try TestArchive(path)
            bad = fixture.directory.path + "/bad.tar"
            target = fixture.directory.path + "/restored"
        }

        /// Restores `archive` and returns the refusal; checks that neither the target nor a work folder is left.
        func refusal(
            _ archive: TestArchive, sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> String {
            try archive.write(to: bad)
            return try refusal(of: bad, sourceLocation: sourceLocation)
        }

        func refusal(of path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
            let message = try #require(
                BackupTests.refusal(path, into: target, key: fixture.key), sourceLocation: sourceLocation)
            #expect(access(target, F_OK) != 0, "\(message)", sourceLocation: sourceLocation)
            #expect(
                !FileSystem.entries(fixture.directory.path).contains { $0.contains(".restore-") }, "\(message)",
                sourceLocation: sourceLocation)
            return message
        }

        /// Restores the original archive with `edit` applied; returns the refusal.
        func refusal(
            sourceLocation: SourceLocation = #_sourceLocation, editing edit: (inout TestArchive) throws -> Void
        ) throws -> String {
            var archive = original
            try edit(&archive)
            return try refusal(archive, sourceLocation: sourceLocation)
        }

        /// The archive with `member` put in at `index`.
        func inserting(_ member: TestArchive.Member, at index: Int) -> TestArchive {
            var archive = original
            archive.members.insert(member, at: index)
            return archive
        }

        /// Where the header of member `index` starts.
        func offset(of index: Int) -> Int {
            original.members.prefix(index).reduce(0) {
                $0 + TarFormat.blockSize + $1.bytes.count + TarFormat.padding(after: Int64($1.bytes.count))
            }
        }

        func remove() { fixture.directory.remove() }
    }

    static let id = ExecutionStoreTests.id(5)

    @Test func membersNamedOutsideTheBackupOrWithPathTricksAreRefusedBeforeAnythingIsWritten() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let names = [
            "../etc/passwd", "/etc/cron.d/runvoy", "runvoy-backup/../../etc/passwd", "runvoy-backup/./history.sqlite",
            "runvoy-backup//history.sqlite", "runvoy-backup/history.sqlite-wal", "runvoy-backup/secrets.key/x",
            "runvoy-backup/output/\(Self.id)/../../../../tmp/x", "runvoy-backup/output/\(Self.id)/head/x",
            "runvoy-backup/output/\(Self.id)/", "runvoy-backup/output/ABCDEFGHJKMNPQRSTVWXYZ0123/head",
            "runvoy-backup/output/\(String(repeating: "i", count: 26))/head", "runvoy-backup/output/\(Self.id)/tail.0",
            "runvoy-backup/output/\(Self.id)/tail.x", "runvoy-backup/output/\(Self.id)/tail.01",
            "runvoy-backup/output/\(Self.id)/tail.1",
            "runvoy-backup/output/\(Self.id)/tail.+1", "runvoy-backup/output/head", "runvoy-backup",
        ]
        let last = setup.original.members.count - 2
        for name in names {
            // First, and after the data members (which were extracted by then and must go again).
            for index in [0, last] {
                let message = try setup.refusal(setup.inserting(.init(name: name, bytes: Array("x".utf8)), at: index))
                #expect(message == "the archive holds '\(name)', which is not part of a runvoy backup")
            }
        }
    }

    @Test func theUstarPrefixFieldIsJoinedToTheNameAndCheckedLikeIt() throws {
        let setup = try Setup()
        defer { setup.remove() }
        // GNU tar puts long names in the prefix field: an archive written that way restores.
        var split = setup.original
        for index in split.members.indices {
            let name = split.members[index].name
            let slash = try #require(name.lastIndex(of: "/"))
            split.members[index].header = TestArchive.header(
                name: String(name[name.index(after: slash)...]), size: Int64(split.members[index].bytes.count)
            ) { block in
                block.replaceSubrange(345..<345 + slash.utf16Offset(in: name), with: Array(name[..<slash].utf8))
            }
        }
        try split.write(to: setup.bad)
        #expect(try BackupTests.restore(setup.bad, into: setup.target, key: setup.fixture.key).executions == 21)
        BackupRestore.removeAll(setup.target)

        // ... and a prefix cannot take a name out of the backup.
        for (prefix, name) in [("/etc", "passwd"), ("runvoy-backup/..", "history.sqlite"), ("..", "runvoy-backup")] {
            let header = TestArchive.header(name: name, size: 1) { block in
                block.replaceSubrange(345..<345 + prefix.utf8.count, with: Array(prefix.utf8))
            }
            let message = try setup.refusal(setup.inserting(.init(name: "", bytes: [1], header: header), at: 0))
            #expect(message == "the archive holds '\(prefix)/\(name)', which is not part of a runvoy backup")
        }
    }

    @Test func linksFoldersAndUnreadableHeadersAreRefusedWithWhatIsWrongAndWhere() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let damaged = "the archive is damaged or not a runvoy backup: a member header at byte"
        let index = 3
        let at = setup.offset(of: index)
        let cases: [(edit: (inout [UInt8]) -> Void, says: String)] = [
            ({ $0[156] = UInt8(ascii: "2") }, "is not a plain file (tar type '2')"),  // a symbolic link
            ({ $0[156] = UInt8(ascii: "1") }, "is not a plain file (tar type '1')"),  // a hard link
            ({ $0[156] = UInt8(ascii: "5") }, "is not a plain file (tar type '5')"),  // a folder
            ({ $0[156] = 0x01 }, "is not a plain file (tar type 0x01)"),
            ({ $0.replaceSubrange(124..<136, with: Array("zzzzzzzzzzz\0".utf8)) }, "has an unreadable size field"),
            (
                { $0.replaceSubrange(124..<136, with: [UInt8](repeating: 32, count: 12)) },
                "has an unreadable size field"
            ),
            // GNU base-256, larger than any file can be.
            (
                { $0.replaceSubrange(124..<136, with: [0x80] + [UInt8](repeating: 0xff, count: 11)) },
                "has an unreadable size field"
            ),
        ]
        for (edit, says) in cases {
            let header = TestArchive.header(name: BackupLayout.root + "/" + BackupLayout.database, size: 0, edit)
            let message = try setup.refusal(setup.inserting(.init(name: "", bytes: [], header: header), at: index))
            #expect(message == "\(damaged) \(at) \(says)")
        }
        // A checksum field that holds no digits at all.
        let blank = TestArchive.header(name: "runvoy-backup/history.sqlite", size: 0).enumerated().map {
            (148..<156).contains($0.offset) ? 32 : $0.element
        }
        let message = try setup.refusal(setup.inserting(.init(name: "", bytes: [], header: blank), at: index))
        #expect(message == "\(damaged) \(at) fails its checksum")
        // Not a tar file at all.
        try Data(repeating: UInt8(ascii: "A"), count: 4096).write(to: URL(fileURLWithPath: setup.bad))
        #expect(try setup.refusal(of: setup.bad) == "\(damaged) 0 fails its checksum")
    }

    @Test func anEmptyBlockInsideTheArchiveADuplicateOrAnOversizedManifestIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let zero = TestArchive.Member(name: "", bytes: [], header: [UInt8](repeating: 0, count: 512))
        #expect(
            try setup.refusal(setup.inserting(zero, at: 4))
                == "the archive is damaged: a header block is empty (at byte \(setup.offset(of: 4)))")

        for path in [BackupLayout.database, BackupLayout.manifest, "output/\(Self.id)/head"] {
            let member = try #require(setup.original.members.first { $0.name == "runvoy-backup/" + path })
            #expect(
                try setup.refusal(setup.inserting(member, at: setup.original.members.count))
                    == "the archive holds 'runvoy-backup/\(path)' twice")
        }

        // A manifest said to be a GiB long is refused before any of it is read.
        var huge = setup.original
        let manifest = try #require(huge.members.firstIndex { $0.name == "runvoy-backup/manifest.json" })
        huge.members[manifest].header = TarFormat.header(name: "runvoy-backup/manifest.json", size: 1 << 30, mtime: 1)
        #expect(try setup.refusal(huge) == "runvoy-backup/manifest.json is implausibly large")
    }

    @Test func anArchiveWithoutItsManifestOrWithOneThatIsNotOursIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let noManifest = "the archive has no manifest: it is not a runvoy backup, or it was cut short"
        #expect(try setup.refusal { $0[BackupLayout.manifest] = nil } == noManifest)
        #expect(try setup.refusal { $0[BackupLayout.manifestDigest] = nil } == noManifest)
        // An empty archive: just the end marker.
        #expect(try setup.refusal(TestArchive(members: [])) == noManifest)

        let unreadable = "the manifest cannot be read: it is not a runvoy backup of a known format"
        for text in ["not json", "{}", "[]", #"{"format":"runvoy-backup","format_version":1}"#] {
            #expect(try setup.refusal { $0.setManifestBytes(Array(text.utf8)) } == unreadable, "\(text)")
        }
        let foreign = try setup.refusal { archive in try archive.editManifest { $0.format = "tarball" } }
        #expect(foreign == "the archive is not a runvoy backup (format 'tarball')")
    }

    @Test func theManifestAndTheMembersMustAgreeFileForFile() throws {
        let setup = try Setup()
        defer { setup.remove() }
        let head = "output/\(Self.id)/head"
        // A member taken out, the manifest untouched.
        #expect(try setup.refusal { $0[head] = nil } == "\(head) is in the manifest but not in the archive")
        // A member the manifest does not list (a careful forger reseals the manifest).
        let unlisted = try setup.refusal { archive in
            try archive.editManifest { manifest in manifest.files.removeAll { $0.path == head } }
        }
        #expect(unlisted == "\(head) is in the archive but not in the manifest")
        // No history at all.
        let noHistory = try setup.refusal { archive in
            archive[BackupLayout.database] = nil
            try archive.editManifest { manifest in manifest.files.removeAll { $0.path == BackupLayout.database } }
        }
        #expect(noHistory == "the archive holds no history.sqlite")
        // The manifest says the key is included and the archive has none, or the other way round.
        let disagree = "the manifest and the archive disagree about whether the master key is included"
        #expect(try setup.refusal { archive in try archive.editManifest { $0.includesKey = true } } == disagree)
        let key = [UInt8](repeating: 7, count: 32)
        #expect(try setup.refusal { try $0.replaceListed(BackupLayout.key, with: key) } == disagree)
        // A key that is not 256 bits.
        let short = try setup.refusal { archive in
            try archive.editManifest { $0.includesKey = true }
            try archive.replaceListed(BackupLayout.key, with: [UInt8](repeating: 7, count: 16))
        }
        #expect(short == "secrets.key in the archive is not a 256-bit key")
    }

    @Test func aHistoryThatIsNotTheOneTheManifestNamesOrIsDamagedIsRefused() throws {
        let setup = try Setup()
        defer { setup.remove() }
        // The manifest names an older schema than the history has.
        let applied = try setup.original.manifest.schema
        let older = Array(applied.dropLast())
        #expect(
            try setup.refusal { archive in try archive.editManifest { $0.schema = older } }
                == "the history's schema (\(applied.joined(separator: ", "))) is not the one the manifest names "
                + "(\(older.joined(separator: ", ")))")

        // Not an SQLite file.
        let notADatabase = try setup.refusal {
            try $0.replaceListed(BackupLayout.database, with: Array(repeating: 0x42, count: 8192))
        }
        #expect(notADatabase.hasPrefix("the history in the archive cannot be read: "), "\(notADatabase)")
        #expect(notADatabase.contains("not a database"), "\(notADatabase)")

        // An SQLite file whose index disagrees with its table.
        let database = setup.fixture.directory.path + "/damaged.sqlite"
        try Data(try #require(setup.original[BackupLayout.database])).write(to: URL(fileURLWithPath: database))
        try Self.breakIndex(database)
        let broken = Array(try Data(contentsOf: URL(fileURLWithPath: database)))
        let damaged = try setup.refusal { try $0.replaceListed(BackupLayout.database, with: broken) }
        #expect(damaged.hasPrefix("the history in the archive fails SQLite's integrity check: ["), "\(damaged)")
    }

    /// Declares an index of `executions` in the reverse order of the one stored, as a damaged file would have it.
    static func breakIndex(_ path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA writable_schema = ON")
            try db.execute(
                sql: "UPDATE sqlite_master SET sql = replace(sql, 'created_at, id', 'created_at DESC, id DESC') "
                    + "WHERE name = 'executions_by_time'")
            try db.execute(sql: "PRAGMA writable_schema = OFF")
        }
        try queue.close()
    }
}
