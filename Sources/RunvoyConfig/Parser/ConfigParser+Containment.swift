import RunvoyKit
import Yams

/// The top-level `containment` and each executor's `leftovers`, `limits` and `rlimits`.
extension ConfigParser {
    func parseContainmentSetting(_ top: ConfigEntries) -> ContainmentSetting {
        let key = ConfigSchema.TopKeys.containment
        guard let text = string(key, in: top) else { return .auto }
        guard let setting = ContainmentSetting(rawValue: text) else {
            error(top[key], top.path(key), "must be auto, cgroup or subreaper")
            return .auto
        }
        return setting
    }

    func parseContainment(_ entries: ConfigEntries, into executor: inout ExecutorConfig) {
        typealias Keys = ConfigSchema.ExecutorKeys
        if let text = string(Keys.leftovers, in: entries) {
            if let policy = LeftoverPolicy(rawValue: text) {
                executor.leftovers = policy
            } else {
                error(entries[Keys.leftovers], entries.path(Keys.leftovers), "must be kill or wait")
            }
        }
        if let limits = fields(Keys.limits, in: entries) {
            typealias LimitKeys = ConfigSchema.ExecutorLimitKeys
            executor.limits.memoryMax = size(LimitKeys.memoryMax, in: limits)
            executor.limits.memorySwapMax = size(LimitKeys.memorySwapMax, in: limits)
            executor.limits.cpuQuota = integer(LimitKeys.cpuQuota, in: limits)
            executor.limits.cpuWeight = integer(LimitKeys.cpuWeight, in: limits)
            executor.limits.tasksMax = integer(LimitKeys.tasksMax, in: limits)
            executor.limits.ioWeight = integer(LimitKeys.ioWeight, in: limits)
            if executor.limits.cpuQuota != nil && executor.limits.cpuWeight != nil {
                error(
                    limits[LimitKeys.cpuWeight], limits.path(LimitKeys.cpuWeight),
                    "give cpu_quota or cpu_weight, not both")
            }
        }
        if let rlimits = fields(Keys.rlimits, in: entries) {
            typealias LimitKeys = ConfigSchema.ResourceLimitKeys
            executor.rlimits.openFiles = integer(LimitKeys.nofile, in: rlimits).map { UInt64($0) }
            executor.rlimits.processes = integer(LimitKeys.nproc, in: rlimits).map { UInt64($0) }
            if let core = sizeOrWord(LimitKeys.core, in: rlimits) {
                // `unlimited` is RLIM_INFINITY.
                executor.rlimits.coreBytes = core.map { UInt64($0) } ?? UInt64.max
            }
        }
    }
}
