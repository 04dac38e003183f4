/// A failure of the execution store or of stored output.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let rawValue: String
        public var description: String { rawValue }

        /// The database could not be opened, migrated, read or written.
        public static let database = Code(rawValue: "database")
        /// A stored-output file could not be created, written or read.
        public static let output = Code(rawValue: "output")
        /// Stored output is not in the expected format.
        public static let corrupt = Code(rawValue: "corrupt")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
