import Crypto
import GRDB
import Glibc
import RunvoyKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Why a restore was refused. The message is for the operator and says what to do where it can.
public struct BackupError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Restores a backup archive (see `BackupLayout`) into a new state directory, offline.
///
/// Everything is checked before the directory appears: the archive is read into a private folder next to the
/// target, every member against the manifest (size and SHA-256), the manifest against its digest, the format
/// version, the history's schema (a newer one is refused) and SQLite's integrity check; executions that were
/// running when the backup was taken are marked `lost`; when a master key is at hand the secrets must open
/// with it. Only then is the folder renamed to the target, so a refused or interrupted restore leaves nothing
/// behind but, at worst, a `.NAME.restore-XXXXXX` folder next to it.
public enum BackupRestore {
    /// What was restored.
    public struct Report: Sendable {
        public var executions: Int
        /// Executions that were running at the backup, now `lost`.
        public var markedLost: Int
        public var secrets: Int
        /// Whether the secrets were opened with a master key (`keySource`); false when no key was at hand.
        public var secretsVerified: Bool
        public var keySource: String?
        /// Whether the archive held the master key, now `DIRECTORY/secrets.key`.
        public var keyInstalled: Bool
        public var createdAtMs: Int64
        public var softwareVersion: String
        public var schema: [String]
        public var files: Int
    }

    /// Given the master key in the archive (nil when it holds none), the key to open the secrets with and where
    /// it came from, or nil when none is at hand (the secrets are then restored without being opened).
    public typealias KeyChoice = (_ archiveKey: [UInt8]?) throws(BackupError) -> (key: SymmetricKey, source: String)?

    public static func restore(
        archive: String, into directory: String, chooseKey: KeyChoice
    ) throws(BackupError) -> Report {
        var target = directory
        while target.count > 1 && target.hasSuffix("/") { target.removeLast() }
        try checkTarget(target)
        let slash = target.lastIndex(of: "/")
        let parent = slash.map { $0 == target.startIndex ? "/" : String(target[..<$0]) } ?? "."
        let base = slash.map { String(target[target.index(after: $0)...]) } ?? target
        var template = Array((parent + "/." + base + ".restore-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BackupError("cannot create a folder in \(parent): \(SystemError.text())")
        }
        let work = String(cString: made)
        do throws(BackupError) {
            let received = try extract(archive, into: work)
            let manifest = try verify(received, work: work)
            let report = try open(work, manifest: manifest, chooseKey: chooseKey)
            unlink(work + "/" + BackupLayout.manifest)
            unlink(work + "/" + BackupLayout.manifestDigest)
            try makePrivate(work)
            guard rename(work, target) == 0 else {
                throw BackupError("cannot move the restored state to \(target): \(SystemError.text())")
            }
            syncDirectory(parent)
            return report
        } catch {
            removeAll(work)
            throw error
        }
    }

    // MARK: - Steps

    /// The target must not exist, or be an empty directory; its parent must exist.
    static func checkTarget(_ target: String) throws(BackupError) {
        var info = stat()
        if lstat(target, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw BackupError("\(target) exists and is not a directory; restore into an empty or new directory")
            }
            guard FileSystem.entries(target).isEmpty else {
                throw BackupError(
                    "\(target) is not empty; restore into an empty or new directory (never over a live state directory)"
                )
            }
        } else if errno != ENOENT {
            throw BackupError("cannot examine \(target): \(SystemError.text())")
        }
    }

    /// What extraction found: every member's size and SHA-256, and the manifest and its digest line.
    struct Received {
        var files: [String: (size: Int64, sha256: String)] = [:]
        var manifest: [UInt8]?
        var manifestSHA256 = ""
        var digestLine: [UInt8]?
    }

