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
        try remoteCall(global, .whoami, params: NoParams(), result: WhoamiResult.self, json: json) { me in
            printLine(
                "uid=\(me.uid)(\(me.user ?? "?")) gid=\(me.gid)(\(me.group ?? "?")) groups=\(me.groups.joined(separator: ",")) pid=\(me.pid)"
            )
            printLine("admin: \(me.admin ? "yes" : "no")")
            if let roles = me.roles { printLine("roles: \(roles.isEmpty ? "none" : roles.joined(separator: ", "))") }
            printLine("peer pidfd: \(me.pidfd ? "yes" : "no")")
            let executors = me.executors.map { $0 == me.defaultExecutor ? "\($0) (default)" : $0 }
            printLine("executors: \(executors.isEmpty ? "none" : executors.joined(separator: ", "))")
        }
    }
}
