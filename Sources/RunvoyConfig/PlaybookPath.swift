/// Paths as text: the configuration cannot ask the filesystem (the daemon does, through `path_under`).
enum PlaybookPath {
    /// The components after the leading `/`: `/a//b/` is `["a", "", "b", ""]`, `/` is `[]`.
    static func components(_ path: String) -> [Substring] {
        path == "/" ? [] : path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
    }

    /// The components of an absolute path with `.`, `..` and empty ones applied as text (never above `/`).
    static func normalized(components path: String) -> [Substring] {
        var out: [Substring] = []
        for component in components(path) {
            switch component {
            case "", ".": continue
            case "..": _ = out.popLast()
            default: out.append(component)
            }
        }
        return out
    }

    /// Whether `path` is `base` or below it, component by component, byte for byte (as the kernel compares names;
    /// Swift's `==` would take canonically equivalent names as one).
    static func isWithin(_ path: [Substring], _ base: [Substring]) -> Bool {
        path.count >= base.count && zip(path, base).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }
}
