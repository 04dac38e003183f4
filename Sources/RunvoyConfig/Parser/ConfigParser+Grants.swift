import RunvoyKit
import Yams

/// `grants`: how long a temporary grant may last, what users may ask for, and the approval such a request needs.
extension ConfigParser {
    func parseGrantSettings(_ top: ConfigEntries, executors: [ExecutorConfig]) -> GrantSettings {
        typealias Keys = ConfigSchema.GrantsKeys
        var settings = GrantSettings()
        guard let entries = fields(ConfigSchema.TopKeys.grants, in: top) else { return settings }
        if let value = duration(Keys.maxDuration, in: entries) { settings.maxDuration = value }
        if let names = strings(Keys.requestableRoles, in: entries) {
            settings.requestableRoles = roles(
                names, entries[Keys.requestableRoles], entries.path(Keys.requestableRoles))
        }
        if let names = strings(Keys.requestableExecutors, in: entries) {
            let known = Set(executors.map(\.name))
            for (index, name) in names.enumerated() where name != "*" && !known.contains(name) {
                error(
                    entries[Keys.requestableExecutors]?.sequence?[index],
                    "\(entries.path(Keys.requestableExecutors))[\(index)]", "no executor '\(name)' is defined")
            }
            settings.requestableExecutors = names
        }
        if let node = entries[Keys.approval], let policy = parseApproval(node, entries.path(Keys.approval)) {
            if policy.requiresApproval {
                settings.approval = policy
            } else {
                error(
                    node, entries.path(Keys.approval) + ".count",
                    "a request for a grant always needs approval (at least 1); leave requestable_roles and "
                        + "requestable_executors empty to allow none")
            }
        }
        if let text = string(Keys.endRunning, in: entries) {
            if let policy = GrantSettings.EndRunning(rawValue: text) {
                settings.endRunning = policy
            } else {
                error(entries[Keys.endRunning], entries.path(Keys.endRunning), "must be kill or keep")
            }
        }
        return settings
    }
}