    /// Reads the archive into `work`, refusing anything but the members a backup holds.
    static func extract(_ archive: String, into work: String) throws(BackupError) -> Received {
        let fd = Glibc.open(archive, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BackupError("cannot open \(archive): \(SystemError.text())") }
        defer { close(fd) }
        var input = ArchiveInput(fd: fd)
        var received = Received()
        var seen = Set<String>()
        while true {
            let block = try input.read(TarFormat.blockSize, inside: nil)
            if TarFormat.isZero(block[...]) {
                let second = try input.read(TarFormat.blockSize, inside: nil)
                guard TarFormat.isZero(second[...]) else {
                    throw BackupError(
                        "the archive is damaged: a header block is empty (at byte \(input.offset - 1024))")
                }
                return received
            }
            let member: TarFormat.Member
            do throws(TarFormat.HeaderError) {
                member = try TarFormat.parse(block[...])
            } catch {
                throw BackupError(
                    "the archive is damaged or not a runvoy backup: a member header at byte \(input.offset - 512) "
                        + error.explanation)
            }
            let prefix = BackupLayout.root + "/"
            guard member.name.hasPrefix(prefix) else {
                throw BackupError("the archive holds '\(member.name)', which is not part of a runvoy backup")
            }
            let path = String(member.name.dropFirst(prefix.count))
            let isMeta = path == BackupLayout.manifest || path == BackupLayout.manifestDigest
            guard isMeta || BackupLayout.isDataMember(path) else {
                throw BackupError("the archive holds '\(member.name)', which is not part of a runvoy backup")
            }
            guard seen.insert(path).inserted else {
                throw BackupError("the archive holds '\(member.name)' twice")
            }
            if isMeta {
                guard member.size <= 256 << 20 else { throw BackupError("\(member.name) is implausibly large") }
                let bytes = try input.read(Int(member.size), inside: member.name)
                if path == BackupLayout.manifest {
                    var hasher = SHA256()
                    hasher.update(data: bytes)
                    received.manifestSHA256 = Hex.sha256(hasher)
                    received.manifest = bytes
                } else {
                    received.digestLine = bytes
                }
            } else {
                received.files[path] = try input.copy(member, to: work + "/" + path)
            }
            _ = try input.read(TarFormat.padding(after: member.size), inside: member.name)
        }
    }

    /// Checks the members against the manifest and the manifest against its digest.
    static func verify(_ received: Received, work: String) throws(BackupError) -> BackupManifest {
        guard let manifestBytes = received.manifest, let digestLine = received.digestLine else {
            throw BackupError("the archive has no manifest: it is not a runvoy backup, or it was cut short")
        }
        guard digestLine == Array(BackupLayout.digestLine(received.manifestSHA256).utf8) else {
            throw BackupError(
                "manifest.json does not match manifest.json.sha256: the manifest was altered or damaged")
        }
        let manifest: BackupManifest
        do {
            manifest = try JSONDecoder().decode(BackupManifest.self, from: Data(manifestBytes))
        } catch {
            throw BackupError("the manifest cannot be read: it is not a runvoy backup of a known format")
        }
        guard manifest.format == BackupLayout.formatName else {
            throw BackupError("the archive is not a runvoy backup (format '\(manifest.format)')")
        }
        guard manifest.formatVersion == BackupLayout.formatVersion else {
            throw BackupError(
                "the archive has format version \(manifest.formatVersion), which this runvoyd does not read (it reads "
                    + "version \(BackupLayout.formatVersion)); restore it with runvoyd \(manifest.softwareVersion) or later"
            )
        }
        let known = ExecutionStore.schemaVersions
        let unknown = manifest.schema.filter { !known.contains($0) }
        guard unknown.isEmpty else {
            throw BackupError(
                "the history in the archive has a newer schema (\(unknown.joined(separator: ", "))) than this runvoyd "
                    + "knows (\(known.joined(separator: ", "))); restore it with runvoyd \(manifest.softwareVersion) or later"
            )
        }
        var listed = Set<String>()
        for file in manifest.files {
            listed.insert(file.path)
            guard let got = received.files[file.path] else {
                throw BackupError("\(file.path) is in the manifest but not in the archive")
            }
            guard got.size == file.size, got.sha256 == file.sha256 else {
                throw BackupError(
                    "\(file.path) is damaged: its size or SHA-256 does not match the manifest; nothing was restored")
            }
        }
        for path in received.files.keys where !listed.contains(path) {
            throw BackupError("\(path) is in the archive but not in the manifest")
        }
        guard received.files[BackupLayout.database] != nil else {
            throw BackupError("the archive holds no \(BackupLayout.database)")
        }
        guard manifest.includesKey == (received.files[BackupLayout.key] != nil) else {
            throw BackupError("the manifest and the archive disagree about whether the master key is included")
        }
        return manifest
    }

