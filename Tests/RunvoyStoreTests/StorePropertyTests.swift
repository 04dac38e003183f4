import Crypto
import Foundation
import Glibc
import PropertyBased
import RunvoyKit
import Testing

@testable import RunvoyStore

/// Properties of stored output, history, secrets, backups and redaction, each against an in-memory model or an
/// outside reference (the record layout of OutputLogFormat's documentation, GNU tar, Foundation).
struct StorePropertyTests {
    /// A fresh directory on tmpfs when there is one: the store tests open a database per case, and SQLite's
    /// fsyncs on a disk would make them take seconds instead of milliseconds.
    static func scratch() -> TemporaryDirectory {
        var info = stat()
        guard stat("/dev/shm", &info) == 0, info.st_mode & S_IFMT == S_IFDIR, access("/dev/shm", W_OK) == 0 else {
            return TemporaryDirectory()
        }
        var template = Array("/dev/shm/runvoy-props.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { return TemporaryDirectory() }
        return TemporaryDirectory(existing: String(cString: made))
    }

    // MARK: - Stored output at any crash point (docs/ARCHITECTURE.md, OutputLogFormat)

    static let chunk = zip(Gen.bool, Gen<UInt8>.value().array(of: 0...300))

    /// A single-segment log cut at any byte (a crash in the middle of any write) reads back exactly the chunks
    /// whose records lie wholly before the cut, computed from the documented layout (16-byte segment header,
    /// 13-byte record header), never an error and never a partial or invented chunk.
    @Test func aLogCutAtAnyByteReadsTheWholeRecordsBeforeTheCut() async throws {
        let directory = Self.scratch()
        defer { directory.remove() }
        await propertyCheck(count: 200, input: Self.chunk.array(of: 0...12), Gen.int(in: 0...5000)) { chunks, cut in
            let folder = directory.path + "/log"
            FileSystem.removeTree(folder)
            let writer = try OutputLogWriter(directory: folder, cap: 1 << 30)
            let written = chunks.filter { !$0.1.isEmpty }
            for (stderr, bytes) in written {
                bytes.withUnsafeBytes { try? writer.append(stderr ? .stderr : .stdout, $0, tUsec: 7) }
            }
            writer.close()
            var end = 16
            let ends = written.map { chunk -> Int in
                end += 13 + chunk.1.count
                return end
            }
            let size = end
            let offset = cut % (size + 1)
            #expect(truncate(folder + "/head", off_t(offset)) == 0)
            let expected = zip(written, ends).filter { $0.1 <= offset }.map {
                OutputEntry.chunk($0.0.0 ? .stderr : .stdout, $0.0.1, tUsec: 7)
            }
            let read = try? OutputLogReader(directory: folder).readAll()
            #expect(read == expected, "cut at \(offset) of \(size)")
        }
    }

    /// With rotation (a small cap, so head, tails and deletions), cutting the segment being written at any byte
    /// reads a prefix of what the uncut log reads, entry by entry: a crash never makes earlier output unreadable.
    @Test func aRotatedLogCutAtAnyByteReadsAPrefix() async throws {
        let directory = Self.scratch()
        defer { directory.remove() }
        await propertyCheck(
            count: 150, input: Self.chunk.array(of: 1...16), Gen.int(in: 160...2000), Gen.int(in: 0...5000)
        ) { chunks, cap, cut in
            let folder = directory.path + "/log"
            FileSystem.removeTree(folder)
            let writer = try OutputLogWriter(directory: folder, cap: Int64(cap))
            for (stderr, bytes) in chunks {
                bytes.withUnsafeBytes { try? writer.append(stderr ? .stderr : .stdout, $0, tUsec: 1) }
                writer.collect(oldestInUse: nil)
            }
            writer.close()
            let reader = OutputLogReader(directory: folder)
            let whole = try reader.readAll()
            let last = folder + "/" + OutputLogFormat.segmentName(writer.segment)
            var info = stat()
            stat(last, &info)
            let offset = off_t(cut) % (info.st_size + 1)
            #expect(truncate(last, offset) == 0)
            let read = try? reader.readAll()
            #expect(read.map { whole.starts(with: $0) } == true, "cut \(last) at \(offset)")
            // Output before the segment being written is all still there.
            let before = whole.filter {
                if case .chunk = $0 { return true } else { return false }
            }.count
            let after = (read ?? []).filter {
                if case .chunk = $0 { return true } else { return false }
            }.count
            #expect(after <= before)
        }
    }

    /// Reading in pieces (any `maxBytes`, each read resuming at the position the previous one returned, up to a
    /// limit or not) gives exactly what one `readAll` gives.
    @Test func readingInPiecesFromReturnedPositionsEqualsReadingAll() async throws {
        let directory = Self.scratch()
        defer { directory.remove() }
        await propertyCheck(
            count: 150, input: Self.chunk.array(of: 1...16), Gen.int(in: 160...2000), Gen.int(in: 1...200)
        ) { chunks, cap, step in
            let folder = directory.path + "/log"
            FileSystem.removeTree(folder)
            let writer = try OutputLogWriter(directory: folder, cap: Int64(cap))
            for (stderr, bytes) in chunks {
                bytes.withUnsafeBytes { try? writer.append(stderr ? .stderr : .stdout, $0, tUsec: 3) }
            }
            let committed = writer.committed
            writer.close()
            let reader = OutputLogReader(directory: folder)
            let whole = try reader.readAll()
            for limit in [nil, committed] {
                var pieces: [OutputEntry] = []
                var position = OutputPosition.start
                for _ in 0..<10_000 {
                    let (entries, next) = try reader.read(from: position, upTo: limit, maxBytes: step)
                    pieces += entries
                    if next == position { break }
                    position = next
                }
                #expect(pieces == whole)
                #expect(position.streamOffset == committed.streamOffset)
            }
            // Stored bytes plus dropped bytes are every byte written.
            let totals = try reader.totals()
            #expect(totals.stored + totals.dropped == Int64(chunks.reduce(0) { $0 + $1.1.count }))
        }
    }

    /// Segment names read back as their index and sort (as names) in index order up to the largest six-digit one.
    @Test func segmentNamesRoundTripAndSortInOrder() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...999_999), Gen.int(in: 0...999_999)) { a, b in
            #expect(OutputLogFormat.segmentIndex(OutputLogFormat.segmentName(a)) == a)
            if a > 0 && b > 0 {
                #expect((OutputLogFormat.segmentName(a) < OutputLogFormat.segmentName(b)) == (a < b))
            }
            #expect(OutputLogFormat.segmentIndex("tail.\(-a - 1)") == nil)
        }
    }

    // MARK: - History (docs/CONFIGURATION.md "history", docs/PROTOCOL.md "list")

    static func info(
        _ n: Int, status: ExecutionStatus, uid: UInt32, executor: String, created: Int64, stored: Int64 = 0,
        argv: [String] = ["echo"]
    ) -> ExecutionInfo {
        let digits = String(n)
        return ExecutionInfo(
            executionId: String(repeating: "0", count: 26 - digits.count) + digits, status: status, callerUid: uid,
            callerUser: uid == 1002 ? "#1002" : "u\(uid)", callerPid: 1, executor: executor, runAs: "nobody:nogroup",
            argv: argv, workingDirectory: "/", envKeys: [], pid: nil, exitCode: nil, signal: nil, createdAtMs: created,
            startedAtMs: nil, finishedAtMs: nil, durationUsec: nil, stdoutBytes: stored, stderrBytes: 0,
            storedBytes: stored, droppedBytes: 0, outputPruned: false, configDigest: "d", reason: nil)
    }

    static let record = zip(
        Gen<ExecutionStatus?>.element(of: ExecutionStatus.allCases).map { $0! }, Gen<UInt32>.value(in: 1000...1002),
        Gen.bool, Gen<Int64>.value(in: 0...15))
    static let query = zip(
        Gen.int(in: -2...40).optional,
        Gen<ExecutionStatus?>.element(of: ExecutionStatus.allCases).array(of: 0...3)
            .optional,
        Gen<String?>.element(of: ["u1000", "u1001", "#1002", "nobody"]).map { $0! }.optional(valueRate: 0.3),
        Gen.bool.optional(valueRate: 0.3), Gen<Int64>.value(in: 0...16).optional(valueRate: 0.3),
        Gen<UInt32>.value(in: 1000...1003).optional(valueRate: 0.4))

    /// `list` returns what a model computes from the documented rules: the owner's (or everyone's) executions
    /// matching every filter given, newest first (ties by id, newest first), at most `limit` clamped to 1...1000.
    @Test func listFiltersOrdersAndLimitsLikeTheModel() async throws {
        await propertyCheck(count: 40, input: Self.record.array(of: 0...40), Self.query.array(of: 1...8)) {
            records, queries in
            let directory = Self.scratch()
            defer { directory.remove() }
            let store = try ExecutionStore(stateDirectory: directory.path)
            let infos = records.enumerated().map { n, r in
                Self.info(n, status: r.0, uid: r.1, executor: r.2 ? "a" : "b", created: r.3)
            }
            try store.insertMany(infos)
            for (limit, statuses, user, executor, since, owner) in queries {
                let params = ListParams(
                    limit: limit, status: statuses?.compactMap { $0 }, user: user,
                    executor: executor.map { $0 ? "a" : "b" },
                    sinceMs: since)
                let statusSet = Set(params.status ?? [])
                let expected = infos.filter { info in
                    (owner == nil || info.callerUid == owner) && (statusSet.isEmpty || statusSet.contains(info.status))
                        && (params.user == nil || info.callerUser == params.user)
                        && (params.executor == nil || info.executor == params.executor)
                        && (since == nil || info.createdAtMs >= since!)
                }.sorted { ($0.createdAtMs, $0.executionId) > ($1.createdAtMs, $1.executionId) }
                    .prefix(min(max(limit ?? 50, 1), 1000))
                #expect(
                    try store.list(params, ownerUid: owner) == Array(expected),
                    "\(params) owner \(String(describing: owner))")
            }
        }
    }

    /// The documented record size of an execution: its argv and environment names as stored (JSON text, here of
    /// plain words: brackets, quotes and commas) and 256 bytes for the rest.
    static func recordBytes(_ info: ExecutionInfo) -> Int64 {
        func json(_ words: [String]) -> Int64 {
            Int64(2 + words.reduce(0) { $0 + $1.utf8.count + 2 } + max(0, words.count - 1))
        }
        return json(info.argv) + json(info.envKeys) + 256
    }

    /// Retention against a model written from docs/CONFIGURATION.md: finished executions older than the age limit
    /// go (record and output); then, while stored output plus records is over the size limit, the oldest finished
    /// executions lose their output, then their records; running ones are never touched; output folders go with
    /// them, and the report says exactly what went and how many bytes were freed.
    @Test func pruneRemovesWhatTheModelRemoves() async throws {
        let argv = Gen<String?>.element(of: ["echo", "x", String(repeating: "long", count: 100)]).map { $0! }
            .array(of: 1...4)
        let history = zip(
            Gen<ExecutionStatus?>.element(of: ExecutionStatus.allCases).map { $0! }, Gen<Int64>.value(in: 0...30),
            Gen<Int64>.value(in: 0...3000), argv)
        await propertyCheck(
            count: 60, input: history.array(of: 0...25), Gen<Int64>.value(in: 0...32).optional(valueRate: 0.5),
            Gen.int(in: 0...120).optional(valueRate: 0.8)
        ) { records, olderThan, percent in
            let directory = Self.scratch()
            defer { directory.remove() }
            let store = try ExecutionStore(stateDirectory: directory.path)
            var model = records.enumerated().map { n, r in
                Self.info(n, status: r.0, uid: 1000, executor: "a", created: r.1, stored: r.2, argv: r.3)
            }
            try store.insertMany(model)
            for info in model {
                let folder = store.outputDirectory(info.executionId)
                mkdir(folder, 0o700)
                FileManager.default.createFile(atPath: folder + "/head", contents: Data("x".utf8))
            }
            let total0 = model.reduce(Int64(0)) { $0 + $1.storedBytes + Self.recordBytes($1) }
            let maxTotal = percent.map { total0 * Int64($0) / 100 }
            // The model.
            var deleted: Set<String> = []
            var pruned: [String] = []
            var freed: Int64 = 0
            if let olderThan {
                for info in model where info.status.isFinal && info.createdAtMs < olderThan {
                    deleted.insert(info.executionId)
                    freed += info.storedBytes
                }
                model.removeAll { deleted.contains($0.executionId) }
            }
            if let maxTotal {
                var total = model.reduce(Int64(0)) { $0 + $1.storedBytes + Self.recordBytes($1) }
                let oldestFirst = model.indices.filter { model[$0].status.isFinal }.sorted {
                    (model[$0].createdAtMs, model[$0].executionId) < (model[$1].createdAtMs, model[$1].executionId)
                }
                for index in oldestFirst where total > maxTotal {
                    total -= model[index].storedBytes
                    freed += model[index].storedBytes
                    model[index].storedBytes = 0
                    model[index].outputPruned = true
                    pruned.append(model[index].executionId)
                }
                var gone: Set<String> = []
                for index in oldestFirst where total > maxTotal {
                    total -= Self.recordBytes(model[index])
                    freed += Self.recordBytes(model[index])
                    gone.insert(model[index].executionId)
                }
                deleted.formUnion(gone)
                pruned.removeAll { gone.contains($0) }
                model.removeAll { gone.contains($0.executionId) }
            }
            let report = try store.prune(olderThanMs: olderThan, maxTotalBytes: maxTotal)
            #expect(Set(report.deleted) == deleted && report.deleted.count == deleted.count)
            #expect(report.outputPruned == pruned)
            #expect(report.freedBytes == freed)
            let remaining = try store.list(ListParams(limit: 1000), ownerUid: nil)
            #expect(
                remaining.sorted { $0.executionId < $1.executionId } == model.sorted { $0.executionId < $1.executionId }
            )
            for n in records.indices {
                let info = Self.info(n, status: .running, uid: 0, executor: "", created: 0)
                let kept = model.first { $0.executionId == info.executionId }.map { !$0.outputPruned } ?? false
                #expect(access(store.outputDirectory(info.executionId), F_OK) == (kept ? 0 : -1))
            }
        }
    }

    // MARK: - Secrets (docs/PROTOCOL.md "secrets_set", docs/SECURITY.md)

    /// Any sequence of sets, rotations (with and without an administrator taking ownership) and removals leaves the
    /// store as a dictionary model says: values, owners, descriptions, versions and times; `set` says whether it
    /// created, `remove` whether something was there.
    @Test func secretsFollowADictionaryModel() async throws {
        let operation = zip(
            Gen.int(in: 0...3), Gen<String?>.element(of: ["db", "api", "tls-key", "x"]).map { $0! },
            Gen<UInt8>.value().array(of: 0...40),
            Gen<String?>.element(of: ["d1", "d2"]).map { $0! }.optional(valueRate: 0.4),
            Gen<UInt32>.value(in: 1000...1002), Gen.bool(0.3))
        await propertyCheck(count: 40, input: operation.array(of: 1...30)) { operations in
            let directory = Self.scratch()
            defer { directory.remove() }
            let store = try ExecutionStore(stateDirectory: directory.path)
            let secrets = try SecretStore(store: store, key: SymmetricKey(size: .bits256))
            var model: [String: (value: [UInt8], info: SecretStore.Info)] = [:]
            for (step, (kind, name, value, description, uid, takeOwnership)) in operations.enumerated() {
                let at = Int64(step)
                let user = "u\(uid)"
                if kind == 0 {
                    #expect(try secrets.remove(name) == (model.removeValue(forKey: name) != nil))
                    continue
                }
                let created = try secrets.set(
                    name, value: value, description: description, uid: uid, user: user, atMs: at,
                    takeOwnership: takeOwnership)
                #expect(created == (model[name] == nil))
                if var entry = model[name] {
                    entry.value = value
                    entry.info.description = description ?? entry.info.description
                    entry.info.updatedBy = user
                    entry.info.updatedAtMs = at
                    entry.info.version += 1
                    if takeOwnership {
                        entry.info.ownerUid = uid
                        entry.info.ownerUser = user
                    }
                    model[name] = entry
                } else {
                    model[name] = (
                        value,
                        SecretStore.Info(
                            name: name, description: description, ownerUid: uid, ownerUser: user, updatedBy: user,
                            createdAtMs: at, updatedAtMs: at, version: 1)
                    )
                }
            }
            #expect(try secrets.list() == model.keys.sorted().map { model[$0]!.info })
            for name in ["db", "api", "tls-key", "x"] {
                #expect(try secrets.value(name) == model[name]?.value)
                #expect(try secrets.info(name) == model[name]?.info)
            }
        }
    }

    // MARK: - Backup archives (docs/SECURITY.md "backup")

    static let memberName = Gen<String?>.element(of: ["a", "b.txt", "state", "output", "x-y_z", "0"]).map { $0! }
        .array(of: 1...4).map { $0.joined(separator: "/") }

    /// A header reads back as the name and size it was written with, for every size up to and past the octal
    /// field's 8 GiB (GNU base-256); changing any one byte outside the checksum field is detected.
    @Test func tarHeadersRoundTripAndAnyCorruptedByteIsDetected() async {
        await propertyCheck(
            count: 400, input: Self.memberName, Gen<Int64>.value(in: 0...(1 << 40)), Gen.int(in: 0...511),
            Gen<UInt8>.value(in: 1...255)
        ) { name, size, position, delta in
            let header = TarFormat.header(name: name, size: size, mtime: 1_700_000_000)
            #expect(header.count == TarFormat.blockSize)
            #expect((try? TarFormat.parse(header[...])) == TarFormat.Member(name: name, size: size))
            guard !(148..<156).contains(position) else { return }
            var corrupted = header
            corrupted[position] &+= delta
            #expect(throws: TarFormat.HeaderError.badChecksum) { try TarFormat.parse(corrupted[...]) }
        }
    }

    /// Archives built from the headers, data and padding are read by GNU tar (the reference) as exactly the files
    /// written, contents included.
    @Test func gnuTarReadsTheArchivesAsWritten() async throws {
        let directory = Self.scratch()
        defer { directory.remove() }
        let file = zip(Self.memberName, Gen<UInt8>.value().array(of: 0...1500))
        await propertyCheck(count: 15, input: file.array(of: 1...5)) { files in
            // One member per name (a later member would replace an earlier one on extraction).
            var seen: Set<String> = []
            let members = files.filter { name, _ in
                // A name that is also another member's directory cannot be both.
                guard !seen.contains(name),
                    !seen.contains(where: { $0.hasPrefix(name + "/") || name.hasPrefix($0 + "/") })
                else { return false }
                seen.insert(name)
                return true
            }
            var archive: [UInt8] = []
            for (name, bytes) in members {
                archive += TarFormat.header(name: "r/" + name, size: Int64(bytes.count), mtime: 1_700_000_000)
                archive += bytes + [UInt8](repeating: 0, count: TarFormat.padding(after: Int64(bytes.count)))
            }
            archive += [UInt8](repeating: 0, count: 2 * TarFormat.blockSize)
            archive += [UInt8](
                repeating: 0,
                count: (TarFormat.recordSize - archive.count % TarFormat.recordSize) % TarFormat.recordSize)
            #expect(archive.count % TarFormat.recordSize == 0)
            var template = Array((directory.path + "/x.XXXXXX").utf8CString)
            let work = String(cString: mkdtemp(&template)!)
            FileManager.default.createFile(atPath: work + "/a.tar", contents: Data(archive))
            let tar = Process()
            tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
            tar.arguments = ["-x", "-f", work + "/a.tar", "-C", work]
            let errors = Pipe()
            tar.standardError = errors
            try tar.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            tar.waitUntilExit()
            #expect(tar.terminationStatus == 0, "\(message)")
            for (name, bytes) in members {
                #expect(FileManager.default.contents(atPath: work + "/r/" + name).map(Array.init) == bytes, "\(name)")
            }
        }
    }

    // MARK: - Redaction (docs/SECURITY.md "Redaction")

    static let redactionByte = Gen<UInt8?>.element(of: Array("abAB+/=%2".utf8)).map { $0! }

    /// With any chunking and any schedule of idle expiries, what the redactor releases is the whole-buffer
    /// redaction of each stretch of output between expiries that actually fired (a pause longer than the idle delay
    /// ends a stretch, as docs/SECURITY.md says), so no form inside one stretch ever comes out.
    @Test func anyChunkingAndExpiryScheduleRedactsEachStretchWhole() async {
        let secret = Self.redactionByte.array(of: 6...10)
        // Each action: how long to wait, whether it is an expiry check, and which form (or filler) to write.
        let action = zip(Gen.int(in: 0...3), Gen.bool(0.3), Gen.int(in: -1...11), Self.redactionByte.array(of: 0...6))
        await propertyCheck(count: 400, input: secret.array(of: 1...2), action.array(of: 1...40)) { values, actions in
            let named = values.enumerated().map { (name: "s\($0.offset)", value: $0.element) }
            let set = RedactionSet(secrets: named)
            let forms = named.flatMap { RedactionSet.forms(of: $0.value).filter { $0.count >= 6 } }
            let redactor = StreamRedactor(set, idleFlush: .nanoseconds(2))
            var now: Int64 = 0
            var lastFeed: Int64 = 0
            var stretches: [[UInt8]] = []
            var stretch: [UInt8] = []
            var out: [UInt8] = []
            for (wait, isExpiry, which, filler) in actions {
                now += Int64(wait)
                if isExpiry {
                    out += redactor.expire(now: now)
                    if !stretch.isEmpty && now >= lastFeed + 2 {
                        stretches.append(stretch)
                        stretch = []
                    }
                    continue
                }
                let piece = (which >= 0 ? forms[which % forms.count] : []) + filler
                guard !piece.isEmpty else { continue }
                out += piece.withUnsafeBytes { redactor.feed($0, now: now) }
                lastFeed = now
                stretch += piece
            }
            out += redactor.finish()
            stretches.append(stretch)
            #expect(out == stretches.flatMap { set.redact($0) })
        }
    }

    /// The URL-encoded form searched for is the value percent-encoded as RFC 3986 does it (every byte outside the
    /// unreserved set), as Foundation encodes it, in upper- and lower-case hex; and such text inside any output is
    /// replaced.
    @Test func urlEncodedValuesAreTheFormFoundationProduces() async {
        let character = Gen<Character?>.element(of: Array("aZ09-._~ /+?&=%é😀\u{1}")).map { $0! }
        await propertyCheck(
            count: 400, input: character.string(of: 6...16), Gen.letterOrNumber.string(of: 0...6),
            Gen.letterOrNumber.string(of: 0...6)
        ) { value, before, after in
            let unreserved = CharacterSet(
                charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
            let encoded = value.addingPercentEncoding(withAllowedCharacters: unreserved)!
            let bytes = Array(value.utf8)
            let forms = RedactionSet.forms(of: bytes)
            #expect(forms.contains(Array(encoded.utf8)), "\(encoded)")
            #expect(forms.contains(Array(Self.lowerHex(encoded).utf8)), "\(encoded)")
            let set = RedactionSet(secrets: [(name: "k", value: bytes)])
            for text in [encoded, Self.lowerHex(encoded)] {
                let out = String(decoding: set.redact(Array((before + text + after).utf8)), as: UTF8.self)
                #expect(out == before + "[secret:k]" + after, "\(text)")
            }
        }
    }

    /// `%2F` → `%2f`: only the hex digits of escapes in lower case.
    static func lowerHex(_ text: String) -> String {
        var out = ""
        var pending = 0
        for c in text {
            if c == "%" {
                pending = 2
                out.append(c)
            } else if pending > 0 {
                out += c.lowercased()
                pending -= 1
            } else {
                out.append(c)
            }
        }
        return out
    }
}

extension TemporaryDirectory {
    init(existing path: String) { self.path = path }
}
