import CRunvoyPosix
import Foundation
import Glibc
import NIOCore
import NIOPosix
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// Promises of docs/SECURITY.md and docs/AUDIT.md that had no test (docs/TESTING.md, "From promise to test"),
/// checked in process through the real exec path.
@Suite struct PromiseGapTests {
    static let root = Caller.resolve(uid: 0, gid: 0, pid: getpid(), hasPidfd: false)

    /// Sends `count` datagrams to the test's journal, leaving room for as many more as its queue
    /// holds beyond them (the kernel queues net.unix.max_dgram_qlen + 1 datagrams).
    static func fill(_ path: String, count: Int) throws {
        let fd = socket(AF_UNIX, SocketKind.datagram, 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let message = Array("MESSAGE=filler\n".utf8)
        for _ in 0..<count {
            let sent = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(
                        fd, message, message.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(sent == message.count)
        }
    }

    /// The queue length of Unix datagram sockets on this machine.
    static var datagramQueueLength: Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/unix/max_dgram_qlen", encoding: .utf8)) ?? "10"
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 10
    }

    /// The `decision` record is written and then the journal stops taking records: the `execution_started` record
    /// cannot be written, so nothing runs, the caller gets `audit_unavailable`, and the history says why.
    @Test func aStartRecordThatCannotBeWrittenAfterTheDecisionRunsNothing() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        try Self.fill(fixture.journald.path, count: Self.datagramQueueLength)
        let spawner = ExecLaunchTests.FailingSpawner(SpawnError(.exec, errno: ENOENT))
        let manager = fixture.manager(spawner)
        do {
            _ = try await manager.start(
                ExecParams(argv: ["true"]), requestID: .number(1), caller: Self.root, config: fixture.config,
                sink: nil
            ) { _ in }
            Issue.record("an execution started without its start record")
        } catch {
            #expect(error.code == .auditUnavailable, "\(error)")
        }
        #expect(spawner.calls == 0, "a process was created")
        let row = try fixture.row()
        #expect(row.status == .failed && row.pid == nil)
        #expect(row.reason?.hasPrefix("audit_unavailable") == true, "\(row.reason ?? "")")
        #expect(fixture.secretFolders.isEmpty)
        let events = fixture.records().map(\.event).filter { $0 != "?" }
        #expect(events == ["decision"], "\(events)")
    }

    /// The command runs in its executor's working directory (`/` unless the configuration says otherwise), not in
    /// the daemon's or the caller's.
    @Test func theCommandRunsInItsExecutorsWorkingDirectory() async throws {
        let fixture = try ExecLaunchTests.Fixture()
        let manager = fixture.manager(PosixSpawner())
        let sink = ExecutionLifetimeTests.CollectingSink()
        let expected = try #require(fixture.config.executor(named: "vault")).workingDirectory
        try await ExecutionLifetimeTests.running(manager) {
            let execution = try await manager.start(
                ExecParams(argv: ["pwd"]), requestID: .number(2), caller: Self.root, config: fixture.config,
                sink: sink
            ) { _ in }
            await execution.waitFinished()
        }
        let stdout = String(decoding: await sink.output[.stdout] ?? [], as: UTF8.self)
        #expect(stdout == expected + "\n")
        #expect(try fixture.row().workingDirectory == expected)
    }
}

// MARK: - Requests in process (docs/PROTOCOL.md, docs/AUDIT.md)

extension PromiseGapTests {
    static func setRequest(id: Int, name: String, value: [UInt8]) -> String {
        #"{"v":1,"id":\#(id),"method":"secrets_set","params":{"name":"\#(name)","value":"\#(Base64.encode(value))"}}"#
    }

