import Yams

/// An executor's `commands`: `any`, or a list of rules, each an argv shape, `{allow: SHAPE}` or `{deny: SHAPE}`;
/// a shape's arguments are words, lists of alternatives, `{regex: RE}` or `{path_under: DIR}`.
extension ConfigParser {
    private static let patternHelp =
        "each rule is `any`, a list of arguments such as [systemctl, restart, nginx], or {allow: RULE} / {deny: RULE}"

    func parseCommands(_ node: Node, _ path: String) -> CommandRule? {
        if let scalar = node.scalar {
            if scalar.string == "any" { return .any }
            error(node, path, "expected `any` or a list of rules")
            return nil
        }
        guard let sequence = node.sequence else {
            error(node, path, "expected `any` or a list of rules")
            return nil
        }
        var patterns: [ArgvPattern] = []
        var ok = true
        for (index, item) in sequence.enumerated() {
            if let pattern = parseRule(item, "\(path)[\(index)]") {
                patterns.append(pattern)
            } else {
                ok = false
            }
        }
        return ok ? .patterns(patterns) : nil
    }

    /// One rule: a shape, or a mapping of its effect (`RuleKeys`) to a shape, with an allow rule's own `approval`
    /// beside it. Nil (reported) when any part of it is wrong.
    private func parseRule(_ item: Node, _ path: String) -> ArgvPattern? {
        var effect = ArgvPattern.Effect.allow
        var body = item
        var approval: ApprovalPolicy?
        if let mapping = item.mapping {
            let keys = mapping.map { $0.key.scalar?.string ?? "" }
            let effects = keys.compactMap(ArgvPattern.Effect.init(rawValue:))
            guard effects.count == 1, keys.allSatisfy(ConfigSchema.RuleKeys.section.names.contains),
                keys.count == Set(keys).count, let kind = effects.first,
                let value = mapping.first(where: { $0.key.scalar?.string == kind.rawValue })?.value
            else {
                error(item, path, Self.patternHelp)
                return nil
            }
            effect = kind
            body = value
            let approvalKey = ConfigSchema.RuleKeys.approval.name
            if let node = mapping.first(where: { $0.key.scalar?.string == approvalKey })?.value {
                guard kind == .allow else {
                    error(node, "\(path).\(approvalKey)", "only an allow rule takes an approval")
                    return nil
                }
                guard let policy = parseApproval(node, "\(path).\(approvalKey)") else { return nil }
                approval = policy
            }
        }
        let line = item.mark?.line ?? 1
        if body.scalar?.string == "any" {
            var pattern = ArgvPattern.any(effect: effect, line: line)
            pattern.approval = approval
            return pattern
        }
        guard let elements = body.sequence, elements.count > 0 else {
            error(item, path, Self.patternHelp)
            return nil
        }
        guard let (matchers, trailing) = parseShape(elements, path) else { return nil }
        var pattern = ArgvPattern(elements: matchers, allowsTrailingArguments: trailing, effect: effect, line: line)
        pattern.approval = approval
        return pattern
    }

    /// A shape's arguments, and whether it ends in `"*"` (allowed only there, and not alone). Every wrong argument
    /// is reported before nil is returned.
    private func parseShape(_ elements: Node.Sequence, _ path: String) -> (matchers: [ArgumentMatcher], trailing: Bool)?
    {
        var matchers: [ArgumentMatcher] = []
        var trailing = false
        var ok = true
        for (position, element) in elements.enumerated() {
            if let word = element.scalar?.string, word == "*" {
                if position != elements.count - 1 {
                    error(element, path, "\"*\" is only allowed as the last element (any remaining arguments)")
                    ok = false
                } else if position == 0 {
                    error(element, path, "a rule must name its command before \"*\" (or be `any`)")
                    ok = false
                } else {
                    trailing = true
                }
                continue
            }
            if let matcher = parseMatcher(element, "\(path)[\(position)]") {
                matchers.append(matcher)
            } else {
                ok = false
            }
        }
        return ok ? (matchers, trailing) : nil
    }

    /// One argument of a rule: a string, a list of alternatives, or a mapping of one `MatcherKeys` key.
    private func parseMatcher(_ node: Node, _ path: String) -> ArgumentMatcher? {
        if let scalar = node.scalar { return .literal(scalar.string) }
        if let sequence = node.sequence {
            let words = sequence.compactMap { $0.scalar?.string }
            guard words.count == sequence.count, !words.isEmpty else {
                error(node, path, "alternatives are a non-empty list of strings, e.g. [plan, apply]")
                return nil
            }
            return .oneOf(words)
        }
        if let mapping = node.mapping, mapping.count == 1, let key = mapping.first?.key.scalar?.string,
            let value = mapping.first?.value.scalar?.string
        {
            switch key {
            case ConfigSchema.MatcherKeys.regex.name:
                do {
                    _ = try Regex(value)
                } catch {
                    self.error(node, path, "not a valid regular expression: \(error)")
                    return nil
                }
                return .regex(value)
            case ConfigSchema.MatcherKeys.pathUnder.name:
                guard value.hasPrefix("/") else {
                    error(node, path, "path_under needs an absolute directory")
                    return nil
                }
                return .pathUnder(value)
            default:
                break
            }
        }
        error(node, path, "an argument is a string, a list of alternatives, {regex: RE} or {path_under: DIR}")
        return nil
    }
}
