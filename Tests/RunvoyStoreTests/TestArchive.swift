import Crypto
import Foundation

@testable import RunvoyStore

/// A backup archive taken apart into its members, to be altered and packed again as someone handing the
/// administrator a hostile or damaged file would.
struct TestArchive {
    struct Member {
        var name: String
        var bytes: [UInt8]
        /// A header written as is instead of one made from `name` and the size of `bytes`.
        var header: [UInt8]?
    }

    var members: [Member]

    init(members: [Member]) { self.members = members }

    /// Reads the members of the archive at `path` (a well-formed one: the writer's).
    init(_ path: String) throws {
        let data = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        var offset = 0
        var found: [Member] = []
        while !TarFormat.isZero(data[offset..<offset + TarFormat.blockSize]) {
            let member = try TarFormat.parse(data[offset..<offset + TarFormat.blockSize])
            let start = offset + TarFormat.blockSize
            found.append(Member(name: member.name, bytes: Array(data[start..<start + Int(member.size)])))
            offset = start + Int(member.size) + TarFormat.padding(after: member.size)
        }
        members = found
    }

    /// The bytes of the member `path` (under `runvoy-backup/`); setting nil removes it, setting a new one appends it.
    subscript(path: String) -> [UInt8]? {
        get { members.first { $0.name == BackupLayout.root + "/" + path }?.bytes }
        set {
            let name = BackupLayout.root + "/" + path
            guard let newValue else { return members.removeAll { $0.name == name } }
            if let index = members.firstIndex(where: { $0.name == name }) {
                members[index].bytes = newValue
            } else {
                members.append(Member(name: name, bytes: newValue))
            }
        }
    }

    /// The manifest; setting it writes it and a digest that matches it, as a careful forger would.
    var manifest: BackupManifest {
        get throws { try JSONDecoder().decode(BackupManifest.self, from: Data(self[BackupLayout.manifest] ?? [])) }
    }

    mutating func setManifest(_ manifest: BackupManifest) throws {
        setManifestBytes(Array(try JSONEncoder().encode(manifest)))
    }

    /// Changes the manifest and writes a digest that matches it.
    mutating func editManifest(_ edit: (inout BackupManifest) -> Void) throws {
        var manifest = try self.manifest
        edit(&manifest)
        try setManifest(manifest)
    }

    /// Writes `bytes` as the manifest with a digest that matches it.
    mutating func setManifestBytes(_ bytes: [UInt8]) {
        self[BackupLayout.manifest] = bytes
        self[BackupLayout.manifestDigest] = Array(BackupLayout.digestLine(Self.sha256(bytes)).utf8)
    }

    /// Replaces the data member `path` and its size and SHA-256 in the manifest, so that only what is inside
    /// the member is wrong.
    mutating func replaceListed(_ path: String, with bytes: [UInt8]) throws {
        var manifest = try self.manifest
        self[path] = bytes
        manifest.files.removeAll { $0.path == path }
        manifest.files.append(.init(path: path, size: Int64(bytes.count), sha256: Self.sha256(bytes)))
        try setManifest(manifest)
    }

    /// The archive as tar(1) writes it: headers, data, padding, two zero blocks, padding to a whole record.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        for member in members {
            out += member.header ?? TarFormat.header(name: member.name, size: Int64(member.bytes.count), mtime: 1)
            out += member.bytes + [UInt8](repeating: 0, count: TarFormat.padding(after: Int64(member.bytes.count)))
        }
        out += [UInt8](repeating: 0, count: 2 * TarFormat.blockSize)
        let record = TarFormat.recordSize
        return out + [UInt8](repeating: 0, count: (record - out.count % record) % record)
    }

    func write(to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A header for `name` of `size` bytes with `edit` applied, its checksum made right again.
    static func header(name: String, size: Int64, _ edit: (inout [UInt8]) -> Void = { _ in }) -> [UInt8] {
        var block = TarFormat.header(name: name, size: size, mtime: 1)
        edit(&block)
        block.replaceSubrange(148..<156, with: TarFormat.octal(Int64(TarFormat.checksum(block)), width: 7) + [32])
        return block
    }

    static func sha256(_ bytes: [UInt8]) -> String { Hex.string(SHA256.hash(data: bytes)) }
}
