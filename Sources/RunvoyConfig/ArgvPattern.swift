/// One accepted command shape: exact arguments, optionally followed by `*` for any remaining arguments.
public struct ArgvPattern: Sendable, Equatable {
    /// The exact elements, without the trailing `*`.
    public var elements: [String]
    /// Whether a final `*` admits any number of further arguments.
    public var allowsTrailingArguments: Bool
    public var line: Int

    public init(elements: [String], allowsTrailingArguments: Bool, line: Int) {
        self.elements = elements
        self.allowsTrailingArguments = allowsTrailingArguments
        self.line = line
    }

    /// Whether `argv` matches. `argv[0]` matches the first element if it is equal to it, or if `resolvedPath`
    /// (where the daemon found `argv[0]`) is.
    public func matches(argv: [String], resolvedPath: String?) -> Bool {
        guard let first = elements.first, let command = argv.first else { return false }
        if allowsTrailingArguments {
            guard argv.count >= elements.count else { return false }
        } else {
            guard argv.count == elements.count else { return false }
        }
        guard command == first || (resolvedPath != nil && resolvedPath == first) else { return false }
        for index in 1..<elements.count where argv[index] != elements[index] {
            return false
        }
        return true
    }
}
