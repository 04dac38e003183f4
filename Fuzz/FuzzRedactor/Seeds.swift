import FuzzSupport

/// Seed inputs for FuzzRedactor: secrets where commands typically print them. Fuzz/Corpus/FuzzRedactor was made
/// with `FuzzRedactor --write-seeds Fuzz/Corpus/FuzzRedactor`.
enum Seeds {
    /// A piece of output: filler, then a secret in some form (see `makeOutput`).
    enum Form {
        case raw
        case base64Inside(before: String, after: String, url: Bool)
        case urlEncoded(upper: Bool)
        case base64(url: Bool)
    }

    static func all() -> [(name: String, input: [UInt8])] {
        [
            ("raw", seed(["hunter2-password"], reads: [], [("login ok, password=", 0, .raw)], "\n")),
            (
                "basic-auth",
                seed(
                    ["s3cr3t!"], reads: [7, 3],
                    [("Authorization: Basic ", 0, .base64Inside(before: "bob:", after: "", url: false))], "\n")
            ),
            (
                "query",
                seed(["p@ss w/rd&more"], reads: [5], [("GET /login?user=bob&pass=", 0, .urlEncoded(upper: true))], "")
            ),
            (
                "two-secrets-byte-by-byte",
                seed(
                    ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"], reads: [1],
                    [("id=", 0, .raw), (" key=", 1, .raw), (" b64=", 1, .base64(url: true))], "\n")
            ),
            (
                "short-secret",
                seed(["abc"], reads: [2, 1], [("abcabc ", 0, .raw), ("=", 0, .urlEncoded(upper: false))], "ab")
            ),
        ]
    }

    static func seed(
        _ values: [String], reads: [Int], _ pieces: [(filler: String, secret: Int, form: Form)], _ tail: String
    ) -> [UInt8] {
        var seed = FuzzInputBuilder()
        seed.int(values.count, in: 1...4)
        for value in values {
            seed.int(value.utf8.count, in: 1...40)
            seed.bytes(Array(value.utf8))
        }
        seed.int(reads.count, in: 0...15)
        for read in reads { seed.int(read, in: 1...300) }
        seed.int(pieces.count, in: 0...8)
        for (filler, secret, form) in pieces {
            seed.int(filler.utf8.count, in: 0...48)
            seed.bytes(Array(filler.utf8))
            seed.int(secret, in: 0...values.count - 1)
            switch form {
            case .raw: seed.int(0, in: 0...4)
            case .base64Inside(let before, let after, let url):
                seed.int(1, in: 0...4)
                seed.int(before.utf8.count, in: 0...4)
                seed.bytes(Array(before.utf8))
                seed.int(after.utf8.count, in: 0...4)
                seed.bytes(Array(after.utf8))
                seed.bool(url)
            case .urlEncoded(let upper): seed.int(upper ? 2 : 3, in: 0...4)
            case .base64(let url):
                seed.int(4, in: 0...4)
                seed.bool(url)
            }
            // The whole form, not a near miss.
            seed.int(1, in: 0...3)
        }
        seed.bytes(Array(tail.utf8))
        return seed.input
    }
}
