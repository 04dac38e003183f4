import Crypto
import Foundation
import GRDB
import Testing

@testable import RunvoyStore

struct SecretStoreTests {
    /// `holdsKey` (health's check of the key file) is true for the same key only, wherever another differs.
    @Test func holdsKeyComparesWholeKeys() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let bytes = (0..<32).map { UInt8($0 * 3 + 1) }
        let secrets = try SecretStore(
            store: try ExecutionStore(stateDirectory: directory.path), key: SymmetricKey(data: bytes))
        #expect(secrets.holdsKey(SymmetricKey(data: bytes)))
        for position in [0, 16, 31] {
            var other = bytes
            other[position] ^= 0x80
            #expect(!secrets.holdsKey(SymmetricKey(data: other)))
        }
    }

    @Test func valuesAreSealedAtRestAndOnlyTheRightKeyOpensThem() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let key = SymmetricKey(size: .bits256)
        let value = Array("correct horse battery staple".utf8)
        do {
            let history = try ExecutionStore(stateDirectory: directory.path)
            let secrets = try SecretStore(store: history, key: key)
            #expect(try secrets.set("db-pass", value: value, description: "db", uid: 1000, user: "alice", atMs: 5))
            #expect(try secrets.value("db-pass") == value)
            #expect(try secrets.value("nope") == nil)
            // Rotation keeps the owner and the description, and counts versions.
            #expect(
                try !secrets.set(
                    "db-pass", value: Array("another value".utf8), description: nil, uid: 0, user: "root", atMs: 9))
            let info = try #require(try secrets.info("db-pass"))
            #expect(info.ownerUser == "alice" && info.ownerUid == 1000 && info.updatedBy == "root")
            #expect(info.version == 2 && info.description == "db" && info.createdAtMs == 5 && info.updatedAtMs == 9)
            #expect(try secrets.list().map(\.name) == ["db-pass"])
            try history.checkpoint()
        }
        // Nothing on disk holds the plaintext.
        for file in ["history.sqlite", "history.sqlite-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: directory.path + "/" + file))) ?? Data()
            #expect(bytes.range(of: Data("another value".utf8)) == nil, "\(file)")
            #expect(bytes.range(of: Data("correct horse".utf8)) == nil, "\(file)")
        }
        #expect(SecretStore.owners(databasePath: directory.path + "/history.sqlite")?.keys.sorted() == ["db-pass"])

        let reopened = try ExecutionStore(stateDirectory: directory.path)
        #expect(try SecretStore(store: reopened, key: key).value("db-pass") == Array("another value".utf8))
        let wrong = #expect(throws: StoreError.self) {
            try SecretStore(store: reopened, key: SymmetricKey(size: .bits256))
        }
        #expect(wrong?.message.contains("does not match") == true)
    }

    @Test func aValueMovedToAnotherNameDoesNotOpen() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let history = try ExecutionStore(stateDirectory: directory.path)
        let secrets = try SecretStore(store: history, key: SymmetricKey(size: .bits256))
        try secrets.set("a", value: Array("value-a-123".utf8), description: nil, uid: 0, user: "root", atMs: 1)
        try secrets.set("b", value: Array("value-b-456".utf8), description: nil, uid: 0, user: "root", atMs: 1)
        try history.write { db in
            try db.execute(
                sql: "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE name = 'a') WHERE name = 'b'")
        }
        let error = #expect(throws: StoreError.self) { try secrets.value("b") }
        #expect(error?.code == .corrupt)
        #expect(try secrets.remove("b"))
        #expect(try !secrets.remove("b"))
    }
}

extension SecretStoreTests {
    /// `--check-config` reads who owns which secret without the key: nothing where there is no store or it is
    /// not one, no owners in an SQLite file without secrets.
    @Test func ownersAreNilWithoutAStoreAndEmptyInADatabaseWithoutSecrets() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        #expect(SecretStore.owners(databasePath: directory.path + "/none.sqlite") == nil)
        let garbage = directory.path + "/garbage.sqlite"
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: garbage))
        #expect(SecretStore.owners(databasePath: garbage) == nil)
        let other = directory.path + "/other.sqlite"
        let queue = try DatabaseQueue(path: other)
        try queue.write { db in try db.execute(sql: "CREATE TABLE notes (text TEXT)") }
        try queue.close()
        #expect(SecretStore.owners(databasePath: other) == [:])
    }
}
