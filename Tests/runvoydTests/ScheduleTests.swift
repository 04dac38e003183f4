import Logging
import RunvoyConfig
import RunvoyKit
import Testing

@testable import RunvoyDaemon

/// Playbook schedules (issue 19, item 3): the timer and service a schedule is made of (their properties, names and
/// the service's argv, which no playbook name, user or calendar can add a piece to), and `ScheduleManager` making,
/// replacing and removing them against `FakeSystemd`, or keeping them `inactive` without a bus. (Against the real
/// systemd: scripts/e2e-systemd.)
@Suite(.serialized) struct ScheduleTests {
    static let client = "/usr/bin/runvoyctl"
    static let socket = "/run/runvoy/runvoyd.sock"

    static func config(_ schedules: [String: PlaybookSchedule]) throws -> DaemonConfig {
        var config = try ConfigLoader.parse(
            yaml: "executors:\n  main:\n    run_as: {user: nobody}\n    commands: any\n", file: "schedules.yaml")
        config.playbooks = schedules.keys.sorted().map { name in
            var playbook = PlaybookConfig(
                name: name, steps: [PlaybookStep(name: "one", executor: nil, argv: [.init(literal: "true")], line: 1)],
                file: "playbooks/\(name).yaml")
            playbook.schedule = schedules[name]
            return playbook
        }
        return config
    }

    static func units(
        _ playbook: String = "nightly", calendar: String = "Mon..Fri 03:00", user: String = "alice"
    )
        throws(ScheduleUnits.Invalid) -> ScheduleUnits
    {
        try ScheduleUnits(
            playbook: playbook, schedule: PlaybookSchedule(calendar: calendar, runAsCaller: user, line: 1),
            client: client, socket: socket)
    }

    // MARK: - The units

