import RunvoyConfig
import RunvoyKit
import RunvoyStore

/// What the history holds under an id, as far as the caller may know.
enum ExecutionLookup {
    /// No execution has that id.
    case missing
    /// It exists, but the caller may not see it: it is answered as `missing` (the audit trail has the truth).
    case hidden(ownerUid: UInt32)
    case visible(ExecutionInfo)
}

/// What the history methods (`list`, `status`, `logs`, `kill`, `export`) share.
extension RequestContext {
    /// Looks an execution up for the caller. A caller that may see no execution at all is refused
    /// (`permission_denied`, not audited here) before anything is looked up, whatever the id.
    func lookUpExecution(_ executionID: String) throws(RunvoyError) -> ExecutionLookup {
        guard ExecutionID.isValid(executionID) else {
            throw RunvoyError(.invalidArgument, "'\(executionID)' is not an execution id (26 characters of base32)")
        }
        guard permits(.viewOwn) || permits(.viewAll) else { throw Authorizer.refusal(caller, .viewOwn, config) }
        let found = try history { store throws(StoreError) in try store.get(executionID) }
        guard let info = found else { return .missing }
        guard Authorizer.mayView(caller, ownerUid: info.callerUid, config) else {
            return .hidden(ownerUid: info.callerUid)
        }
        return .visible(shown(info))
    }

    /// Whether the caller may read what an edit record holds of the file (its diff, its hashes): only the user
    /// who made it, who read the whole file, and administrators.
    func mayReadEdit(_ info: ExecutionInfo) -> Bool {
        info.callerUid == caller.uid || Authorizer.roles(caller, config).contains(.admin)
    }

    /// The record as the caller may see it: an edit's hashes only to who may read the edit (review of issue 16:
    /// a file's SHA-256 lets a viewer test guesses of a root-only file offline).
    func shown(_ info: ExecutionInfo) -> ExecutionInfo {
        guard let edit = info.edit, !mayReadEdit(info) else { return info }
        var info = info
        info.edit = edit.withoutHashes
        return info
    }

    /// The answer for an execution that does not exist, and for one the caller may not see: the same, so that
    /// it cannot tell which.
    static func noSuchExecution(_ executionID: String) -> RunvoyError {
        RunvoyError(.noSuchExecution, "no execution \(executionID)")
    }

    /// The execution's record, when it exists and the caller may see it. Refusals are thrown as `Refusal`s, with
    /// the real reason for the audit trail when the caller is told "no execution".
    func visibleExecution(_ executionID: String) throws -> ExecutionInfo {
        let lookup: ExecutionLookup
        do throws(RunvoyError) {
            lookup = try lookUpExecution(executionID)
        } catch {
            if error.code == .permissionDenied { throw denied(error) }
            throw error
        }
        switch lookup {
        case .missing:
            throw Self.noSuchExecution(executionID)
        case .hidden(let ownerUid):
            let real = RunvoyError(.permissionDenied, "execution \(executionID) was started by another user")
            throw denied(
                real, told: Self.noSuchExecution(executionID),
                fields: [("EXECUTION_ID", executionID), ("OWNER_UID", String(ownerUid))])
        case .visible(let info):
            return info
        }
    }

    /// The most hook output one `status` reply carries, all runs together (each run keeps 64 KiB): the reply
    /// stays within a frame however many hooks an execution ran. Output beyond it is counted as dropped.
    static let hookOutputBudget = 256 << 10

    /// The record with its hooks' runs (`status`; none, no member), their output within `hookOutputBudget`; a
    /// history that cannot be read for them leaves them out.
    func withHookRuns(_ info: ExecutionInfo) -> ExecutionInfo {
        var info = info
        guard let runs = try? executions.store.hookRuns(executionID: info.executionId) else { return info }
        info.hooks = runs.isEmpty ? nil : Self.budgeted(runs, budget: Self.hookOutputBudget)
        return info
    }

    /// `runs` with the output of those past `budget` bytes in all left out (and counted as dropped). The budget
    /// counts the output as JSON encodes it (a control byte is six bytes there: review of hooks, H4); what is
    /// counted as dropped is its size as stored.
    static func budgeted(_ runs: [HookRunInfo], budget: Int) -> [HookRunInfo] {
        var runs = runs
        var left = budget
        for index in runs.indices {
            let bytes = jsonSize(runs[index].output)
            if bytes > left {
                runs[index].outputDropped += Int64(runs[index].output.utf8.count)
                runs[index].output = ""
            } else {
                left -= bytes
            }
        }
        return runs
    }

    /// At least the bytes `text` takes inside a JSON string: a control byte as `\u00XX` (6), `"`, `\` and `/`
    /// escaped (2), every other byte of its UTF-8 as itself.
    static func jsonSize(_ text: String) -> Int {
        text.utf8.reduce(0) { size, byte in
            switch byte {
            case 0..<0x20: size + 6
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): size + 2
            default: size + 1
            }
        }
    }

    /// The record as a reply gives it to the caller (every history reply goes through here): what the caller may
    /// see of it (`shown`), with what only the running execution knows yet: its pid, start time and output so far.
    func withLiveState(_ info: ExecutionInfo) -> ExecutionInfo {
        var info = shown(info)
        guard info.status == .running, let live = executions.running(id: info.executionId) else { return info }
        let totals = live.recorder.totals
        info.pid = live.pid
        info.startedAtMs = live.startedAtMs
        info.stdoutBytes = totals.stdoutBytes
        info.stderrBytes = totals.stderrBytes
        info.storedBytes = totals.storedBytes
        info.droppedBytes = totals.droppedBytes
        info.stdinBytes = info.stdinBytes.map { _ in totals.stdinBytes }
        return info
    }

    /// Runs `body` on the history; a failure is logged and answered as `internal_error`.
    func history<T>(_ body: (ExecutionStore) throws(StoreError) -> T) throws(RunvoyError) -> T {
        do {
            return try body(executions.store)
        } catch {
            logger.error("execution history unavailable", metadata: ["error": "\(error)"])
            throw RunvoyError(.internalError, "the execution history cannot be read")
        }
    }
}
