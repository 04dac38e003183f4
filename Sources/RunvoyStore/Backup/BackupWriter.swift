import Crypto
import GRDB
import Glibc
import RunvoyKit

/// Produces a backup archive (see `BackupLayout`) piece by piece, so that the caller can stream it with bounded
/// memory: `next(maxBytes:)` returns the next bytes of the archive until it returns nil.
///
/// The history is copied first (`ExecutionStore.snapshot`) into a private work folder in the state directory;
/// the archive then holds exactly the executions of that copy and their stored output. Output of an execution
/// that was running at the snapshot is copied up to where its recorder had committed it when its turn came
/// (`livePosition`), so the archive never holds half a record; an execution whose stored output retention
/// removed meanwhile is marked `output_pruned` in the copy, as if retention had run before the snapshot.
///
/// Memory stays at about `maxBytes`: file data is read straight into the returned piece, and the manifest is
/// built in a file of the work folder. Calls block on disk I/O; make them from a thread pool.
///
/// Not thread-safe: it is `@unchecked Sendable` so that one task can hand it to a thread pool call after call;
/// only one call may run at a time.
public final class BackupWriter: @unchecked Sendable {
    /// What the finished archive holds.
    public struct Summary: Sendable, Equatable {
        public var bytes: Int64
        /// SHA-256 of the whole archive, and of its `manifest.json`.
        public var sha256: String
        public var manifestSHA256: String
        public var executions: Int
        public var runningExecutions: Int
        public var files: Int
        public var includesKey: Bool
        public var createdAtMs: Int64
    }

    /// The member being streamed from a file.
    private struct OpenFile {
        var fd: Int32
        var path: String
        var size: Int64
        var offset: Int64 = 0
        var hasher = SHA256()
    }

    private enum Phase {
        case outputs, database, key, manifest, manifestDigest, trailer, done
    }

    private let store: ExecutionStore
    private let key: [UInt8]?
    private let livePosition: @Sendable (String) -> OutputPosition?
    private let workDirectory: String
    private let snapshotPath: String
    private let manifestPath: String
    private var snapshot: DatabaseQueue?
    private var manifest: ManifestBuilder
    private var phase = Phase.outputs
    /// Bytes to send before anything else: a header, padding, a small member.
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var current: OpenFile?
    /// Executions of the snapshot still to copy, a page at a time, and the segments of the one being copied.
    private var page: [(id: String, running: Bool, stored: Bool)] = []
    private var lastID = ""
    private var segments: [(name: String, limit: Int64?)] = []
    private var segmentOwner = ""
    private var segmentOwnerRunning = false
    /// Executions whose stored output disappeared (retention) while the backup ran.
    private var vanished: Set<String> = []
    private var archiveHasher = SHA256()
    private var written: Int64 = 0
    private var counts: (executions: Int, running: Int)
    private var fileCount = 0
    private var manifestDigest = ""
    private let createdAtMs: Int64
    private let mtime: Int64

    /// Copies the history and prepares the archive. `key` is the master key's bytes when it is to be included.
    /// `livePosition` gives, for an execution that is still running, where its stored output is complete now.
    public init(
        store: ExecutionStore, softwareVersion: String, key: [UInt8]?,
        livePosition: @escaping @Sendable (String) -> OutputPosition?
    ) throws(StoreError) {
        self.store = store
        self.key = key
        self.livePosition = livePosition
        Self.removeStaleWork(in: store.stateDirectory)
        var template = Array((store.stateDirectory + "/.backup-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StoreError(.database, "cannot create a work folder in \(store.stateDirectory): \(SystemError.text())")
        }
        workDirectory = String(cString: made)
        snapshotPath = workDirectory + "/" + BackupLayout.database
        manifestPath = workDirectory + "/" + BackupLayout.manifest
        createdAtMs = WallClock.milliseconds()
        mtime = createdAtMs / 1000
        do throws(StoreError) {
            try store.snapshot(into: snapshotPath)
            let queue = try Self.open(snapshotPath)
            snapshot = queue
            let found = try Self.read(queue) { db in
                (
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM executions") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM executions WHERE status IN ('running','queued')")
                        ?? 0,
                    try ExecutionStore.appliedSchema(db)
                )
            }
            counts = (found.0, found.1)
            manifest = try ManifestBuilder(
                path: manifestPath, softwareVersion: softwareVersion, schema: found.2, createdAtMs: createdAtMs,
                includesKey: key != nil)
        } catch {
            FileSystem.removeTree(workDirectory)
            throw error
        }
    }

