import CRunvoyPosix
import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit

/// Containment without a delegated cgroup: runvoyd is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so a process
/// whose parent exits is re-parented to it rather than to init, and an execution's processes are found in /proc
/// as those in its main process's process group or session, descended from it, or, where the daemon may set login
/// uids (CAP_AUDIT_CONTROL, login uid not immutable), in the audit session the child opened by setting its login
/// uid to the caller's: a tag the kernel keeps across fork, `setsid` and re-parenting that only CAP_AUDIT_CONTROL
/// changes. Without that tag, a process that left the session and process group after its parent exited is not
/// found. Re-parented processes that exit are reaped here (`reapOrphans`), never the executions' main processes.
final class SubreaperContainment: Containment, ChildHolding {
    /// Main processes of executions and hook processes, not reaped yet: their owners reap them, never
    /// `reapOrphans`.
    let children = HeldChildren()
    /// Whether children can set their login uid (and so get an audit session of their own).
    let tagging: Bool
    /// This process's audit session, which a child that could not open its own keeps.
    let ownAuditSession: UInt32

    var mode: ContainmentMode { .subreaper }

    var notes: [String] {
        tagging
            ? []
            : [
                "audit sessions cannot tag executions (no CAP_AUDIT_CONTROL or login uid immutable): a process that "
                    + "leaves its session after its parent exited is not found"
            ]
    }

    /// Makes this process a child subreaper and starts the thread that reaps re-parented processes.
    init() throws(SystemError) {
        guard runvoy_set_child_subreaper() == 0 else { throw SystemError("prctl(PR_SET_CHILD_SUBREAPER)") }
        ownAuditSession = runvoy_audit_session(getpid())
        tagging = access("/proc/self/loginuid", W_OK) == 0 && Self.hasCapability(30)  // CAP_AUDIT_CONTROL
        let thread = Thread { [self] in
            while true {
                sleep(1)
                self.reapOrphans()
            }
        }
        thread.name = "runvoyd-orphans"
        thread.start()
    }

    func scope(
        executionID: String, executor: ExecutorConfig, caller uid: uid_t
    ) throws(SpawnError) -> any ExecutionScope {
        children.spawning()
        return SubreaperScope(owner: self, loginUID: tagging ? uid : nil)
    }

    /// A spawn ended: its process (if any) is a leader until `released`.
    func spawned(_ leader: pid_t?) {
        children.spawned(leader)
    }

    func spawning() {
        children.spawning()
    }

    func released(_ leader: pid_t) {
        children.released(leader)
        reapOrphans()
    }

    /// Reaps the zombie children that are no execution's main process and no hook's. Returns how many.
    @discardableResult
    func reapOrphans() -> Int {
        children.reaping { keep in
            Int(keep.withUnsafeBufferPointer { runvoy_reap_orphans($0.baseAddress, $0.count) })
        }
    }

    /// Whether the effective capability set holds capability `bit`.
    static func hasCapability(_ bit: Int) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << UInt64(bit)) != 0
    }
}

/// One execution's processes under the subreaper: found in /proc each time they are needed.
final class SubreaperScope: ExecutionScope {
    private struct State {
        var leader: pid_t?
        var auditSession: UInt32 = 0xffff_ffff
    }

    private let owner: SubreaperContainment
    private let loginUID: uid_t?
    private let state = Mutex(State())

    init(owner: SubreaperContainment, loginUID: uid_t?) {
        self.owner = owner
        self.loginUID = loginUID
    }

    var spawnHooks: SpawnHooks { SpawnHooks(loginUID: loginUID) }

    func spawned(leader: pid_t?) {
        if let leader {
            let session = runvoy_audit_session(leader)
            let tagged = session != 0xffff_ffff && session != owner.ownAuditSession
            state.withLock {
                $0.leader = leader
                if tagged { $0.auditSession = session }
            }
        }
        owner.spawned(leader)
    }

    /// The execution's live processes but the main one.
    func members() -> [pid_t] {
        let (leader, session) = state.withLock { ($0.leader, $0.auditSession) }
        guard let leader else { return [] }
        var capacity = 64
        while true {
            var pids = [pid_t](repeating: 0, count: capacity)
            let found = pids.withUnsafeMutableBufferPointer {
                runvoy_scope_members(leader, session, $0.baseAddress, capacity)
            }
            if found < 0 { return [] }
            if found <= capacity { return Array(pids.prefix(Int(found))) }
            capacity = Int(found) + 16
        }
    }

    func signal(_ signal: Int32) -> Int { signalled(by: signal).count }

    func kill() -> Int {
        // Again while something is found (a process may fork between the scan and its SIGKILL), and until two
        // scans in a row find nothing: a scan lists /proc before it reads each process, so a process forked after
        // the listing by one that had died by the time it was read is in neither; the next scan, listed after
        // that death, has it.
        var killed = Set<pid_t>()
        var beyond = 0
        var empty = 0
        for _ in 0..<16 where empty < 2 {
            let (count, pids) = signalled(by: SIGKILL)
            empty = count == 0 ? empty + 1 : 0
            killed.formUnion(pids)
            beyond = max(beyond, count - pids.count)
        }
        return killed.count + beyond
    }

    /// Sends `signal` to the execution's processes but the main one (see `runvoy_scope_signal`: never to a pid
    /// reused since the scan). Returns how many were signalled and the first 4,096 of their pids.
    private func signalled(by signal: Int32) -> (count: Int, pids: [pid_t]) {
        let (leader, session) = state.withLock { ($0.leader, $0.auditSession) }
        guard let leader else { return (0, []) }
        var pids = [pid_t](repeating: 0, count: 4096)
        let count = pids.withUnsafeMutableBufferPointer {
            runvoy_scope_signal(leader, session, signal, $0.baseAddress, $0.count)
        }
        guard count > 0 else { return (0, []) }
        return (Int(count), Array(pids.prefix(min(Int(count), pids.count))))
    }

    /// Asked twice when the first scan finds nothing, for the reason `kill` scans until two find nothing.
    var isPopulated: Bool { !members().isEmpty || !members().isEmpty }

    func release() {
        guard let leader = state.withLock({ $0.leader }) else { return }
        owner.released(leader)
    }

    func usage() -> ResourceUsage? { nil }
}