    /// Opens the restored history: checks schema and integrity, marks running executions `lost`, and opens the
    /// secrets when a key is at hand.
    static func open(
        _ work: String, manifest: BackupManifest, chooseKey: KeyChoice
    ) throws(BackupError) -> Report {
        let databasePath = work + "/" + BackupLayout.database
        do {
            var configuration = Configuration()
            configuration.readonly = true
            let queue = try DatabaseQueue(path: databasePath, configuration: configuration)
            let (applied, integrity) = try queue.read { db in
                (try ExecutionStore.appliedSchema(db), try String.fetchAll(db, sql: "PRAGMA integrity_check"))
            }
            try queue.close()
            guard applied == manifest.schema else {
                throw BackupError(
                    "the history's schema (\(applied.joined(separator: ", "))) is not the one the manifest names "
                        + "(\(manifest.schema.joined(separator: ", ")))")
            }
            guard integrity == ["ok"] else {
                throw BackupError("the history in the archive fails SQLite's integrity check: \(integrity.prefix(3))")
            }
        } catch let error as BackupError {
            throw error
        } catch {
            throw BackupError("the history in the archive cannot be read: \(error)")
        }
        var archiveKey: [UInt8]?
        if manifest.includesKey {
            guard let bytes = FileManager.default.contents(atPath: work + "/" + BackupLayout.key), bytes.count == 32
            else {
                throw BackupError("\(BackupLayout.key) in the archive is not a 256-bit key")
            }
            archiveKey = Array(bytes)
        }
        let choice = try chooseKey(archiveKey)
        let store: ExecutionStore
        let lost: Int
        let counts: (executions: Int, secrets: Int)
        do throws(StoreError) {
            store = try ExecutionStore(stateDirectory: work)
            lost = try markLost(store, manifest: manifest)
            counts = try store.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM executions") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM secrets") ?? 0
                )
            }
        } catch {
            throw BackupError(error.message)
        }
        if let choice {
            try openSecrets(store, choice.key, source: choice.source)
        }
        return Report(
            executions: counts.executions, markedLost: lost, secrets: counts.secrets, secretsVerified: choice != nil,
            keySource: choice?.source, keyInstalled: manifest.includesKey, createdAtMs: manifest.createdAtMs,
            softwareVersion: manifest.softwareVersion, schema: manifest.schema, files: manifest.files.count)
    }

    /// Marks the executions that were running when the backup was taken `lost`, with totals counted from their
    /// restored output. No process is looked for: the pids belong to another time, maybe another host.
    static func markLost(_ store: ExecutionStore, manifest: BackupManifest) throws(StoreError) -> Int {
        let unfinished = try store.unfinished()
        let reason =
            "running when the backup of \(utc(manifest.createdAtMs)) was taken; restored with the output stored up to then"
        for info in unfinished {
            let reader = OutputLogReader(directory: store.outputDirectory(info.executionId))
            var totals = OutputRecorder.Totals()
            if reader.exists, let counted = try? reader.totals() {
                totals = .init(
                    stdoutBytes: counted.stdout, stderrBytes: counted.stderr, storedBytes: counted.stored,
                    droppedBytes: counted.dropped, stdinBytes: counted.stdin)
            }
            try store.markLost(info.executionId, atMs: manifest.createdAtMs, reason: reason, totals: totals)
        }
        return unfinished.count
    }

    /// Opens every secret with `key`.
    static func openSecrets(_ store: ExecutionStore, _ key: SymmetricKey, source: String) throws(BackupError) {
        do throws(StoreError) {
            let secrets = try SecretStore(store: store, key: key)
            for info in try secrets.list() {
                guard try secrets.value(info.name) != nil else { continue }
            }
        } catch {
            throw BackupError(
                "the secrets in the archive do not open with the master key from \(source) (\(error.message)); "
                    + "give the key they were sealed with (--key-file), or a backup made with --include-key")
        }
    }

    // MARK: - Files

    /// Files 0600, folders 0700, everything synced to disk.
    static func makePrivate(_ work: String) throws(BackupError) {
        func walk(_ path: String) throws(BackupError) {
            for name in FileSystem.entries(path) {
                let child = path + "/" + name
                var info = stat()
                guard lstat(child, &info) == 0 else {
                    throw BackupError("cannot examine \(child): \(SystemError.text())")
                }
                if info.st_mode & S_IFMT == S_IFDIR {
                    chmod(child, 0o700)
                    try walk(child)
                    syncDirectory(child)
                } else {
                    chmod(child, 0o600)
                }
            }
        }
        chmod(work, 0o700)
        try walk(work)
        syncDirectory(work)
    }

    static func syncDirectory(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Removes a folder of the shape a restore makes (files, and folders of files, two levels deep).
    static func removeAll(_ path: String) {
        for name in FileSystem.entries(path) {
            let child = path + "/" + name
            var info = stat()
            if lstat(child, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR {
                removeAll(child)
            } else {
                unlink(child)
            }
        }
        rmdir(path)
    }

    /// `YYYY-MM-DD HH:MM:SS UTC`.
    public static func utc(_ ms: Int64) -> String {
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) UTC"
    }
}

