import RunvoyDaemon

/// The daemon is the RunvoyDaemon library, so that tests and fuzz targets can reach every part of it.
@main
enum RunvoydMain {
    static func main() async {
        await RunvoydCommand.main()
    }
}
