import FuzzSupport
import RunvoyConfig

/// The configuration parser (`ConfigLoader.parse`: Yams, then the schema-driven walk that collects diagnostics)
/// on any text. User and group names are looked up through NSS as `runvoyd --check-config` would; the fuzzer
/// needs no particular accounts (unknown ones are diagnostics like any other). Checks, besides "no crash":
/// - a refused configuration says why: at least one diagnostic, of severity error;
/// - an accepted one has no error among its warnings and carries the digest of the text it was read from.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let config = try ConfigLoader.parse(yaml: text, file: "fuzz.yaml")
        guard config.warnings.allSatisfy({ $0.severity == .warning }) else {
            fatalError("an accepted configuration carries an error: \(config.warnings)")
        }
        guard config.digest == ConfigLoader.digest(text) else {
            fatalError("the digest \(config.digest) is not the text's \(ConfigLoader.digest(text))")
        }
    } catch {
        guard error.diagnostics.contains(where: { $0.severity == .error }) else {
            fatalError("a refused configuration without an error: \(error.diagnostics)")
        }
        _ = error.description
    }
    return 0
}

@main enum FuzzConfigMain {
    static func main() { FuzzDriver.run { data, size in fuzz(data!, size) } }
}
