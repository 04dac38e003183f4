import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// The life of a request for approval, as a pure function of its record and one event: no clock (each event
/// carries its time), no I/O, no roles (each answer carries whether its author is eligible now). The store keeps
/// the record; `Approvals` applies events to it and writes what changed.
///
/// States: `pending` → `approved` → `fulfilled` (its command started, at once or at its turn in the queue: an
/// approved request that waits in the queue stays `approved`); `pending` ends `denied`, `expired` or `withdrawn`;
/// `approved` ends `invalidated` when what would run now is not what was approved, or the policy in force asks for
/// more. Break-glass runs are recorded `break_glass`, and end `reviewed`, or `invalidated` when break-glass no
/// longer admits their requester as they start.
enum ApprovalMachine {
    /// What may happen to a request.
    enum Event: Sendable, Equatable {
        case approve(uid: UInt32, user: String, digest: String, eligible: Bool, comment: String?, atMs: Int64)
        case deny(uid: UInt32, user: String, eligible: Bool, comment: String, atMs: Int64)
        /// Its requester (or someone who may cancel it) takes it back, or its client went.
        case withdraw(reason: String, atMs: Int64)
        /// The clock passed (the timer, or any event at or after `expiresAtMs`).
        case expire(atMs: Int64)
        /// It is about to run: `digest` is what would run now, `allowed` whether the requester may still run it
        /// and the policy asks for no more than was fixed at creation (a break-glass run: whether break-glass
        /// still admits its requester).
        case launch(digest: String, allowed: Bool, reason: String?, atMs: Int64)
        case review(uid: UInt32, user: String, eligible: Bool, comment: String, atMs: Int64)
    }

    /// What an event did.
    enum Change: Sendable, Equatable {
        /// An approval that counts, short of the number required.
        case answered
        case approved
        case denied
        case expired
        case withdrawn
        case fulfilled
        case invalidated
        case reviewed
    }

    /// Applies `event` to `record`: the record afterwards (which changes even on a refusal when the request had
    /// expired), and the change or the refusal.
    static func apply(
        _ event: Event, to record: ApprovalRecord
    ) -> (record: ApprovalRecord, result: Result<Change, RunvoyError>) {
        var record = record
        if case .expire(let now) = event {
            guard record.state == .pending, now >= record.expiresAtMs else {
                return (record, .failure(notPending(record)))
            }
            end(&record, .expired, atMs: now, byUid: nil, comment: "no decision before it expired")
            return (record, .success(.expired))
        }
        // Any other event at or after the deadline finds it expired.
        if record.state == .pending, let now = event.atMs, now >= record.expiresAtMs {
            end(&record, .expired, atMs: now, byUid: nil, comment: "no decision before it expired")
            return (record, .failure(RunvoyError(.approvalExpired, "request \(record.id) expired")))
        }
        switch event {
        case .approve(let uid, let user, let digest, let eligible, let comment, let now):
            return approve(&record, uid: uid, user: user, digest: digest, eligible: eligible, comment, now)
        case .deny(let uid, let user, let eligible, let comment, let now):
            if let refusal = mayAnswer(record, uid: uid, eligible: eligible) { return (record, .failure(refusal)) }
            record.answers.append(
                .init(uid: uid, user: user, answer: .deny, digest: record.digest, comment: comment, atMs: now))
            end(&record, .denied, atMs: now, byUid: uid, comment: "denied by \(user): \(comment)")
            return (record, .success(.denied))
        case .withdraw(let reason, let now):
            guard record.state == .pending || record.state == .approved else {
                return (record, .failure(notPending(record)))
            }
            end(&record, .withdrawn, atMs: now, byUid: nil, comment: reason)
            return (record, .success(.withdrawn))
        case .launch(let digest, let allowed, let reason, let now):
            if record.state == .breakGlass, !allowed {
                // A break-glass run that waited in the queue while break-glass was taken from its requester.
                end(
                    &record, .invalidated, atMs: now, byUid: nil,
                    comment: (reason ?? "the policy changed") + "; it did not run")
                return (record, .success(.invalidated))
            }
            guard record.state == .approved else { return (record, .failure(notPending(record))) }
            guard allowed, digest == record.digest else {
                let why = !allowed ? (reason ?? "the policy changed") : "what would run is not what was approved"
                end(&record, .invalidated, atMs: now, byUid: nil, comment: why + "; start it again")
                return (record, .success(.invalidated))
            }
            record.state = .fulfilled
            return (record, .success(.fulfilled))
        case .review(let uid, let user, let eligible, let comment, let now):
            return review(&record, uid: uid, user: user, eligible: eligible, comment, now)
        case .expire:
            preconditionFailure("handled above")
        }
    }

