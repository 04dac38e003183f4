/// How one argument of a command rule is matched.
public enum ArgumentMatcher: Sendable, Equatable {
    /// Exactly this string.
    case literal(String)
    /// Any one of these strings.
    case oneOf([String])
    /// The whole argument matches this regular expression (anchored at both ends).
    case regex(String)
    /// A path (absolute, or relative to the executor's working directory) that, with `.`/`..` and symlinks
    /// resolved, lies inside this directory.
    case pathUnder(String)

    /// How the rule is written in `runvoyctl capabilities` and in denials.
    public var display: String {
        switch self {
        case .literal(let word): ArgumentMatcher.quoteIfNeeded(word)
        case .oneOf(let words): "{" + words.map(ArgumentMatcher.quoteIfNeeded).joined(separator: "|") + "}"
        case .regex(let pattern): "/\(pattern)/"
        case .pathUnder(let directory): "<path under \(directory)>"
        }
    }

    static func quoteIfNeeded(_ word: String) -> String {
        let special = "\"'\\|{}<>*".unicodeScalars
        let plain =
            !word.isEmpty
            && word.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && !special.contains($0) }
        return plain ? word : "\"" + word.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}

/// One command rule of an executor: an argv shape that is allowed or denied.
///
/// The first element names the command; it is compared after both sides are resolved through the executor's
/// PATH, so `terraform` and `/usr/bin/terraform` are the same command. A final `*` admits any further arguments.
/// A rule written `any` matches every command.
public struct ArgvPattern: Sendable, Equatable {
    public enum Effect: String, Sendable, Equatable {
        case allow
        case deny
    }

    /// The argument matchers, without the trailing `*`. Empty for `any`.
    public var elements: [ArgumentMatcher]
    /// Whether a final `*` admits any number of further arguments.
    public var allowsTrailingArguments: Bool
    public var effect: Effect
    public var line: Int
    /// An allow rule's own approval policy, instead of its executor's (`count: 0`: none); nil: the executor's.
    public var approval: ApprovalPolicy?

    public init(elements: [ArgumentMatcher], allowsTrailingArguments: Bool, effect: Effect = .allow, line: Int) {
        self.elements = elements
        self.allowsTrailingArguments = allowsTrailingArguments
        self.effect = effect
        self.line = line
    }

    /// Literal elements, as older configurations wrote every rule.
    public init(elements: [String], allowsTrailingArguments: Bool, effect: Effect = .allow, line: Int) {
        self.init(
            elements: elements.map { .literal($0) }, allowsTrailingArguments: allowsTrailingArguments, effect: effect,
            line: line)
    }

    /// The rule that matches every command.
    public static func any(effect: Effect = .allow, line: Int) -> ArgvPattern {
        ArgvPattern(elements: [ArgumentMatcher](), allowsTrailingArguments: true, effect: effect, line: line)
    }

    public var isAny: Bool { elements.isEmpty }

    /// The rule as `runvoyctl capabilities` shows it: `terraform {plan|apply} *`, `deny rm *`, `any`.
    public var display: String {
        let body =
            isAny ? "any" : (elements.map(\.display) + (allowsTrailingArguments ? ["*"] : [])).joined(separator: " ")
        return effect == .deny ? "deny " + body : body
    }
}
