/// Durations as people write them in configuration and on the command line: `250ms`, `30s`, `5m`, `1h30m`,
/// `2d`, `1.5s`; a bare number is seconds.
public enum DurationParser {
    private static let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]

    /// The duration `text` denotes, or nil when it is empty, negative, malformed or absurdly large.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else { return nil }
        if let seconds = Double(trimmed) {
            return seconds >= 0 && seconds.isFinite && seconds < 1e10
                ? .milliseconds(Int64((seconds * 1000).rounded())) : nil
        }
        var total = 0.0
        var rest = Substring(trimmed)
        var lastUnitScale = Double.infinity
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { $0.isLetter }
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            // Units must go from large to small, each at most once: "1h30m", not "30m1h" or "1m1m".
            guard unit.1 < lastUnitScale else { return nil }
            lastUnitScale = unit.1
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        guard total.isFinite, total < 1e10 else { return nil }
        return .milliseconds(Int64((total * 1000).rounded()))
    }

    /// The shortest readable form: `1m30s`, `250ms`, `2h`.
    public static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let millisTotal = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if millisTotal == 0 { return "0s" }
        var out = ""
        var secondsLeft = millisTotal / 1000
        let millis = millisTotal % 1000
        for (unit, scale) in [("d", Int64(86400)), ("h", 3600), ("m", 60), ("s", 1)] where secondsLeft >= scale {
            out += "\(secondsLeft / scale)\(unit)"
            secondsLeft %= scale
        }
        if millis > 0 { out += "\(millis)ms" }
        return out
    }
}

extension StringProtocol {
    /// The text without leading and trailing whitespace.
    var trimmingSpaces: String {
        var view = Substring(self)
        while view.first?.isWhitespace == true { view.removeFirst() }
        while view.last?.isWhitespace == true { view.removeLast() }
        return String(view)
    }
}
