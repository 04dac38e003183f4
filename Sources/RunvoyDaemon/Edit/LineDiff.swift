/// A unified diff (`diff -u` style, three lines of context) of two texts, line by line, for the history of
/// `runvoyctl edit`. Myers' algorithm, which takes time linear in the size of the texts times the number of lines
/// that differ; past `maxChanges` differing lines (fewer for long texts, so that the search keeps at most
/// `traceBudget` integers) it gives up on the detail and says how many lines each side has.
enum LineDiff {
    static let context = 3
    static let maxChanges = 4000
    /// The search keeps a copy of its frontier (2 × lines + 3 integers) per change: at most this many in all
    /// (32 MiB), whatever the texts (review of issue 16: 7,000 empty lines took 302 MiB before).
    static let traceBudget = 4 << 20

    enum Edit: Equatable {
        case same(Int, Int)
        case removed(Int)
        case added(Int)
    }

    /// The diff of `old` and `new` under the headers `--- label` and `+++ label`; empty when they are the same.
    static func unified(_ old: [UInt8], _ new: [UInt8], label: String) -> [UInt8] {
        if old == new { return [] }
        let a = lines(old)
        let b = lines(new)
        var out = Array("--- \(label)\n+++ \(label)\n".utf8)
        guard let script = edits(a, b) else {
            out += Array("@@ -1,\(a.count) +1,\(b.count) @@ (too many lines differ to show)\n".utf8)
            return out
        }
        for hunk in hunks(script) { render(hunk, a, b, into: &out) }
        return out
    }

    /// Each line with its newline, if it has one.
    static func lines(_ text: [UInt8]) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = 0
        for index in text.indices where text[index] == UInt8(ascii: "\n") {
            result.append(text[start...index])
            start = index + 1
        }
        if start < text.count { result.append(text[start...]) }
        return result
    }

    /// The shortest edit script from `a` to `b`, nil when it has more than `maxChanges` changes.
    static func edits(_ a: [ArraySlice<UInt8>], _ b: [ArraySlice<UInt8>]) -> [Edit]? {
        let n = a.count
        let m = b.count
        let offset = n + m + 1
        var v = [Int](repeating: 0, count: 2 * offset + 1)
        var trace: [[Int]] = []
        let frontier = 2 * offset + 1
        for d in 0...min(n + m, maxChanges, traceBudget / frontier) {
            trace.append(v)
            for k in stride(from: -d, through: d, by: 2) {
                var x =
                    (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]))
                    ? v[offset + k + 1] : v[offset + k - 1] + 1
                var y = x - k
                while x < n, y < m, a[x] == b[y] {
                    x += 1
                    y += 1
                }
                v[offset + k] = x
                if x >= n && y >= m { return backtrack(trace, n, m, offset) }
            }
        }
        return nil
    }

    private static func backtrack(_ trace: [[Int]], _ n: Int, _ m: Int, _ offset: Int) -> [Edit] {
        var script: [Edit] = []
        var x = n
        var y = m
        for d in stride(from: trace.count - 1, through: 0, by: -1) {
            let v = trace[d]
            let k = x - y
            let previous = (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1])) ? k + 1 : k - 1
            let startX = d == 0 ? 0 : v[offset + previous]
            let startY = startX - previous
            while x > startX && y > startY {
                x -= 1
                y -= 1
                script.append(.same(x, y))
            }
            if d > 0 {
                if x == startX {
                    y -= 1
                    script.append(.added(y))
                } else {
                    x -= 1
                    script.append(.removed(x))
                }
            }
        }
        return script.reversed()
    }

    /// The script cut into hunks: runs of changes with up to `context` unchanged lines around them.
    static func hunks(_ script: [Edit]) -> [ArraySlice<Edit>] {
        let changed = script.indices.filter { if case .same = script[$0] { false } else { true } }
        var result: [ArraySlice<Edit>] = []
        var index = 0
        while index < changed.count {
            let start = max(0, changed[index] - context)
            var end = changed[index]
            while index + 1 < changed.count && changed[index + 1] - end <= 2 * context {
                index += 1
                end = changed[index]
            }
            result.append(script[start...min(script.count - 1, end + context)])
            index += 1
        }
        return result
    }

    private static func render(
        _ hunk: ArraySlice<Edit>, _ a: [ArraySlice<UInt8>], _ b: [ArraySlice<UInt8>], into out: inout [UInt8]
    ) {
        var oldStart: Int?
        var newStart: Int?
        var oldCount = 0
        var newCount = 0
        var body: [UInt8] = []
        func line(_ mark: Character, _ text: ArraySlice<UInt8>) {
            body.append(UInt8(ascii: mark.unicodeScalars.first!))
            body += text
            if text.last != UInt8(ascii: "\n") { body += Array("\n\\ No newline at end of file\n".utf8) }
        }
        for edit in hunk {
            switch edit {
            case .same(let x, let y):
                oldStart = oldStart ?? x
                newStart = newStart ?? y
                oldCount += 1
                newCount += 1
                line(" ", a[x])
            case .removed(let x):
                oldStart = oldStart ?? x
                oldCount += 1
                line("-", a[x])
            case .added(let y):
                newStart = newStart ?? y
                newCount += 1
                line("+", b[y])
            }
        }
        let from = oldCount == 0 ? (oldStart ?? positionBefore(hunk, old: true)) : (oldStart ?? 0) + 1
        let to = newCount == 0 ? (newStart ?? positionBefore(hunk, old: false)) : (newStart ?? 0) + 1
        out += Array("@@ -\(from),\(oldCount) +\(to),\(newCount) @@\n".utf8)
        out += body
    }

    /// For a hunk with no line on one side: the line number before which it stands (as `diff -u` writes it).
    private static func positionBefore(_ hunk: ArraySlice<Edit>, old: Bool) -> Int {
        for edit in hunk {
            switch edit {
            case .removed(let x) where !old: return x
            case .added(let y) where old: return y
            default: continue
            }
        }
        return 0
    }
}
