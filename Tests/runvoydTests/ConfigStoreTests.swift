import Foundation
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// The configuration store tells its observers of reloads in the order they were made.
@Suite struct ConfigStoreTests {
    /// Two reloads in quick succession: the observer is told of the newer one last, even when telling it of the
    /// older one is slow. (Before, observers were called outside the store's lock: the older reload, told
    /// second, left the observer on the configuration that is no longer in force.)
    @Test func twoQuickReloadsReachObserversInOrder() throws {
        let base = try ConfigLoader.parse(yaml: RouterTests.developerYAML, file: "(test)")
        var (olderConfig, newer) = (base, base)
        (olderConfig.digest, newer.digest) = ("older", "newer")
        let older = olderConfig
        let store = ConfigStore(base)
        let seen = Mutex<[String]>([])
        let newerTold = DispatchSemaphore(value: 0)
        store.observe { config in
            // Telling of the older one takes a while: long enough for the newer reload to come meanwhile (it
            // waits, bounded, for the newer one to be told; with the order kept, that never happens first).
            if config.digest == "older" { _ = newerTold.wait(timeout: .now() + .milliseconds(500)) }
            seen.withLock { $0.append(config.digest) }
            if config.digest == "newer" { newerTold.signal() }
        }
        let olderReload = Thread { store.replace(with: older) }
        olderReload.start()
        // The newer reload begins once the older one has swapped its snapshot in.
        while store.current.digest != "older" { usleep(100) }
        store.replace(with: newer)
        while seen.withLock({ $0.count }) < 3 { usleep(100) }
        #expect(store.current.digest == "newer")
        #expect(seen.withLock { $0 } == [base.digest, "older", "newer"])
    }
}
