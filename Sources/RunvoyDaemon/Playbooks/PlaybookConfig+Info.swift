import RunvoyConfig
import RunvoyKit

/// A playbook as `playbook_list` and `playbook_show` describe it.
extension PlaybookConfig {
    var summary: PlaybookSummary {
        PlaybookSummary(name: name, description: description, parameters: parameters.map(\.info))
    }

    /// Everything `playbook_show` tells: steps with their argv templates as written, and `trusted` where the
    /// administrator trusts a step.
    func info(defaultExecutor: String) -> PlaybookInfo {
        let steps = steps.map { step in
            PlaybookStepInfo(
                name: step.name, executor: step.executor ?? defaultExecutor, argv: step.argv.map(\.written),
                when: step.when.rawValue, continueOnError: step.continueOnError,
                timeoutMs: step.timeout.map { ExecPlan.micros($0) / 1000 }, trusted: step.trusted)
        }
        return PlaybookInfo(
            name: name, description: description, parameters: parameters.map(\.info), steps: steps,
            locks: locks.map { $0.shared ? "\($0.name) (shared)" : $0.name },
            approval: approval.flatMap { $0.requiresApproval ? $0.display : nil },
            schedule: schedule.map {
                PlaybookScheduleInfo(calendar: $0.calendar, runAsCaller: $0.runAsCaller, params: $0.params)
            })
    }
}

extension PlaybookParameter {
    /// The parameter as replies describe it.
    var info: PlaybookParameterInfo {
        var info = PlaybookParameterInfo(
            name: name, type: type.name, description: description, required: required, defaultValue: defaultValue)
        switch type {
        case .string(let pattern): info.pattern = pattern
        case .enumeration(let values): info.values = values
        case .integer(let min, let max): (info.min, info.max) = (min, max)
        case .boolean: break
        case .path(let under): info.under = under
        }
        return info
    }
}

extension ArgvTemplate {
    /// The argument as the playbook's file writes it: `prefix{{parameter}}suffix`.
    var written: String {
        guard let parameter else { return prefix }
        return prefix + "{{" + parameter + "}}" + suffix
    }
}
