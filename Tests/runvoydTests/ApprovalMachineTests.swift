import Foundation
import Glibc
import PropertyBased
import RunvoyConfig
import RunvoyKit
import RunvoyStore
import Testing

@testable import RunvoyDaemon

/// The approval digest (a golden vector computed independently, and every field changing it) and the approval
/// state machine against a reference model written here, through the state database and daemon restarts.
struct ApprovalMachineTests {
    static let subject = ApprovalSubject(
        requesterUid: 1000, executor: "prod", runAs: "0:0:root:root", command: "/usr/bin/systemctl",
        argv: ["systemctl", "restart", "nginx"], workingDirectory: "/",
        environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"], callerEnvKeys: [],
        secrets: ["TOKEN=env:api-token"], terminal: false, stdin: false, timeoutMs: 60_000,
        reason: "INC-1234: rotate certs")

    /// Computed with Python's hashlib from the encoding docs/SECURITY.md describes.
    @Test func theDigestMatchesTheGoldenVector() {
        #expect(Self.subject.digest == "sha256:7bdc8b395a9290d5d99cff1038964b19c07e349293e60e3f5030b4599e17f657")
    }

    @Test func everyFieldChangesTheDigestAndEnvironmentOrderDoesNot() {
        let base = Self.subject.digest
        var changes: [(String, (inout ApprovalSubject) -> Void)] = [
            ("kind", { $0.kind = "grant" }), ("requester", { $0.requesterUid = 1001 }),
            ("executor", { $0.executor = "prod2" }), ("run_as", { $0.runAs = "0:0:root:adm" }),
            ("command", { $0.command = "/bin/systemctl" }), ("argv", { $0.argv[2] = "apache" }),
            ("cwd", { $0.workingDirectory = "/srv" }), ("env", { $0.environment["LANG"] = "C" }),
            ("env keys", { $0.callerEnvKeys = ["DEBUG"] }), ("secrets", { $0.secrets = ["TOKEN=file:api-token"] }),
            ("terminal", { $0.terminal = true }), ("stdin", { $0.stdin = true }),
            ("timeout", { $0.timeoutMs = nil }), ("reason", { $0.reason = "INC-1235" }),
        ]
        changes.append(("argv split", { $0.argv = ["systemctl", "restart nginx"] }))
        changes.append(("env split", { $0.environment = ["PATH": "/usr/bin:/bin LANG=C.UTF-8"] }))
        var seen: Set<String> = [base]
        for (name, change) in changes {
            var changed = Self.subject
            change(&changed)
            #expect(seen.insert(changed.digest).inserted, "\(name) did not change the digest")
        }
        #expect(
            ApprovalDigest.digest([("argv", ["a b"])]) != ApprovalDigest.digest([("argv", ["a", "b"])]))
        var reordered = Self.subject
        reordered.environment = Dictionary(uniqueKeysWithValues: Self.subject.environment.reversed().map { $0 })
        #expect(reordered.digest == base)
    }

    // MARK: - The machine against a model

    enum Op: Sendable, CustomStringConvertible {
        case approve(uid: UInt32, sameDigest: Bool)
        case deny(uid: UInt32)
        case withdraw
        case expire
        case launch(sameDigest: Bool, allowed: Bool)
        case restart

        var description: String {
            switch self {
            case .approve(let uid, let same): "approve(\(uid), same: \(same))"
            case .deny(let uid): "deny(\(uid))"
            case .withdraw: "withdraw"
            case .expire: "expire"
            case .launch(let same, let allowed): "launch(same: \(same), allowed: \(allowed))"
            case .restart: "restart"
            }
        }
    }

    static let op = zip(Gen.int(in: 0...9), Gen<UInt32>.value(in: 0...4), Gen.bool(0.8), Gen.bool(0.8)).map {
        kind, uid, same, allowed -> Op in
        switch kind {
        case 0...3: .approve(uid: uid, sameDigest: same)
        case 4: .deny(uid: uid)
        case 5: .withdraw
        case 6: .expire
        case 7: .launch(sameDigest: same, allowed: allowed)
        default: .restart
        }
    }

    /// The model: a state name and the set of uids that approved. Requester uid 1; eligible uids are those of
    /// `eligible`; the deadline is 1000 ms; each step moves the clock by its `dt`.
    struct Model {
        var state = "pending"
        var approved: Set<UInt32> = []
        var answered: Set<UInt32> = []
        var fulfilled = 0
        var now: Int64 = 0
        let required: Int
        let eligible: Set<UInt32>

        mutating func step(_ op: Op, dt: Int64) {
            now += dt
            if state == "pending" && now >= 1000 {
                state = "expired"
                return
            }
            switch op {
            case .approve(let uid, let same):
                guard state == "pending", uid != 1, eligible.contains(uid), !answered.contains(uid), same else {
                    return
                }
                answered.insert(uid)
                approved.insert(uid)
                if approved.count >= required { state = "approved" }
            case .deny(let uid):
                guard state == "pending", uid != 1, eligible.contains(uid), !answered.contains(uid) else { return }
                answered.insert(uid)
                state = "denied"
            case .withdraw:
                if state == "pending" || state == "approved" { state = "withdrawn" }
            case .expire, .restart:
                break
            case .launch(let same, let allowed):
                guard state == "approved" else { return }
                if same && allowed {
                    state = "fulfilled"
                    fulfilled += 1
                } else {
                    state = "invalidated"
                }
            }
        }
    }

    static func event(_ op: Op, _ now: Int64, _ model: Model, digest: String) -> ApprovalMachine.Event {
        switch op {
        case .approve(let uid, let same):
            return .approve(
                uid: uid, user: "u\(uid)", digest: same ? digest : "sha256:other",
                eligible: model.eligible.contains(uid), comment: nil, atMs: now)
        case .deny(let uid):
            return .deny(uid: uid, user: "u\(uid)", eligible: model.eligible.contains(uid), comment: "no", atMs: now)
        case .withdraw: return .withdraw(reason: "taken back", atMs: now)
        case .expire, .restart: return .expire(atMs: now)
        case .launch(let same, let allowed):
            return .launch(digest: same ? digest : "sha256:other", allowed: allowed, reason: nil, atMs: now)
        }
    }

    @Test func theMachineFollowsTheModelThroughTheDatabaseAndRestarts() async throws {
        await propertyCheck(
            count: 100, input: zip(Self.op, Gen.int(in: 1...300)).array(of: 1...25), Gen.int(in: 1...3),
            Gen<UInt32>.value(in: 0...31)
        ) { steps, required, eligibleBits in
            let eligible = Set((0...4).map(UInt32.init).filter { eligibleBits & (1 << $0) != 0 })
            var model = Model(required: required, eligible: eligible)
            let directory = NSTemporaryDirectory() + "approval-model-\(UInt32.random(in: 0...UInt32.max))"
            defer { _ = system("rm -rf '\(directory)'") }
            var store = try! ExecutionStore(stateDirectory: directory)
            var record = ApprovalRecord(
                id: "r1", kind: "exec", state: .pending, requesterUid: 1, requesterUser: "u1", executor: "prod",
                digest: Self.subject.digest, params: "{}", summary: "{}", reason: nil, required: required,
                approvers: ApproverList(users: ["*"]), needsClient: false, createdAtMs: 0, expiresAtMs: 1000,
                configDigest: "c")
            #expect(try! store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
            var finalSeen: ApprovalState?
            for (op, dt) in steps {
                let before = model.state
                model.step(op, dt: Int64(dt))
                if case .restart = op {
                    store = try! ExecutionStore(stateDirectory: directory)
                    record = try! store.approval("r1")!
                    if record.state == .pending && model.now >= 1000 {
                        record = ApprovalMachine.apply(.expire(atMs: model.now), to: record).record
                        _ = try! store.updateApproval(record, from: try! store.approval("r1")!)
                    }
                } else {
                    let (new, _) = ApprovalMachine.apply(
                        Self.event(op, model.now, model, digest: record.digest), to: record)
                    if new != record { #expect(try! store.updateApproval(new, from: record)) }
                    record = try! store.approval("r1")!
                }
                #expect(record.state.rawValue == model.state, "\(op) from \(before): \(record.state) vs \(model.state)")
                #expect(Set(record.answers.filter { $0.answer == .approve }.map(\.uid)) == model.approved)
                if record.state == .approved || record.state == .fulfilled {
                    #expect(!record.answers.contains { $0.uid == 1 })
                    #expect(record.approvals >= required)
                    #expect(record.decidedAtMs.map { $0 < 1000 } == true)
                }
                if let final = finalSeen { #expect(record.state == final, "a final state changed") }
                if record.state.isFinal { finalSeen = record.state }
            }
            #expect(model.fulfilled <= 1)
        }
    }

    // MARK: - The database's own guards

    @Test func theDatabaseRefusesSelfApprovalAndASecondAnswerAndStaleWrites() throws {
        let directory = NSTemporaryDirectory() + "approval-store-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = system("rm -rf '\(directory)'") }
        let store = try ExecutionStore(stateDirectory: directory)
        let record = ApprovalRecord(
            id: "r2", kind: "exec", state: .pending, requesterUid: 7, requesterUser: "alice", executor: "prod",
            digest: "sha256:d", params: "{}", summary: "{}", reason: nil, required: 2,
            approvers: ApproverList(roles: ["admin"]), needsClient: false, createdAtMs: 0, expiresAtMs: 1000,
            configDigest: "c")
        #expect(try store.insertApproval(record, execution: nil, maxPending: 10, maxPerUser: 10))
        // The per-user bound.
        var second = record
        second.id = "r3"
        #expect(try store.insertApproval(second, execution: nil, maxPending: 10, maxPerUser: 1) == false)
        // The requester's own answer, written past the machine: the trigger refuses it.
        var selfAnswered = record
        selfAnswered.answers = [
            ApprovalAnswer(uid: 7, user: "alice", answer: .approve, digest: "sha256:d", comment: nil, atMs: 1)
        ]
        #expect(throws: StoreError.self) { try store.updateApproval(selfAnswered, from: record) }
        var answered = record
        answered.answers = [
            ApprovalAnswer(uid: 8, user: "bob", answer: .approve, digest: "sha256:d", comment: nil, atMs: 1)
        ]
        #expect(try store.updateApproval(answered, from: record))
        // A write from the old read changes nothing.
        #expect(try store.updateApproval(answered, from: record) == false)
        // The same uid twice, from a fresh read: the primary key refuses it.
        let fresh = try #require(try store.approval("r2"))
        var twice = fresh
        twice.answers.append(
            ApprovalAnswer(uid: 8, user: "bob", answer: .approve, digest: "sha256:d", comment: nil, atMs: 2))
        #expect(throws: StoreError.self) { try store.updateApproval(twice, from: fresh) }
        #expect(try store.approval("r2")?.approvals == 1)
    }
}