    deinit {
        discard()
    }

    /// Removes the work folder (also done at the end and on deinit).
    public func discard() {
        if let current { close(current.fd) }
        current = nil
        try? snapshot?.close()
        snapshot = nil
        manifest.close()
        FileSystem.removeTree(workDirectory)
    }

    /// The next bytes of the archive, at most `maxBytes` (at least one block); nil once it is complete.
    public func next(maxBytes: Int = 1 << 20) throws(StoreError) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(maxBytes)
        while out.count < maxBytes {
            if pendingOffset < pending.count {
                let take = min(maxBytes - out.count, pending.count - pendingOffset)
                out += pending[pendingOffset..<pendingOffset + take]
                pendingOffset += take
                continue
            }
            if current != nil {
                try copy(into: &out, maxBytes: maxBytes)
                continue
            }
            guard try advance(produced: out.count) else { break }
        }
        if out.isEmpty { return nil }
        archiveHasher.update(data: out)
        written += Int64(out.count)
        return out
    }

    /// What the archive holds; valid once `next` has returned nil.
    public var summary: Summary {
        Summary(
            bytes: written, sha256: Hex.sha256(archiveHasher), manifestSHA256: manifestDigest,
            executions: counts.executions, runningExecutions: counts.running, files: fileCount,
            includesKey: key != nil, createdAtMs: createdAtMs)
    }

    // MARK: - Steps

    /// Sets up the next member (or the end of the archive), `produced` bytes into the piece being built. False
    /// when everything has been produced.
    private func advance(produced: Int) throws(StoreError) -> Bool {
        switch phase {
        case .outputs:
            if try openNextSegment() { return true }
            phase = .database
            return true
        case .database:
            try markVanished()
            do {
                try snapshot?.close()
            } catch {
                throw StoreError(.database, "cannot close the copy of the history: \(error)")
            }
            snapshot = nil
            guard try openMember(path: snapshotPath, name: BackupLayout.database, limit: nil) else {
                throw StoreError(.database, "the copy of the history disappeared from \(workDirectory)")
            }
            phase = .key
            return true
        case .key:
            if let key { addSmallMember(BackupLayout.key, key, inManifest: true) }
            phase = .manifest
            return true
        case .manifest:
            try manifest.finish(executions: counts.executions, running: counts.running)
            guard try openMember(path: manifestPath, name: BackupLayout.manifest, limit: nil) else {
                throw StoreError(.output, "the backup manifest disappeared from \(workDirectory)")
            }
            phase = .manifestDigest
            return true
        case .manifestDigest:
            addSmallMember(
                BackupLayout.manifestDigest, Array(BackupLayout.digestLine(manifestDigest).utf8), inManifest: false)
            phase = .trailer
            return true
        case .trailer:
            // Two zero blocks, then zeros up to a whole record, as tar writes it.
            let end =
                written + Int64(produced) + Int64(pending.count - pendingOffset) + Int64(2 * TarFormat.blockSize)
            let record = Int64(TarFormat.recordSize)
            let pad = Int((record - end % record) % record)
            setPending([UInt8](repeating: 0, count: 2 * TarFormat.blockSize + pad))
            phase = .done
            return true
        case .done:
            discard()
            return false
        }
    }

    /// Opens the next stored-output segment of the snapshot's executions; false when there is none.
    private func openNextSegment() throws(StoreError) -> Bool {
        while true {
            while let segment = segments.first {
                segments.removeFirst()
                let path = store.outputDirectory(segmentOwner) + "/" + segment.name
                let name = "output/" + segmentOwner + "/" + segment.name
                if try openMember(path: path, name: name, limit: segment.limit) { return true }
                // Gone: a running execution's recorder rotated the segment away (the reader shows the gap as
                // dropped output), or a finished one's folder went to retention.
                if !segmentOwnerRunning { vanished.insert(segmentOwner) }
            }
            guard let execution = try nextExecution() else { return false }
            segmentOwner = execution.id
            segmentOwnerRunning = execution.running
            let directory = store.outputDirectory(execution.id)
            let indices = FileSystem.entries(directory).compactMap(OutputLogFormat.segmentIndex).sorted()
            if indices.isEmpty {
                if !execution.running && execution.stored { vanished.insert(execution.id) }
                continue
            }
            // A live execution is copied up to its committed position: whole records only.
            let live = execution.running ? livePosition(execution.id) : nil
            segments = indices.compactMap { index in
                guard let live else { return (OutputLogFormat.segmentName(index), nil) }
                if index > live.segment { return nil }
                return (OutputLogFormat.segmentName(index), index == live.segment ? live.fileOffset : nil)
            }
        }
    }

    private func nextExecution() throws(StoreError) -> (id: String, running: Bool, stored: Bool)? {
        if page.isEmpty, let snapshot {
            let after = lastID
            page = try Self.read(snapshot) { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT id, status IN ('running', 'queued') AS running, stored_bytes > 0 AS stored
                        FROM executions WHERE output_pruned = 0 AND id > ? ORDER BY id LIMIT 256
                        """, arguments: [after]
                ).map { (id: $0["id"], running: $0["running"], stored: $0["stored"]) }
            }
            if let last = page.last { lastID = last.id }
        }
        guard !page.isEmpty else { return nil }
        return page.removeFirst()
    }

    /// Marks the executions whose output disappeared as pruned in the copy of the history.
    private func markVanished() throws(StoreError) {
        guard !vanished.isEmpty, let snapshot else { return }
        let ids = Array(vanished)
        do {
            try snapshot.write { db in
                for id in ids {
                    try db.execute(
                        sql: "UPDATE executions SET output_pruned = 1, stored_bytes = 0 WHERE id = ?", arguments: [id])
                }
            }
        } catch {
            throw StoreError(.database, "cannot update the copy of the history: \(error)")
        }
    }

    /// Starts streaming the file at `path` as member `name`, at most `limit` bytes of it; false when there is
    /// no such file.
    private func openMember(path: String, name: String, limit: Int64?) throws(StoreError) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return false }
            throw StoreError(.output, "cannot open \(path): \(SystemError.text())")
        }
        let size: Int64
        do {
            size = try PosixFile.size(fd)
        } catch {
            close(fd)
            throw StoreError(.output, "cannot read \(path): \(error)")
        }
        let copied = min(size, limit ?? size)
        setPending(TarFormat.header(name: BackupLayout.root + "/" + name, size: copied, mtime: mtime))
        current = OpenFile(fd: fd, path: name, size: copied)
        return true
    }

    private func copy(into out: inout [UInt8], maxBytes: Int) throws(StoreError) {
        guard var file = current else { return }
        let count = Int(min(Int64(maxBytes - out.count), file.size - file.offset))
        if count > 0 {
            let bytes: [UInt8]
            do {
                bytes = try PosixFile.read(file.fd, at: file.offset, count: count)
            } catch {
                throw StoreError(.output, "cannot read \(file.path): \(error)")
            }
            guard bytes.count == count else {
                throw StoreError(.output, "\(file.path) became shorter while it was copied")
            }
            file.hasher.update(data: bytes)
            file.offset += Int64(count)
            out += bytes
        }
        if file.offset < file.size {
            current = file
            return
        }
        close(file.fd)
        current = nil
        let digest = Hex.sha256(file.hasher)
        if file.path == BackupLayout.manifest {
            manifestDigest = digest
        } else {
            try manifest.add(path: file.path, size: file.size, sha256: digest)
            fileCount += 1
        }
        setPending([UInt8](repeating: 0, count: TarFormat.padding(after: file.size)))
    }

    private func addSmallMember(_ name: String, _ bytes: [UInt8], inManifest: Bool) {
        var hasher = SHA256()
        hasher.update(data: bytes)
        if inManifest {
            try? manifest.add(path: name, size: Int64(bytes.count), sha256: Hex.sha256(hasher))
            fileCount += 1
        }
        let header = TarFormat.header(name: BackupLayout.root + "/" + name, size: Int64(bytes.count), mtime: mtime)
        setPending(
            header + bytes + [UInt8](repeating: 0, count: TarFormat.padding(after: Int64(bytes.count))))
    }

    private func setPending(_ bytes: [UInt8]) {
        if pendingOffset < pending.count {
            pending = Array(pending[pendingOffset...]) + bytes
        } else {
            pending = bytes
        }
        pendingOffset = 0
    }

    // MARK: - Helpers

    /// Removes work folders a backup interrupted by a crash left behind. Only one backup runs at a time.
    static func removeStaleWork(in stateDirectory: String) {
        for name in FileSystem.entries(stateDirectory) where name.hasPrefix(".backup-") {
            FileSystem.removeTree(stateDirectory + "/" + name)
        }
    }

    static func open(_ path: String) throws(StoreError) -> DatabaseQueue {
        var configuration = Configuration()
        configuration.label = "runvoy-backup-copy"
        do {
            return try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw StoreError(.database, "cannot open the copy of the history: \(error)")
        }
    }

    static func read<T>(_ queue: DatabaseQueue, _ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try queue.read(body)
        } catch {
            throw StoreError(.database, "cannot read the copy of the history: \(error)")
        }
    }

}

extension PosixFile {
    /// Writes all of `bytes`; returns the failure instead of throwing it (for use inside `withUnsafeBytes`).
    static func writeAllReporting(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> SystemError? {
        bytes.withUnsafeBytes { raw in
            do throws(SystemError) {
                try writeAll(fd, [raw])
                return nil
            } catch {
                return error
            }
        }
    }
}

/// Writes `manifest.json` to a file as members are added, so that its size does not depend on memory.
struct ManifestBuilder {
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var first = true

    init(
        path: String, softwareVersion: String, schema: [String], createdAtMs: Int64, includesKey: Bool
    ) throws(StoreError) {
        fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.output, "cannot create \(path): \(SystemError.text())") }
        let head =
            "{\"format\":\(JSONText.quoted(BackupLayout.formatName)),\"format_version\":\(BackupLayout.formatVersion),"
            + "\"software_version\":\(JSONText.quoted(softwareVersion)),\"schema\":\(JSONText.array(schema)),"
            + "\"created_at_ms\":\(createdAtMs),\"includes_key\":\(includesKey),\"files\":["
        buffer += Array(head.utf8)
    }

    mutating func add(path: String, size: Int64, sha256: String) throws(StoreError) {
        let entry = "\(first ? "" : ",")\n{\"path\":\(JSONText.quoted(path)),\"size\":\(size),\"sha256\":\"\(sha256)\"}"
        first = false
        buffer += Array(entry.utf8)
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func finish(executions: Int, running: Int) throws(StoreError) {
        buffer += Array("\n],\"executions\":\(executions),\"running_executions\":\(running)}\n".utf8)
        try flush()
        close()
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private mutating func flush() throws(StoreError) {
        if let failure = PosixFile.writeAllReporting(fd, buffer[...]) {
            throw StoreError(.output, "cannot write the backup manifest: \(failure)")
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