    @Test func aScheduleIsATimerOnItsCalendarAndAServiceThatRunsRunvoyctlAsItsUser() throws {
        let units = try Self.units()
        #expect(units.timerName == "runvoy-schedule-nightly.timer")
        #expect(units.serviceName == "runvoy-schedule-nightly.service")
        #expect(
            units.timerProperties == [
                .string("Description", "runvoy schedule of playbook nightly"), .onCalendar("Mon..Fri 03:00"),
                .uint64("AccuracyUSec", 1_000_000), .boolean("RemainAfterElapse", true),
            ])
        #expect(units.timerProperties[1].signature == "a(ss)" && units.timerProperties[1].name == "TimersCalendar")
        #expect(
            units.argv == [
                "/usr/bin/runvoyctl", "playbook", "run", "--socket", "/run/runvoy/runvoyd.sock", "--schedule", "--",
                "nightly",
            ])
        #expect(units.serviceProperties.contains(.string("User", "alice")))
        #expect(units.serviceProperties.contains(.string("Type", "oneshot")))
        #expect(units.serviceProperties.contains(.boolean("NoNewPrivileges", true)))
        #expect(units.serviceProperties.contains(.execStart(path: Self.client, argv: units.argv)))
        #expect(ScheduleUnits.playbook(ofUnit: units.timerName) == "nightly")
        #expect(ScheduleUnits.playbook(ofUnit: units.serviceName) == "nightly")
        #expect(ScheduleUnits.playbook(ofUnit: "runvoy-01ABC.service") == nil)
    }

    @Test func namesUsersAndCalendarsThatCouldAddAPieceAreRefused() {
        for name in [
            "", "Nightly", "-x", ".x", "a b", "a/b", "a\\x2db", "a;b", "a$b", "a\nb", "a@b", "a:b", "é",
            String(repeating: "a", count: 65),
        ] {
            #expect(throws: ScheduleUnits.Invalid.self, "\(name)") { try Self.units(name) }
        }
        for user in [
            "", "-alice", ".alice", "al ice", "alice\n", "al:ice", "al/ice", String(repeating: "a", count: 33),
        ] {
            #expect(throws: ScheduleUnits.Invalid.self, "\(user)") { try Self.units(user: user) }
        }
        for calendar in ["", "   ", "daily\nUser=root", "daily\u{7F}", String(repeating: "*", count: 257)] {
            #expect(throws: ScheduleUnits.Invalid.self) { try Self.units(calendar: calendar) }
        }
        #expect(throws: ScheduleUnits.Invalid.self) {
            try ScheduleUnits(
                playbook: "x", schedule: PlaybookSchedule(calendar: "daily", runAsCaller: "a", line: 1),
                client: "runvoyctl", socket: Self.socket)
        }
        // What is accepted lands in its one place: the name is the argv's last element, after `--`.
        for name in ["a", "a.b-c_d", "0abc", String(repeating: "z", count: 64)] {
            let units = try? Self.units(name)
            #expect(units?.argv.count == 8 && units?.argv.last == name && units?.argv[6] == "--", "\(name)")
        }
    }

    // MARK: - The manager

    static func manager(
        _ config: DaemonConfig, bus: SystemdBus?, client: String? = ScheduleTests.client
    ) -> (ScheduleManager, ConfigStore) {
        let store = ConfigStore(config)
        let manager = ScheduleManager(store: store, client: client, logger: Logger(label: "schedule-tests")) {
            if let bus { return .success(bus) }
            return .failure(SystemdBus.Failure(message: "systemd is not the service manager here (test)"))
        }
        return (manager, store)
    }

    @Test func withoutABusEveryScheduleIsInactiveWithTheReason() async throws {
        let config = try Self.config(["nightly": PlaybookSchedule(calendar: "daily", runAsCaller: "alice", line: 3)])
        let (manager, _) = Self.manager(config, bus: nil)
        await manager.apply(config)
        let list = await manager.list()
        #expect(list.count == 1)
        #expect(list.first?.state == "inactive")
        #expect(list.first?.reason?.contains("systemd is not the service manager here") == true)
        #expect(list.first?.unit == "runvoy-schedule-nightly.timer" && list.first?.nextRunMs == nil)
    }

    @Test func withoutRunvoyctlEveryScheduleFailsSayingSo() async throws {
        let fake = try FakeSystemd()
        defer { fake.stop() }
        let bus = try SystemdBus.connect(fd: fake.clientFD).get()
        let config = try Self.config(["nightly": PlaybookSchedule(calendar: "daily", runAsCaller: "alice", line: 3)])
        let (manager, _) = Self.manager(config, bus: bus, client: nil)
        await manager.apply(config)
        let list = await manager.list()
        #expect(list.first?.state == "failed")
        #expect(list.first?.reason?.contains("runvoyctl is not found") == true)
        #expect(fake.starts.isEmpty)
    }

    @Test func theTimerIsMadeWithItsServiceReplacedWhenChangedAndRemovedWhenGone() async throws {
        let fake = try FakeSystemd()
        defer { fake.stop() }
        let bus = try SystemdBus.connect(fd: fake.clientFD).get()
        let first = try Self.config([
            "nightly": PlaybookSchedule(calendar: "*-*-* 03:00:00", runAsCaller: "alice", line: 3),
            "weekly": PlaybookSchedule(calendar: "Sun 04:00", runAsCaller: "bob", line: 3),
        ])
        let (manager, _) = Self.manager(first, bus: bus)
        await manager.apply(first)
        #expect(fake.starts.count == 2)
        let dump = try #require(fake.starts.first { $0.contains("runvoy-schedule-nightly.timer") })
        for expected in [
            "STRING \"runvoy-schedule-nightly.timer\";", "STRING \"fail\";", "STRING \"TimersCalendar\";",
            "VARIANT \"a(ss)\"", "STRING \"OnCalendar\";", "STRING \"*-*-* 03:00:00\";", "STRING \"AccuracyUSec\";",
            "STRING \"runvoy-schedule-nightly.service\";", "STRING \"User\";", "STRING \"alice\";",
            "VARIANT \"a(sasb)\"", "STRING \"/usr/bin/runvoyctl\";", "STRING \"--schedule\";", "STRING \"nightly\";",
        ] {
            #expect(dump.contains(expected), "\(expected) not in:\n\(dump)")
        }
        // The service is the auxiliary unit of the same call, after the timer's properties.
        let timerAt = try #require(dump.range(of: "STRING \"OnCalendar\";"))
        let serviceAt = try #require(dump.range(of: "STRING \"runvoy-schedule-nightly.service\";"))
        #expect(timerAt.lowerBound < serviceAt.lowerBound)

        let list = await manager.list()
        #expect(list.map(\.playbook) == ["nightly", "weekly"])
        #expect(list.allSatisfy { $0.state == "active" && $0.reason == nil })
        #expect(list.first?.nextRunMs == Int64(FakeSystemd.nextElapseUsec / 1000))
        #expect(list.first?.lastRunMs == nil && list.first?.lastResult == nil)

        // The same configuration again (a change of grants, a reload that changed no schedule): nothing is made.
        await manager.apply(first)
        #expect(fake.starts.count == 2)
        #expect(fake.stops.isEmpty)

        // nightly changes its calendar, weekly goes away.
        let second = try Self.config([
            "nightly": PlaybookSchedule(calendar: "*-*-* 04:00:00", runAsCaller: "alice", line: 3)
        ])
        await manager.apply(second)
        #expect(fake.starts.count == 3)
        #expect(fake.starts.last?.contains("STRING \"*-*-* 04:00:00\";") == true)
        #expect(
            Set(fake.stops) == [
                "runvoy-schedule-nightly.timer", "runvoy-schedule-nightly.service", "runvoy-schedule-weekly.timer",
                "runvoy-schedule-weekly.service",
            ])
        #expect(await manager.list().map(\.playbook) == ["nightly"])

        // Shutdown removes what is left.
        await manager.removeAll()
        #expect(fake.stops.filter { $0 == "runvoy-schedule-nightly.timer" }.count == 2)
        #expect(await manager.list().isEmpty)
    }

    // MARK: - The method

    static func scheduled(_ name: String, access: AccessList) -> PlaybookConfig {
        var playbook = PlaybookConfig(
            name: name, steps: [PlaybookStep(name: "one", executor: nil, argv: [.init(literal: "true")], line: 1)],
            file: "(test)")
        playbook.access = access
        playbook.schedule = PlaybookSchedule(calendar: "daily", runAsCaller: "nobody", line: 1)
        return playbook
    }

    @Test func schedulesListsThoseOfPlaybooksTheCallerMayRunAndAdministratorsAll() async throws {
        let playbooks = [
            Self.scheduled("open", access: AccessList(users: ["nobody"])),
            Self.scheduled("closed", access: AccessList()),
        ]
        let request = #"{"v":1,"id":1,"method":"schedules"}"#
        try await InProcessConnection.with(caller: RouterTests.nobody, playbooks: playbooks) { connection in
            let reply = await connection.call(request)
            #expect(reply.contains(#""playbook":"open""#) && !reply.contains("closed"), "\(reply)")
            #expect(reply.contains(#""state":"inactive""#) && reply.contains("runvoyd keeps no timers here"))
            #expect(reply.contains(#""unit":"runvoy-schedule-open.timer""#) && reply.contains(#""next_run_ms":null"#))
        }
        let root = Caller.resolve(uid: 0, gid: 0, pid: 4242, hasPidfd: false)
        try await InProcessConnection.with(caller: root, playbooks: playbooks) { connection in
            let reply = await connection.call(request)
            #expect(reply.contains(#""playbook":"open""#) && reply.contains(#""playbook":"closed""#), "\(reply)")
        }
        try await InProcessConnection.with(
            caller: RouterTests.nobody, yaml: RouterTests.noRoleYAML, playbooks: playbooks
        ) { connection in
            let reply = await connection.call(request)
            #expect(reply.contains(#""code":"permission_denied""#), "\(reply)")
        }
    }
}