    /// A break-glass run reviewed: never by whoever broke the glass, only by an eligible approver, with a
    /// comment saying what was checked.
    private static func review(
        _ record: inout ApprovalRecord, uid: UInt32, user: String, eligible: Bool, _ comment: String, _ now: Int64
    ) -> (record: ApprovalRecord, result: Result<Change, RunvoyError>) {
        guard record.state == .breakGlass else { return (record, .failure(notPending(record))) }
        guard record.recorded else { return (record, .failure(notRecorded(record))) }
        guard uid != record.requesterUid else {
            return (record, .failure(RunvoyError(.permissionDenied, "you cannot review your own break-glass run")))
        }
        guard eligible else { return (record, .failure(notEligible(record))) }
        guard comment.contains(where: { !$0.isWhitespace }) else {
            return (
                record,
                .failure(RunvoyError(.invalidArgument, "a review of break-glass run \(record.id) needs a comment"))
            )
        }
        record.answers.append(
            .init(uid: uid, user: user, answer: .review, digest: record.digest, comment: comment, atMs: now))
        end(&record, .reviewed, atMs: now, byUid: uid, comment: "reviewed by \(user): \(comment)")
        return (record, .success(.reviewed))
    }

    private static func approve(
        _ record: inout ApprovalRecord, uid: UInt32, user: String, digest: String, eligible: Bool, _ comment: String?,
        _ now: Int64
    ) -> (record: ApprovalRecord, result: Result<Change, RunvoyError>) {
        if let refusal = mayAnswer(record, uid: uid, eligible: eligible) { return (record, .failure(refusal)) }
        guard digest == record.digest else {
            return (
                record,
                .failure(RunvoyError(.conflict, "request \(record.id) is not the one you saw (its digest differs)"))
            )
        }
        record.answers.append(
            .init(uid: uid, user: user, answer: .approve, digest: digest, comment: comment, atMs: now))
        guard record.approvals >= record.required else { return (record, .success(.answered)) }
        record.state = .approved
        record.decidedAtMs = now
        record.decidedByUid = uid
        return (record, .success(.approved))
    }

    /// Why `uid` may not answer `record` now, or nil: only a pending request, never one's own, only eligible
    /// approvers, and once each.
    private static func mayAnswer(_ record: ApprovalRecord, uid: UInt32, eligible: Bool) -> RunvoyError? {
        guard record.state == .pending else { return notPending(record) }
        guard record.recorded else { return notRecorded(record) }
        guard uid != record.requesterUid else {
            return RunvoyError(.permissionDenied, "you cannot approve or deny your own request")
        }
        guard eligible else { return notEligible(record) }
        guard !record.answers.contains(where: { $0.uid == uid }) else {
            return RunvoyError(.conflict, "you have answered request \(record.id) already")
        }
        return nil
    }

    private static func notEligible(_ record: ApprovalRecord) -> RunvoyError {
        RunvoyError(
            .permissionDenied,
            "you are not one of the approvers of request \(record.id) (\(record.approvers.display))")
    }

    /// Its audit record is not written yet (or never was): nobody may act on it.
    private static func notRecorded(_ record: ApprovalRecord) -> RunvoyError {
        RunvoyError(.invalidState, "request \(record.id) is not recorded yet")
    }

    private static func notPending(_ record: ApprovalRecord) -> RunvoyError {
        RunvoyError(.invalidState, "request \(record.id) is \(record.state.rawValue)")
    }

    private static func end(
        _ record: inout ApprovalRecord, _ state: ApprovalState, atMs: Int64, byUid: UInt32?, comment: String
    ) {
        record.state = state
        record.decidedAtMs = atMs
        record.decidedByUid = byUid
        record.decision = comment
    }
}

extension ApprovalMachine.Event {
    /// When it happens.
    var atMs: Int64? {
        switch self {
        case .approve(_, _, _, _, _, let at), .deny(_, _, _, _, let at), .withdraw(_, let at), .expire(let at),
            .launch(_, _, _, let at), .review(_, _, _, _, let at):
            at
        }
    }
}
