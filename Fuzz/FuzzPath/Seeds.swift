import FuzzSupport

/// Seed inputs for FuzzPath: paths through the tree's links, with a working directory, a rule's folder (indexes
/// into `Tree.folders`: 0 root, 1 a, 2 a/b, 3 b, 4 c, 5 abs, 6 /) and a writer.
/// Fuzz/Corpus/FuzzPath was made with `FuzzPath --write-seeds Fuzz/Corpus/FuzzPath`.
enum Seeds {
    static func all() -> [(name: String, input: [UInt8])] {
        [
            ("plain", seed("a/file", from: 0, under: 1)),
            ("dotdot", seed("a/b/../../c/../a/file", from: 0, under: 1)),
            ("link-up", seed("up/../a/across/x", from: 1, under: 3)),
            ("absolute-link", seed("abs/../../c/out/passwd", from: 0, under: 4, writer: true)),
            ("loop", seed("loop/x", from: 0, under: 0)),
            ("chain", seed("chain1/b/far/etc", from: 0, under: 1)),
            ("deep", seed("b/deep/../a/./file", from: 0, under: 4)),
            ("absolute", seed("/proc/self/cwd/a", from: 2, under: 6)),
        ]
    }

    static func seed(_ path: String, from workingDirectory: Int, under folder: Int, writer: Bool = false) -> [UInt8] {
        var seed = FuzzInputBuilder()
        seed.int(workingDirectory, in: 0...6)
        seed.int(folder, in: 0...6)
        seed.int(writer ? 1 : 0, in: 0...1)
        seed.bytes(Array(path.utf8))
        return seed.input
    }
}
