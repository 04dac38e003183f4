import ArgumentParser
import RunvoyKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `runvoyctl whoami`: what the daemon sees of you.
struct WhoamiCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Print who the daemon sees you as, and the executors you may use.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        do {
            let client = try RunvoyClient(socketPath: global.socketPath)
            let me = try client.call(.whoami, params: NoParams(), result: WhoamiResult.self)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(me), as: UTF8.self))
                return
            }
            print(
                "uid=\(me.uid)(\(me.user ?? "?")) gid=\(me.gid)(\(me.group ?? "?")) groups=\(me.groups.joined(separator: ",")) pid=\(me.pid)"
            )
            print("admin: \(me.admin ? "yes" : "no")")
            print("peer pidfd: \(me.pidfd ? "yes" : "no")")
            let executors = me.executors.map { $0 == me.defaultExecutor ? "\($0) (default)" : $0 }
            print("executors: \(executors.isEmpty ? "none" : executors.joined(separator: ", "))")
        } catch let error as ClientError {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
    }
}
