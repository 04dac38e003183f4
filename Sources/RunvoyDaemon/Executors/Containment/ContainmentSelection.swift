import CRunvoyPosix
import Foundation
import Glibc
import RunvoyConfig
import RunvoyKit

/// Chooses the containment once, at start-up: a cgroup per execution when the daemon runs in a delegated cgroup v2
/// subtree, else the child subreaper (`containment: auto`); `cgroup` refuses to start without the subtree.
enum ContainmentSelection {
    struct Unavailable: Error, CustomStringConvertible {
        var description: String
    }

    /// For tests and development: a cgroup v2 directory to use as the daemon's delegated subtree.
    static let rootVariable = "RUNVOYD_CGROUP_ROOT"

    static func select(
        _ setting: ContainmentSetting, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(Unavailable) -> any Containment {
        if setting != .subreaper {
            let found = delegatedCgroup(environment: environment, forced: setting == .cgroup)
            switch found {
            case .success(let root):
                do throws(SystemError) {
                    return try CgroupContainment(root: root)
                } catch {
                    if setting == .cgroup { throw Unavailable(description: "cannot use the cgroup \(root): \(error)") }
                }
            case .failure(let reason):
                if setting == .cgroup { throw Unavailable(description: "containment: cgroup: \(reason.description)") }
            }
        }
        do throws(SystemError) {
            return try SubreaperContainment()
        } catch {
            throw Unavailable(description: "cannot become a child subreaper: \(error)")
        }
    }

    /// What the configuration asks that `mode` cannot give: an executor's cgroup `limits` need cgroup containment
    /// (its `rlimits` apply in every mode). Said at start-up, so limits are never silently not enforced. A sandboxed
    /// executor's limits are its units' properties, which systemd enforces whatever the daemon's own mode.
    static func unenforced(_ config: DaemonConfig, mode: ContainmentMode) -> [String] {
        guard mode != .cgroup else { return [] }
        return config.executors.filter { $0.limits != ExecutionLimits() && $0.sandbox == nil }.map {
            "executor '\($0.name)': its limits (memory, CPU, tasks, I/O) are not enforced without a delegated cgroup "
                + "(containment: \(mode.rawValue)); only its rlimits apply"
        }
    }

    /// The daemon's delegated cgroup v2 directory, or why there is none.
    static func delegatedCgroup(environment: [String: String], forced: Bool) -> Result<String, Unavailable> {
        if let root = environment[rootVariable], root.hasPrefix("/") { return usable(root) }
        guard let mount = unifiedMount() else {
            return .failure(Unavailable(description: "no cgroup v2 hierarchy is mounted"))
        }
        guard let own = ownCgroup(), own != "/" else {
            return .failure(Unavailable(description: "the daemon is in the root cgroup"))
        }
        var path = mount + own
        // Restarted in place (`runvoyd` re-executed): the subtree is the parent of our leaf.
        if path.hasSuffix("/daemon"), CgroupFiles.exists(String(path.dropLast(7)) + "/executions") {
            path = String(path.dropLast(7))
        }
        let delegated =
            xattr(path, "trusted.delegate") == "1" || xattr(path, "user.delegate") == "1"
            || (environment["INVOCATION_ID"] != nil && path.hasSuffix(".service"))
        guard delegated || forced else {
            return .failure(Unavailable(description: "\(path) is not delegated to the daemon (Delegate=yes)"))
        }
        return usable(path)
    }

    private static func usable(_ path: String) -> Result<String, Unavailable> {
        guard CgroupFiles.exists(path + "/cgroup.kill") else {
            return .failure(Unavailable(description: "\(path) has no cgroup.kill (Linux 5.14 or later, cgroup v2)"))
        }
        guard access(path, W_OK) == 0, access(path + "/cgroup.procs", W_OK) == 0 else {
            return .failure(Unavailable(description: "\(path) is not writable by the daemon"))
        }
        return .success(path)
    }

    /// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid host).
    static func unifiedMount() -> String? {
        for line in (CgroupFiles.read("/proc/self/mountinfo") ?? "").split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    /// This process's cgroup in the unified hierarchy (`0::PATH` in /proc/self/cgroup).
    static func ownCgroup() -> String? {
        for line in (CgroupFiles.read("/proc/self/cgroup") ?? "").split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }

    private static func xattr(_ path: String, _ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = buffer.withUnsafeMutableBytes { runvoy_getxattr(path, name, $0.baseAddress, 16) }
        return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }
}
