import Yams

/// `expect`: expectations about the policy, each `{user, executor, argv, result}`.
extension ConfigParser {
    func parseExpectations(_ top: ConfigEntries) -> [PolicyExpectation] {
        guard let node = top[ConfigSchema.TopKeys.expect] else { return [] }
        guard let sequence = node.sequence else {
            error(
                node, "expect",
                "expected a list such as [{user: alice, executor: deploy, argv: [terraform, apply], result: deny}]")
            return []
        }
        return sequence.enumerated().compactMap { index, item in parseExpectation(item, "expect[\(index)]") }
    }

    private func parseExpectation(_ node: Node, _ path: String) -> PolicyExpectation? {
        typealias Keys = ConfigSchema.ExpectKeys
        guard let entries = fields(node, path, ConfigSchema.ExpectKeys.section) else { return nil }
        guard let user = string(Keys.user, in: entries) else {
            error(node, entries.path(Keys.user), "required: the user the expectation is about")
            return nil
        }
        let executor = string(Keys.executor, in: entries)
        guard let argv = strings(Keys.argv, in: entries), !argv.isEmpty else {
            error(node, entries.path(Keys.argv), "required: the command as a list, e.g. [terraform, apply]")
            return nil
        }
        guard let result = string(Keys.result, in: entries), result == "allow" || result == "deny" else {
            error(entries[Keys.result] ?? node, entries.path(Keys.result), "required: allow or deny")
            return nil
        }
        return PolicyExpectation(
            user: user, executor: executor, argv: argv, allow: result == "allow", line: node.mark?.line ?? 1)
    }

    /// Every executor an expectation names must be defined.
    func checkExpectedExecutors(_ expectations: [PolicyExpectation], _ executors: [ExecutorConfig]) {
        for expectation in expectations {
            if let name = expectation.executor, !executors.contains(where: { $0.name == name }) {
                report(
                    .error, nil, "expect", "an expectation names executor '\(name)', which is not defined",
                    line: expectation.line)
            }
        }
    }
}
