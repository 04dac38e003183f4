import RunvoyKit
import Yams

/// A playbook's `steps`: each runs an argv template on an executor of the configuration.
extension ConfigParser {
    /// The steps in file order; at least one, with unique names.
    func parsePlaybookSteps(
        _ top: ConfigEntries, root: Node, parameters: [PlaybookParameter], config: DaemonConfig
    ) -> [PlaybookStep] {
        let key = ConfigSchema.PlaybookKeys.steps
        guard let node = top[key] else {
            error(root, top.path(key), "required: at least one step, [{name: NAME, argv: [COMMAND, …]}]")
            return []
        }
        guard let sequence = node.sequence, sequence.count > 0 else {
            error(node, top.path(key), "expected a list of at least one step")
            return []
        }
        var steps: [PlaybookStep] = []
        for (index, item) in sequence.enumerated() {
            let path = "\(top.path(key))[\(index)]"
            guard let step = parsePlaybookStep(item, path, parameters: parameters, config: config) else { continue }
            if let earlier = steps.first(where: { $0.name == step.name }) {
                error(
                    item, "\(path).name", "step name '\(step.name)' is already used by the step at line \(earlier.line)"
                )
                continue
            }
            steps.append(step)
        }
        return steps
    }

    private func parsePlaybookStep(
        _ node: Node, _ path: String, parameters: [PlaybookParameter], config: DaemonConfig
    ) -> PlaybookStep? {
        typealias Keys = ConfigSchema.PlaybookStepKeys
        guard let entries = fields(node, path, Keys.section) else { return nil }
        for key in [Keys.name, Keys.argv] where !entries.contains(key) {
            error(node, entries.path(key), "required: \(key.doc)")
        }
        let name = entries[Keys.name].flatMap { strictString($0, entries.path(Keys.name)) }
        if let name, !Self.isValidExecutorName(name) {
            error(
                entries[Keys.name], entries.path(Keys.name),
                "step names are 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
        }
        let executor = stepExecutor(entries, config)
        let argv = entries[Keys.argv].flatMap { argvTemplates($0, entries.path(Keys.argv), parameters) }
        var when = StepCondition.succeeded
        if let text = string(Keys.when, in: entries) {
            if let condition = StepCondition(rawValue: text) {
                when = condition
            } else {
                error(entries[Keys.when], entries.path(Keys.when), "must be succeeded, failed or always")
            }
        }
        guard let name, Self.isValidExecutorName(name), let argv, let executor else { return nil }
        // No `executor`: nil, the default executor of the configuration in force when it runs.
        var step = PlaybookStep(
            name: name, executor: entries.contains(Keys.executor) ? executor.name : nil, argv: argv,
            line: node.mark?.line ?? 1)
        step.when = when
        step.continueOnError = boolean(Keys.continueOnError, in: entries) ?? false
        step.trusted = boolean(Keys.trusted, in: entries) ?? false
        step.timeout = duration(Keys.timeout, in: entries)
        if let timeout = step.timeout, let maximum = executor.maxTimeout, timeout > maximum {
            warning(
                entries[Keys.timeout], entries.path(Keys.timeout),
                "\(DurationParser.format(timeout)) exceeds executor '\(executor.name)''s max_timeout "
                    + "\(DurationParser.format(maximum)), which bounds it")
        }
        return step
    }

    /// The step's executor, which must be in the configuration; the default executor when none is named.
    private func stepExecutor(_ entries: ConfigEntries, _ config: DaemonConfig) -> ExecutorConfig? {
        let key = ConfigSchema.PlaybookStepKeys.executor
        guard let node = entries[key] else { return config.executor(named: config.defaultExecutorName) }
        guard let name = strictString(node, entries.path(key)) else { return nil }
        guard let executor = config.executor(named: name) else {
            let known = config.executors.map { "'\($0.name)'" }.joined(separator: ", ")
            error(node, entries.path(key), "no executor '\(name)' in the configuration (executors: \(known))")
            return nil
        }
        return executor
    }

    /// Each argument parsed as a template; the command (the first) must be literal.
    private func argvTemplates(_ node: Node, _ path: String, _ parameters: [PlaybookParameter]) -> [ArgvTemplate]? {
        guard let words = strings(node, path) else { return nil }
        guard !words.isEmpty else {
            error(node, path, "expected the command and its arguments, [COMMAND, …]")
            return nil
        }
        var templates: [ArgvTemplate] = []
        for (index, word) in words.enumerated() {
            let item = node.sequence?[index]
            switch ArgvTemplate.parse(word) {
            case .failure(let problem):
                error(item, "\(path)[\(index)]", problem.message)
            case .success(let template):
                if let parameter = template.parameter {
                    guard index > 0 else {
                        error(item, "\(path)[0]", "the command must be literal: a parameter cannot choose the program")
                        continue
                    }
                    guard parameters.contains(where: { $0.name == parameter }) else {
                        let declared = parameters.map(\.name).joined(separator: ", ")
                        error(
                            item, "\(path)[\(index)]",
                            "unknown parameter '\(parameter)' (declared: \(declared.isEmpty ? "none" : declared))")
                        continue
                    }
                }
                templates.append(template)
            }
        }
        return templates.count == words.count ? templates : nil
    }
}