/// Reads an archive file in order, with its own buffer, and says where it ended when it ends too soon.
struct ArchiveInput {
    let fd: Int32
    /// Bytes of the archive consumed so far.
    private(set) var offset: Int64 = 0
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0
    private var end = 0

    init(fd: Int32) { self.fd = fd }

    /// Exactly `count` bytes; refuses an archive that ends before them.
    mutating func read(_ count: Int, inside member: String?) throws(BackupError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            if start == end { try fill(inside: member) }
            let take = min(count - out.count, end - start)
            out += buffer[start..<start + take]
            start += take
            offset += Int64(take)
        }
        return out
    }

    /// Streams `member`'s data into a new file at `path` (creating its folder), returning its size and SHA-256.
    mutating func copy(_ member: TarFormat.Member, to path: String) throws(BackupError) -> (Int64, String) {
        if let slash = path.lastIndex(of: "/") {
            let folder = String(path[..<slash])
            do {
                try FileSystem.makeDirectories(folder, mode: 0o700)
            } catch {
                throw BackupError("cannot create \(folder): \(error)")
            }
        }
        let out = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard out >= 0 else { throw BackupError("cannot create \(path): \(SystemError.text())") }
        defer { close(out) }
        var hasher = SHA256()
        var remaining = member.size
        while remaining > 0 {
            if start == end { try fill(inside: member.name) }
            let take = Int(min(remaining, Int64(end - start)))
            let chunk = buffer[start..<start + take]
            hasher.update(data: chunk)
            if let failure = PosixFile.writeAllReporting(out, chunk) {
                throw BackupError("cannot write \(path): \(failure)")
            }
            start += take
            offset += Int64(take)
            remaining -= Int64(take)
        }
        guard fsync(out) == 0 else { throw BackupError("cannot write \(path): \(SystemError.text())") }
        return (member.size, Hex.sha256(hasher))
    }

    private mutating func fill(inside member: String?) throws(BackupError) {
        let n = buffer.withUnsafeMutableBytes { bytes in
            SystemCall.retrying { Glibc.read(fd, bytes.baseAddress!, bytes.count) }
        }
        if n < 0 { throw BackupError("cannot read the archive: \(SystemError.text())") }
        if n == 0 {
            throw BackupError(
                "the archive is truncated: it ends at byte \(offset)"
                    + (member.map { ", inside \($0)" } ?? ", before its end marker") + "; nothing was restored")
        }
        start = 0
        end = n
    }
}
