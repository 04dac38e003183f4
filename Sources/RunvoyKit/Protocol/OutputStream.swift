/// Which of a command's streams a stored chunk came from: its output, or (`stdin`) the input it was given, stored
/// only where the executor has `record_input` and sent only to a client that asks for it (`logs` with `input`).
public enum OutputStreamKind: String, Sendable, Codable, Hashable {
    case stdout
    case stderr
    /// Recorded input (redacted like output): never on a terminal, never in binary frames or live `exec` output.
    case stdin

    /// Whether this is the command's output (stdout or stderr), not recorded input.
    public var isOutput: Bool { self != .stdin }
}
