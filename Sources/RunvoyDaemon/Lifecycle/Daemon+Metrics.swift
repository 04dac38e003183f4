import Logging
import NIOPosix
import RunvoyConfig
import ServiceLifecycle

extension Daemon {
    /// Points the metrics' scrape-time gauges at the daemon's parts, and returns the services that expose them:
    /// none unless `metrics` configures a socket, a textfile or a TCP listener.
    func metricsServices(
        store: ConfigStore, executions: ExecutionManager, server: RunvoyServer, logger: Logger
    ) -> [any Service] {
        let settings = config.metrics
        DaemonMetrics.shared.configure(userLabels: settings.userLabels) {
            DaemonMetrics.Sample(
                running: executions.runningCount, queued: executions.queuedCount,
                connections: server.connections.current,
                configDigest: store.current.digest, configLoadedAtSeconds: Double(store.loadedAtMs) / 1000)
        }
        var services: [any Service] = MetricsServer.configured(
            settings, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        if let path = settings.textfile {
            services.append(MetricsTextfile(path: path, interval: settings.textfileInterval, logger: logger))
        }
        return services
    }
}
