import RunvoyConfig
import RunvoyKit

/// What the playbook methods share.
extension RequestContext {
    /// The playbook `name`, when the caller may run it. A caller without the exec permission is refused before
    /// anything is looked up (`permission_denied`, whatever the name: a role-less user learns nothing); a name no
    /// playbook has is `no_such_playbook`; one the caller may not run is `permission_denied`, as an executor it
    /// may not use is. Refusals are audited (`request_denied`).
    func runnablePlaybook(_ name: String) throws -> PlaybookConfig {
        try require(.exec)
        let label = PlaybookAccess.label(name)
        guard let playbook = config.playbook(named: name) else {
            throw RunvoyError(.noSuchPlaybook, "no playbook named \(label)")
        }
        guard PlaybookAccess.mayRun(caller, playbook, config) else {
            var reason = "user \(caller.displayName) may not run playbook \(label)"
            if let contact = config.adminContact { reason += "; ask \(contact) for access" }
            throw denied(RunvoyError(.permissionDenied, reason), fields: [("PLAYBOOK", playbook.name)])
        }
        return playbook
    }
}
