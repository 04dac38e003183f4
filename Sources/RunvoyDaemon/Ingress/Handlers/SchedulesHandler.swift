import RunvoyConfig
import RunvoyKit

/// `schedules`: the playbooks' schedules, each with its timer's state, next run and last result. Anyone with a
/// role may look (`executors_read`, like `locks`); administrators and holders of `view_all` see every schedule,
/// others those of the playbooks they may run.
struct SchedulesHandler: MethodHandler {
    static let method = Method.schedules.rawValue
    static let params = ParamsRule.ignored(NoParams())

    func handle(_: NoParams, context: RequestContext) async throws -> Outcome<SchedulesResult> {
        try context.require(.executorsRead)
        let all: [ScheduleInfo]
        if let schedules = context.server.schedules {
            all = await schedules.list()
        } else {
            all = context.config.playbooks.compactMap { playbook in
                playbook.schedule.map {
                    ScheduleInfo(
                        playbook: playbook.name, calendar: $0.calendar, runAsCaller: $0.runAsCaller,
                        state: "inactive", reason: "runvoyd keeps no timers here",
                        unit: ScheduleUnits.timerName(playbook.name))
                }
            }
        }
        let (caller, config) = (context.caller, context.config)
        let seesAll = context.permits(.viewAll) || Authorizer.roles(caller, config).contains(.admin)
        return .result(
            SchedulesResult(
                schedules: all.filter { info in
                    seesAll
                        || config.playbook(named: info.playbook).map { PlaybookAccess.mayRun(caller, $0, config) }
                            == true
                }))
    }
}
