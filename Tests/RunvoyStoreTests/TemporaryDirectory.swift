import Glibc

/// A fresh directory under /tmp, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/runvoy-store-test.XXXXXX".utf8CString)
        let made = mkdtemp(&template)!
        path = String(cString: made)
    }

    func remove() {
        _ = system("rm -rf '\(path)'")
    }
}