    /// docs/PROTOCOL.md, `secrets_set`: a name is 1-64 letters, digits, `_`, `.`, `-`, starting with a letter or
    /// digit, and a value at most 64 KiB. Anything else is refused with `invalid_argument`, stores nothing, and is
    /// audited without repeating the name.
    @Test func secretsSetTakesOnlyWellFormedNamesAndValuesUpTo64KiB() async throws {
        let nameRule =
            "secret names are 1-64 letters, digits, '_', '.', '-', starting with a letter or digit"
        let value = Array("a-good-value".utf8)
        try await InProcessConnection.with(caller: Self.root) { connection in
            let badNames = [
                "", "-lead", ".lead", "_lead", "a b", "a/b", "a:b", "a\\u00e9", "a\\nb",
                String(repeating: "n", count: 65),
            ]
            for (index, name) in badNames.enumerated() {
                await connection.expectReply(
                    to: Self.setRequest(id: index, name: name, value: value),
                    #"{"error":{"code":"invalid_argument","message":"\#(nameRule)"},"id":\#(index)}"#)
            }
            let goodNames = ["a", "Z9", "0.x_y-z", String(repeating: "n", count: 64)]
            for (index, name) in goodNames.enumerated() {
                let reply = await connection.call(Self.setRequest(id: 100 + index, name: name, value: value))
                #expect(reply.contains(#""created":true"#), "\(name): \(reply)")
            }
            // The size bound: exactly 64 KiB is taken, one byte more is not.
            let largest = [UInt8](repeating: 0x41, count: 64 << 10)
            let largestReply = await connection.call(Self.setRequest(id: 200, name: "largest", value: largest))
            #expect(largestReply.contains(#""created":true"#), "\(largestReply)")
            await connection.expectReply(
                to: Self.setRequest(id: 201, name: "too-large", value: largest + [0x41]),
                #"{"error":{"code":"invalid_argument","message":"secret values are at most 65536 bytes"},"id":201}"#)
            let stored = try connection.executions.secrets.list().map(\.name).sorted()
            #expect(stored == (goodNames + ["largest"]).sorted())
            let largestStored = try connection.executions.secrets.value("largest")
            #expect(largestStored == largest)

            let refusals = connection.auditor.events.filter {
                $0.kind == .secretChanged && $0.fields.contains { $0 == ("DECISION", "deny") }
            }
            #expect(refusals.count == badNames.count + 1)
            let namesAudited = Set(refusals.compactMap { $0.fields.first { $0.0 == "SECRET_NAME" }?.1 })
            #expect(namesAudited == ["(invalid name)", "too-large"])
        }
    }

    /// docs/AUDIT.md: `secret_changed` is written before the change, fail-closed. When it cannot be written, a
    /// set, a rotation and a removal are each refused with `audit_unavailable` and nothing changes.
    @Test func aSecretChangeWhoseRecordCannotBeWrittenIsNotMade() async throws {
        try await InProcessConnection.with(caller: Self.root) { connection in
            let first = Array("first-value".utf8)
            let reply = await connection.call(Self.setRequest(id: 1, name: "kept", value: first))
            #expect(reply.contains(#""created":true"#), "\(reply)")
            connection.auditor.refuse([.secretChanged])

            let unavailable = "audit_unavailable"
            let set = await connection.call(Self.setRequest(id: 2, name: "never-set", value: first))
            #expect(set.contains(unavailable), "\(set)")
            let rotate = await connection.call(Self.setRequest(id: 3, name: "kept", value: Array("second-value".utf8)))
            #expect(rotate.contains(unavailable), "\(rotate)")
            let remove = await connection.call(#"{"v":1,"id":4,"method":"secrets_rm","params":{"name":"kept"}}"#)
            #expect(remove.contains(unavailable), "\(remove)")

            let secrets = connection.executions.secrets
            let neverSet = try secrets.info("never-set")
            let kept = try secrets.value("kept")
            let keptVersion = try secrets.info("kept")?.version
            #expect(neverSet == nil)
            #expect(kept == first)
            #expect(keptVersion == 1)
        }
    }

    /// docs/SECURITY.md and AUDIT.md: `backup_key_exported` (priority 2) is written before a backup with the key
    /// starts, fail-closed: when it cannot be written the backup is refused before any archive byte is sent, and
    /// the next backup is not told `busy`.
    @Test func aBackupWithTheKeyIsRefusedWhenItsKeyExportRecordCannotBeWritten() async throws {
        try await InProcessConnection.with(caller: Self.root) { connection in
            connection.auditor.refuse([.backupKeyExported])
            let refused = await connection.call(#"{"v":1,"id":1,"method":"backup","params":{"include_key":true}}"#)
            #expect(refused.hasPrefix(#"{"error":{"code":"audit_unavailable""#), "\(refused)")
            #expect(refused.hasSuffix(#""id":1}"#), "\(refused)")
            #expect(!connection.auditor.events.contains { $0.kind == .backupKeyExported })

            connection.auditor.refuse([])
            let streamed = await connection.call(#"{"v":1,"id":2,"method":"backup","params":{"include_key":true}}"#)
            #expect(streamed.hasPrefix(#"{"id":2,"event":"backup_data""#), "\(streamed.prefix(80))")
            let exported = try #require(connection.auditor.events.first { $0.kind == .backupKeyExported })
            #expect(exported.priority == 2)
            let started = connection.auditor.events.filter {
                $0.kind == .backup && $0.fields.contains { $0 == ("ACTION", "started") }
            }
            #expect(started.map(\.priority) == [5, 5], "one started record per backup, the refused one included")
        }
    }

    /// docs/PROTOCOL.md, `capabilities`: each rule is shown as written, one notation per element kind: literal
    /// words (quoted when they hold a space or a character of the notation), `{a|b}` alternatives, `/RE/` regular
    /// expressions, `<path under DIR>`, a final `*`, and `deny ` before deny rules; `commands: any` is `any`.
    @Test func capabilitiesShowsEveryKindOfPatternElementAsDocumented() async throws {
        let yaml = RouterTests.developerYAML.replacingOccurrences(
            of: "    commands: any",
            with: """
                    commands:
                      - deny: [terraform, destroy, "*"]
                      - [terraform, [plan, apply], "*"]
                      - [systemctl, restart, {regex: "nginx|api(-[a-z]+)?"}]
                      - [tail, -n, {path_under: /var/log/app}]
                      - [echo, "two words", "a|b", "*"]
                  other:
                    run_as: {user: nobody}
                    allow: {users: ["*"]}
                    commands: any

                """)
        #expect(yaml != RouterTests.developerYAML)
        try await InProcessConnection.with(caller: RouterTests.nobody, yaml: yaml) { connection in
            let reply = await connection.call(#"{"v":1,"id":1,"method":"capabilities"}"#)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any], "\(reply)")
            let result = try #require(object["result"] as? [String: Any], "\(reply)")
            let executors = try #require(result["executors"] as? [[String: Any]])
            func rules(_ name: String) -> [[String: Any]] {
                (executors.first { $0["name"] as? String == name }?["rules"] as? [[String: Any]]) ?? []
            }
            let shown = rules("default").map { "\($0["effect"] as? String ?? "?"): \($0["pattern"] as? String ?? "?")" }
            #expect(
                shown == [
                    "deny: deny terraform destroy *",
                    "allow: terraform {plan|apply} *",
                    "allow: systemctl restart /nginx|api(-[a-z]+)?/",
                    "allow: tail -n <path under /var/log/app>",
                    #"allow: echo "two words" "a|b" *"#,
                ])
            #expect(rules("default").allSatisfy { ($0["rule"] as? String)?.contains(":") == true })
            let any = try #require(rules("other").first)
            #expect(rules("other").count == 1)
            #expect(any["pattern"] as? String == "any" && any["effect"] as? String == "allow")
            #expect(any["rule"] is NSNull)
        }
    }
}

// MARK: - Audit priorities, lost records, the runtime directory

extension PromiseGapTests {
    /// The `PRIORITY` column of docs/AUDIT.md's table of kinds, by `RUNVOY_EVENT`.
    static func documentedPriorities() throws -> [String: String] {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        let text = try String(contentsOf: url.appendingPathComponent("docs/AUDIT.md"), encoding: .utf8)
        var table: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            // Rows of the table of kinds: `event` | `MESSAGE_ID` (32 hex digits) | PRIORITY | when.
            guard cells.count >= 4, cells[1].count == 34, cells[1].hasPrefix("`"), cells[1].hasSuffix("`") else {
                continue
            }
            table[String(cells[0].dropFirst().dropLast())] = cells[2]
        }
        return table
    }

    /// The priority docs/AUDIT.md gives `event`, from the column's wording.
    static func documentedPriority(_ event: AuditEvent, column: String) -> Int? {
        let decision = event.fields.first { $0.0 == "DECISION" }?.1
        let action = event.fields.first { $0.0 == "ACTION" }?.1
        switch column {
        case "5 allow, 4 deny": return decision == "allow" ? 5 : 4
        case "5, 4 when it failed": return action == "failed" ? 4 : 5
        default: return Int(column)
        }
    }

    /// docs/AUDIT.md's priorities, per kind, for the records requests make: allowed and refused secret changes,
    /// refused reads and kills, requests a role does not allow, and (with
    /// `aBackupWithTheKeyIsRefusedWhenItsKeyExportRecordCannotBeWritten`) backups and key exports.
    @Test func requestRecordsCarryTheDocumentedPriorityOfTheirKind() async throws {
        let documented = try Self.documentedPriorities()
        // The columns this test reads; a changed wording needs a look at this test.
        #expect(documented["decision"] == "5 allow, 4 deny")
        #expect(documented["execution_kill"] == "5 allow, 4 deny")
        #expect(documented["secret_changed"] == "5 allow, 4 deny")
        #expect(documented["secret_read"] == "4")
        #expect(documented["request_denied"] == "4")
        #expect(documented["backup"] == "5, 4 when it failed")
        #expect(documented["backup_key_exported"] == "2")
        #expect(documented["records_lost"] == "3")
        #expect(Set(documented.keys) == Set(AuditEvent.Kind.allCases.map(\.rawValue)))

        var events: [AuditEvent] = []
        let id = ExecutionID.make(milliseconds: 1_700_000_000_000)
        try await InProcessConnection.with(caller: Self.root) { connection in
            _ = await connection.call(Self.setRequest(id: 1, name: "prio", value: Array("a-good-value".utf8)))
            _ = await connection.call(Self.setRequest(id: 2, name: "-bad", value: Array("a-good-value".utf8)))
            _ = await connection.call(#"{"v":1,"id":3,"method":"secrets_get","params":{"name":"prio"}}"#)
            _ = await connection.call(#"{"v":1,"id":4,"method":"kill","params":{"execution_id":"\#(id)"}}"#)
            _ = await connection.call(#"{"v":1,"id":5,"method":"secrets_rm","params":{"name":"prio"}}"#)
            events += connection.auditor.events
        }
        try await InProcessConnection.with(caller: RouterTests.nobody) { connection in
            _ = await connection.call(#"{"v":1,"id":1,"method":"users"}"#)
            events += connection.auditor.events
        }
        var seen: Set<String> = []
        for event in events {
            let column = try #require(documented[event.kind.rawValue], "\(event.kind) is not in docs/AUDIT.md")
            let expected = Self.documentedPriority(event, column: column)
            #expect(event.priority == expected, "\(event.kind.rawValue) (\(column)): \(event.message)")
            let decision = event.fields.first { $0.0 == "DECISION" }?.1
            seen.insert(event.kind.rawValue + (decision.map { " " + $0 } ?? ""))
        }
        #expect(
            seen.isSuperset(of: [
                "secret_changed allow", "secret_changed deny", "secret_read deny", "execution_kill deny",
                "request_denied deny",
            ]), "\(seen.sorted())")
    }

    /// docs/AUDIT.md, "A stalled journal": past 16 MiB of best-effort records waiting, the oldest are dropped and
    /// counted, and a `records_lost` record (priority 3) says how many once the journal reads again. Every record
    /// posted either reaches the journal or is counted; the first waiting one is never dropped.
    @Test func bestEffortRecordsPastTheBoundAreCountedInARecordsLostRecord() async throws {
        let journald = try JournalTests.FakeJournald()
        let journal = Journal(socketPath: journald.path)
        // Fill the journal's queue until a record with a deadline cannot be written: it reads nothing now.
        var filled = 0
        while filled < 100_000 {
            do {
                try await journal.send([("MESSAGE", "fill \(filled)")], timeout: .milliseconds(50))
                filled += 1
            } catch {
                break
            }
        }
        #expect(journal.health != .ok)
        // 200 records of 96 KiB (each fits a datagram): more than 16 MiB wait, so some must go.
        let posted = 200
        let padding = String(repeating: "p", count: 96 << 10)
        for index in 0..<posted {
            journal.post([("MESSAGE", "best effort \(index)"), ("PADDING", padding)], kind: .audit)
        }
        var received: [String] = []
        var report: String?
        let deadline = ContinuousClock.now + .seconds(900)
        while ContinuousClock.now < deadline {
            for message in journald.receiveAll() {
                if message.contains("RUNVOY_EVENT=records_lost\n") {
                    report = message
                } else if message.hasPrefix("MESSAGE=best effort ") {
                    received.append(String(message.dropFirst(8).prefix { $0 != "\n" }))
                }
            }
            if let report, let lost = Self.field("RUNVOY_LOST_AUDIT_RECORDS", in: report),
                received.count + lost == posted
            {
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let text = try #require(report, "no records_lost record; received \(received.count) of \(posted)")
        let lost = try #require(Self.field("RUNVOY_LOST_AUDIT_RECORDS", in: text))
        #expect(lost > 0)
        #expect(received.count + lost == posted, "received \(received.count), lost \(lost)")
        #expect(received.first == "best effort 0", "the record at the head was dropped")
        // What arrived, arrived in order.
        let numbers = received.compactMap { Int($0.split(separator: " ").last ?? "") }
        #expect(numbers == numbers.sorted())
        #expect(Self.field("PRIORITY", in: text) == 3)
        #expect(text.contains("MESSAGE_ID=e9453f9583f64e16a11b23ac07d87d90\n"))
        #expect(Self.field("RUNVOY_LOST_LOG_LINES", in: text) == 0)
        // They are dropped, not written anywhere else (the message once said "written to stderr instead").
        #expect(text.contains("were dropped") && !text.contains("stderr"), "\(text)")
    }

    /// The integer value of `name` in a journal entry's text.
    static func field(_ name: String, in entry: String) -> Int? {
        guard let line = entry.split(separator: "\n").first(where: { $0.hasPrefix(name + "=") }) else { return nil }
        return Int(line.dropFirst(name.count + 1))
    }

    /// docs/CONFIGURATION.md, `secrets.runtime_directory`: the daemon warns when it is not on a tmpfs, and only then.
    @Test(.enabled(if: runvoy_is_tmpfs("/dev/shm") == 1, "needs a tmpfs at /dev/shm"))
    func theRuntimeDirectoryWarningComesOnlyOffATmpfs() throws {
        var template = Array("/var/tmp/runvoy-runtime-XXXXXX".utf8CString)
        let disk = String(cString: try #require(mkdtemp(&template)))
        defer { FileSystem.removeTree(disk) }
        #expect(runvoy_is_tmpfs(disk) == 0)
        let onDisk = try SecretInjection.prepareRuntimeDirectory(disk + "/run")
        #expect(
            onDisk == "secret files go to \(disk)/run, which is not a tmpfs: they reach the disk while commands run")

        let memory = "/dev/shm/runvoy-runtime-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { FileSystem.removeTree(memory) }
        let onTmpfs = try SecretInjection.prepareRuntimeDirectory(memory)
        #expect(onTmpfs == nil)
    }
}
