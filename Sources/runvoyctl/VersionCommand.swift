import ArgumentParser
import RunvoyKit

/// `runvoyctl version`: client and daemon versions, and the protocol versions both speak.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the client's and the daemon's versions.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        printLine(
            "runvoyctl \(RunvoyProtocol.softwareVersion) (protocol \(RunvoyProtocol.supportedVersions.map(String.init).joined(separator: ",")))"
        )
        do throws(ClientError) {
            let client = try RunvoyClient(socketPath: global.socketPath)
            let hello = try client.call(
                .hello,
                params: HelloParams(
                    client: "runvoyctl/\(RunvoyProtocol.softwareVersion)", versions: RunvoyProtocol.supportedVersions),
                result: HelloResult.self)
            printLine(
                "\(hello.daemon) \(hello.version) (protocol \(hello.protocols.map(String.init).joined(separator: ",")), max frame \(hello.maxFrameBytes) bytes)"
            )
        } catch {
            complain(error.description)
            throw ExitCode(CtlExit.code(for: error))
        }
    }
}
