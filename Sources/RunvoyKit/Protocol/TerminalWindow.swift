/// The window size a terminal execution started with (`exec` with `tty`), as the history keeps it.
public struct TerminalWindow: Codable, Sendable, Equatable {
    public var rows: Int
    public var cols: Int

    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }
}
