import Glibc
import RunvoyKit

extension ExecLaunch {
    /// Starts a sandboxed executor's command as the execution's transient unit: with the same environment, pipes
    /// and rlimits a spawned command gets, the executor's `sandbox:` and `limits:` as unit properties. Without
    /// units here it is refused (`sandbox_unavailable`): a sandbox is never silently dropped.
    func startUnit(
        _ plan: ExecPlan, _ injection: SecretInjection, id: String
    ) async throws(LaunchFailure.Stage) -> (SpawnedProcess, any ExecutionScope) {
        guard let units else {
            throw .spawn(SpawnError(.sandboxUnavailable("this daemon does not start transient units"), errno: 0))
        }
        var environment = plan.environment
        for (key, value) in injection.environment { environment[key] = value }
        let request = SpawnRequest(
            path: plan.command, argv: plan.launchArgv, environment: environment,
            workingDirectory: plan.workingDirectory,
            identity: plan.identity, stdinPipe: plan.wantsStdin, terminal: plan.terminal,
            resourceLimits: plan.executor.rlimits)
        do throws(SpawnError) {
            let (process, scope) = try await units.start(
                request, executionID: id, executor: plan.executor,
                runtimeDirectory: plan.config.secrets.runtimeDirectory)
            return (process, scope)
        } catch {
            throw .spawn(error)
        }
    }
}
