/// Which of a command's output streams a chunk came from.
public enum OutputStreamKind: String, Sendable, Codable, Hashable {
    case stdout
    case stderr
}
