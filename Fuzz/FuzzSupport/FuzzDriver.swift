import CFuzzDriver
import Glibc
import RunvoyKit

/// The `main` of every fuzz target.
///
/// SwiftPM links an executable target with its `main` renamed and aliased back (`--defsym main=<Target>_main`),
/// so a target cannot leave `main` to libFuzzer: it always has one. Built by `scripts/fuzz`
/// (`-sanitize=fuzzer -DRUNVOY_LIBFUZZER`), this `main` hands the process to libFuzzer's driver, which takes
/// libFuzzer's usual options and corpus folders. In the normal build, where libFuzzer is not linked, it replays
/// the files (or every file in the folders) named on the command line through the same function, so an input
/// the fuzzer saved can be rerun in a plain debug build or a debugger. In both, `--write-seeds FOLDER` writes
/// the target's generated seed inputs (for targets whose inputs pack numbers with content: see `FuzzInputBuilder`).
public enum FuzzDriver {
    /// `LLVMFuzzerTestOneInput` as libFuzzer calls it.
    public typealias TestOneInput = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

    public static func run(_ body: TestOneInput, seeds: () -> [(name: String, input: [UInt8])] = { [] }) -> Never {
        let arguments = CommandLine.arguments
        if arguments.count == 3 && arguments[1] == "--write-seeds" {
            exit(writeSeeds(seeds(), to: arguments[2]) ? 0 : 1)
        }
        #if RUNVOY_LIBFUZZER
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            exit(LLVMFuzzerRunDriver(&argc, &argv, body))
        #else
            let paths = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }
            if paths.isEmpty {
                say("usage: \(CommandLine.arguments[0]) FILE|FOLDER... (replays inputs; scripts/fuzz fuzzes)")
                exit(2)
            }
            var count = 0
            for file in paths.flatMap(files) {
                guard let bytes = readFile(file) else {
                    say("cannot read \(file)")
                    exit(2)
                }
                // Never a nil pointer, as under libFuzzer, even for an empty input.
                _ = (bytes + [0]).withUnsafeBufferPointer { body($0.baseAddress, bytes.count) }
                count += 1
            }
            say("replayed \(count) input\(count == 1 ? "" : "s") without a failure")
            exit(0)
        #endif
    }

    /// `path` itself, or the files directly inside it when it is a folder, in name order.
    private static func files(at path: String) -> [String] {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return [path] }
        return FileSystem.entries(path).sorted().map { path + "/" + $0 }
    }

    private static func writeSeeds(_ seeds: [(name: String, input: [UInt8])], to folder: String) -> Bool {
        do throws(SystemError) {
            try FileSystem.makeDirectories(folder, mode: 0o755)
        } catch {
            say("cannot create \(folder): \(error)")
            return false
        }
        for (name, input) in seeds {
            let path = folder + "/" + name
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            let written = fd < 0 ? -1 : input.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if fd >= 0 { close(fd) }
            guard written == input.count else {
                say("cannot write \(path)")
                return false
            }
        }
        say("wrote \(seeds.count) seeds to \(folder)")
        return true
    }

    private static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

/// The whole content of the file at `path`, nil when it cannot be read.
public func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { free in SystemCall.retrying { read(fd, free.baseAddress, free.count) } }
        if n < 0 { return nil }
        if n == 0 { return bytes }
        bytes += buffer[0..<n]
    }
}
