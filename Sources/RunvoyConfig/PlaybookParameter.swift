/// A typed parameter of a playbook. Values are plain text on the wire and are validated against the type before
/// anything runs; they are never secrets (a playbook's steps take secrets from their executors).
public struct PlaybookParameter: Sendable, Equatable {
    /// 1-64 characters of a-z, 0-9 and '_', starting with a letter.
    public var name: String
    public var type: PlaybookParameterType
    /// Shown by `playbook show` and in shell completions.
    public var description: String?
    /// Whether a run must give it (a parameter with a default never must).
    public var required: Bool = false
    /// The value when a run gives none, valid for the type; nil: none (an argument made only of it is left out).
    public var defaultValue: String?
    public var line: Int

    public init(name: String, type: PlaybookParameterType, line: Int) {
        self.name = name
        self.type = type
        self.line = line
    }
}

/// What values a parameter accepts.
public enum PlaybookParameterType: Sendable, Equatable {
    /// Any text matching the regular expression as a whole (anchored at both ends); any text when nil.
    case string(pattern: String?)
    /// One of these values, exactly.
    case enumeration([String])
    /// A decimal integer within the bounds given (each optional).
    case integer(min: Int64?, max: Int64?)
    /// `true` or `false`.
    case boolean
    /// An absolute path under one of these paths, as a command rule's `path_under` decides.
    case path(under: [String])

    /// The name written in the file: string, enum, integer, boolean, path.
    public var name: String {
        switch self {
        case .string: "string"
        case .enumeration: "enum"
        case .integer: "integer"
        case .boolean: "boolean"
        case .path: "path"
        }
    }
}
