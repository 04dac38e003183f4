#ifndef RUNVOY_CSYSTEMD_BUS_H
#define RUNVOY_CSYSTEMD_BUS_H
// Small non-variadic wrappers around libsystemd's sd-bus for Swift (which cannot call the variadic
// sd_bus_message_append / sd_bus_message_read / sd_bus_call_method). Each returns 0 or a negative errno; the ones
// that talk to the bus also write "NAME: MESSAGE" of the D-Bus error, if any, into `err` (ERR_LEN bytes).
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#define RUNVOY_BUS_ERR_LEN 512
#define RUNVOY_SYSTEMD_DEST "org.freedesktop.systemd1"
#define RUNVOY_SYSTEMD_PATH "/org/freedesktop/systemd1"
#define RUNVOY_SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"

static inline void runvoy_bus_take_error(sd_bus_error *error, int r, char *err) {
    if (err == NULL) {
        sd_bus_error_free(error);
        return;
    }
    if (sd_bus_error_is_set(error)) {
        snprintf(err, RUNVOY_BUS_ERR_LEN, "%s: %s", error->name, error->message ? error->message : "");
    } else if (r < 0) {
        snprintf(err, RUNVOY_BUS_ERR_LEN, "%s", strerror(-r));
    }
    sd_bus_error_free(error);
}

static inline void runvoy_bus_take_errno(int r, char *err) {
    if (err != NULL && r < 0) snprintf(err, RUNVOY_BUS_ERR_LEN, "%s", strerror(-r));
}

/// Subscribes to the service manager's signals (JobRemoved, and PropertiesChanged of units, which systemd sends on
/// the system bus only while a client is subscribed). On failure the connection is closed.
static inline int runvoy_bus_subscribe(sd_bus *bus, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH, RUNVOY_SYSTEMD_MANAGER, "Subscribe",
                               &error, NULL, "");
    if (r < 0) {
        runvoy_bus_take_error(&error, r, err);
        sd_bus_flush_close_unref(bus);
    }
    return r;
}

/// A direct (peer-to-peer) connection over a connected socket `fd`: the client side, or with `server` the side
/// that answers (tests play systemd's part with it).
static inline int runvoy_bus_open_fd(int fd, int server, sd_bus **ret) {
    sd_bus *bus = NULL;
    int r = sd_bus_new(&bus);
    if (r < 0) return r;
    r = sd_bus_set_fd(bus, fd, fd);
    if (r >= 0 && server) {
        sd_id128_t id;
        r = sd_id128_randomize(&id);
        if (r >= 0) r = sd_bus_set_server(bus, 1, id);
    }
    if (r >= 0) r = sd_bus_start(bus);
    if (r < 0) {
        sd_bus_unref(bus);
        return r;
    }
    *ret = bus;
    return 0;
}

/// Opens a connection to the system bus and subscribes to the service manager's signals.
static inline int runvoy_bus_open_system(sd_bus **ret, char *err) {
    sd_bus *bus = NULL;
    int r = sd_bus_open_system_with_description(&bus, "runvoyd");
    if (r < 0) {
        runvoy_bus_take_errno(r, err);
        return r;
    }
    r = runvoy_bus_subscribe(bus, err);
    if (r < 0) return r;
    *ret = bus;
    return 0;
}

/// Adds the two matches the daemon follows: the manager's JobRemoved, and PropertiesChanged of every unit.
static inline int runvoy_bus_add_matches(sd_bus *bus, sd_bus_message_handler_t jobs,
                                         sd_bus_message_handler_t properties, void *userdata) {
    int r = sd_bus_match_signal(bus, NULL, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH, RUNVOY_SYSTEMD_MANAGER,
                                "JobRemoved", jobs, userdata);
    if (r < 0) return r;
    return sd_bus_add_match(bus, NULL,
                            "type='signal',sender='" RUNVOY_SYSTEMD_DEST "',"
                            "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                            "path_namespace='/org/freedesktop/systemd1/unit'",
                            properties, userdata);
}

/// JobRemoved's job path, unit name and result (u id, o job, s unit, s result); the strings live as long as `m`.
static inline int runvoy_bus_read_job_removed(sd_bus_message *m, const char **job, const char **unit,
                                              const char **result) {
    uint32_t id = 0;
    return sd_bus_message_read(m, "uoss", &id, job, unit, result);
}

/// The object path of unit `name` (to free).
static inline int runvoy_bus_unit_path(const char *name, char **ret) {
    return sd_bus_path_encode("/org/freedesktop/systemd1/unit", name, ret);
}

// --- StartTransientUnit, built property by property ------------------------------------------------------------

/// A StartTransientUnit(name, "fail", properties, []) call, with the properties array opened.
static inline int runvoy_bus_start_begin(sd_bus *bus, sd_bus_message **ret, const char *name) {
    sd_bus_message *m = NULL;
    int r = sd_bus_message_new_method_call(bus, &m, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH, RUNVOY_SYSTEMD_MANAGER,
                                           "StartTransientUnit");
    if (r >= 0) r = sd_bus_message_append(m, "ss", name, "fail");
    if (r >= 0) r = sd_bus_message_open_container(m, 'a', "(sv)");
    if (r < 0) {
        sd_bus_message_unref(m);
        return r;
    }
    *ret = m;
    return 0;
}

static inline int runvoy_bus_prop_b(sd_bus_message *m, const char *name, int value) {
    return sd_bus_message_append(m, "(sv)", name, "b", value);
}

static inline int runvoy_bus_prop_s(sd_bus_message *m, const char *name, const char *value) {
    return sd_bus_message_append(m, "(sv)", name, "s", value);
}

static inline int runvoy_bus_prop_t(sd_bus_message *m, const char *name, uint64_t value) {
    return sd_bus_message_append(m, "(sv)", name, "t", value);
}

static inline int runvoy_bus_prop_u(sd_bus_message *m, const char *name, uint32_t value) {
    return sd_bus_message_append(m, "(sv)", name, "u", value);
}

static inline int runvoy_bus_prop_i(sd_bus_message *m, const char *name, int32_t value) {
    return sd_bus_message_append(m, "(sv)", name, "i", value);
}

/// A file descriptor (`h`): sd-bus sends a duplicate, the caller keeps its own.
static inline int runvoy_bus_prop_h(sd_bus_message *m, const char *name, int fd) {
    return sd_bus_message_append(m, "(sv)", name, "h", fd);
}

/// A list of strings (`as`); `strv` ends with NULL.
static inline int runvoy_bus_prop_as(sd_bus_message *m, const char *name, char **strv) {
    int r = sd_bus_message_open_container(m, 'r', "sv");
    if (r >= 0) r = sd_bus_message_append(m, "s", name);
    if (r >= 0) r = sd_bus_message_open_container(m, 'v', "as");
    if (r >= 0) r = sd_bus_message_append_strv(m, strv);
    if (r >= 0) r = sd_bus_message_close_container(m);
    if (r >= 0) r = sd_bus_message_close_container(m);
    return r;
}

/// A flag and a list (`(bas)`): SystemCallFilter and RestrictAddressFamilies (the flag: an allow-list).
static inline int runvoy_bus_prop_bas(sd_bus_message *m, const char *name, int flag, char **strv) {
    int r = sd_bus_message_open_container(m, 'r', "sv");
    if (r >= 0) r = sd_bus_message_append(m, "s", name);
    if (r >= 0) r = sd_bus_message_open_container(m, 'v', "(bas)");
    if (r >= 0) r = sd_bus_message_open_container(m, 'r', "bas");
    if (r >= 0) r = sd_bus_message_append(m, "b", flag);
    if (r >= 0) r = sd_bus_message_append_strv(m, strv);
    if (r >= 0) r = sd_bus_message_close_container(m);
    if (r >= 0) r = sd_bus_message_close_container(m);
    if (r >= 0) r = sd_bus_message_close_container(m);
    return r;
}

/// ExecStart (`a(sasb)`): one command, its failure not ignored.
static inline int runvoy_bus_prop_exec_start(sd_bus_message *m, const char *path, char **argv) {
    int r = sd_bus_message_open_container(m, 'r', "sv");
    if (r >= 0) r = sd_bus_message_append(m, "s", "ExecStart");
    if (r >= 0) r = sd_bus_message_open_container(m, 'v', "a(sasb)");
    if (r >= 0) r = sd_bus_message_open_container(m, 'a', "(sasb)");
    if (r >= 0) r = sd_bus_message_open_container(m, 'r', "sasb");
    if (r >= 0) r = sd_bus_message_append(m, "s", path);
    if (r >= 0) r = sd_bus_message_append_strv(m, argv);
    if (r >= 0) r = sd_bus_message_append(m, "b", 0);
    for (int i = 0; i < 4 && r >= 0; i++) r = sd_bus_message_close_container(m);
    return r;
}

/// EnvironmentFiles (`a(sb)`): one file, which must exist.
static inline int runvoy_bus_prop_environment_file(sd_bus_message *m, const char *path) {
    return sd_bus_message_append(m, "(sv)", "EnvironmentFiles", "a(sb)", 1, path, 0);
}

/// Closes the properties, adds no auxiliary units, calls, and returns the job's object path (to free).
static inline int runvoy_bus_start_finish(sd_bus *bus, sd_bus_message *m, char **job, char *err) {
    int r = sd_bus_message_close_container(m);
    if (r >= 0) r = sd_bus_message_append(m, "a(sa(sv))", 0);
    if (r < 0) {
        runvoy_bus_take_errno(r, err);
        return r;
    }
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    r = sd_bus_call(bus, m, 0, &error, &reply);
    if (r < 0) {
        runvoy_bus_take_error(&error, r, err);
        return r;
    }
    const char *path = NULL;
    r = sd_bus_message_read(reply, "o", &path);
    if (r >= 0) {
        *job = strdup(path);
        if (*job == NULL) r = -ENOMEM;
    }
    sd_bus_message_unref(reply);
    return r;
}

// --- A unit's state --------------------------------------------------------------------------------------------

typedef struct runvoy_unit_state {
    char active_state[32];
    char result[64];
    char control_group[512];
    uint32_t job_id;
    uint32_t main_pid;
    int32_t exec_main_code;
    int32_t exec_main_status;
    uint64_t cpu_usage_nsec;
    uint64_t io_read_bytes;
    uint64_t io_write_bytes;
} runvoy_unit_state;

static inline int runvoy_bus_get_string(sd_bus *bus, const char *path, const char *interface, const char *member,
                                        char *out, size_t size, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    char *value = NULL;
    int r = sd_bus_get_property_string(bus, RUNVOY_SYSTEMD_DEST, path, interface, member, &error, &value);
    if (r < 0) {
        runvoy_bus_take_error(&error, r, err);
        return r;
    }
    snprintf(out, size, "%s", value);
    free(value);
    return 0;
}

static inline int runvoy_bus_get_trivial(sd_bus *bus, const char *path, const char *interface, const char *member,
                                         char type, void *out, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_get_property_trivial(bus, RUNVOY_SYSTEMD_DEST, path, interface, member, &error, type, out);
    if (r < 0) runvoy_bus_take_error(&error, r, err);
    return r;
}

/// Whether a unit is still active or has a job (two round trips: what each PropertiesChanged costs).
static inline int runvoy_bus_unit_activity(sd_bus *bus, const char *path, runvoy_unit_state *s, char *err) {
    const char *unit = "org.freedesktop.systemd1.Unit";
    memset(s, 0, sizeof(*s));
    int r = runvoy_bus_get_string(bus, path, unit, "ActiveState", s->active_state, sizeof(s->active_state), err);
    if (r < 0) return r;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    r = sd_bus_get_property(bus, RUNVOY_SYSTEMD_DEST, path, unit, "Job", &error, &reply, "(uo)");
    if (r < 0) {
        runvoy_bus_take_error(&error, r, err);
        return r;
    }
    const char *job = NULL;
    r = sd_bus_message_read(reply, "(uo)", &s->job_id, &job);
    sd_bus_message_unref(reply);
    return r < 0 ? r : 0;
}

/// A started unit's main process and cgroup.
static inline int runvoy_bus_unit_started(sd_bus *bus, const char *path, runvoy_unit_state *s, char *err) {
    const char *service = "org.freedesktop.systemd1.Service";
    memset(s, 0, sizeof(*s));
    int r = runvoy_bus_get_string(bus, path, service, "ControlGroup", s->control_group, sizeof(s->control_group),
                                  err);
    if (r < 0) return r;
    return runvoy_bus_get_trivial(bus, path, service, "MainPID", 'u', &s->main_pid, err);
}

/// What the daemon reads of a service unit once it has ended: its activity, how its main process ended, and
/// what systemd kept of its accounting.
static inline int runvoy_bus_unit_state(sd_bus *bus, const char *path, runvoy_unit_state *s, char *err) {
    const char *service = "org.freedesktop.systemd1.Service";
    int r = runvoy_bus_unit_activity(bus, path, s, err);
    if (r < 0) return r;
    if ((r = runvoy_bus_get_string(bus, path, service, "Result", s->result, sizeof(s->result), err)) < 0) return r;
    if ((r = runvoy_bus_get_trivial(bus, path, service, "ExecMainCode", 'i', &s->exec_main_code, err)) < 0) return r;
    if ((r = runvoy_bus_get_trivial(bus, path, service, "ExecMainStatus", 'i', &s->exec_main_status, err)) < 0)
        return r;
    // Accounting systemd may not have (UINT64_MAX then): not an error.
    s->cpu_usage_nsec = s->io_read_bytes = s->io_write_bytes = UINT64_MAX;
    runvoy_bus_get_trivial(bus, path, service, "CPUUsageNSec", 't', &s->cpu_usage_nsec, NULL);
    runvoy_bus_get_trivial(bus, path, service, "IOReadBytes", 't', &s->io_read_bytes, NULL);
    runvoy_bus_get_trivial(bus, path, service, "IOWriteBytes", 't', &s->io_write_bytes, NULL);
    return 0;
}

/// Manager.Unref(name): drops the reference AddRef took, so the unit can be garbage-collected.
static inline int runvoy_bus_unref_unit(sd_bus *bus, const char *name, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH, RUNVOY_SYSTEMD_MANAGER, "UnrefUnit",
                               &error, NULL, "s", name);
    if (r < 0) runvoy_bus_take_error(&error, r, err);
    return r;
}

/// Manager.StopUnit(name, "replace"): cancels a start job still waiting, or stops the unit.
static inline int runvoy_bus_stop_unit(sd_bus *bus, const char *name, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH, RUNVOY_SYSTEMD_MANAGER, "StopUnit",
                               &error, NULL, "ss", name, "replace");
    if (r < 0) runvoy_bus_take_error(&error, r, err);
    return r;
}

/// Manager.KillUnit(name, "all", signal).
static inline int runvoy_bus_kill_unit(sd_bus *bus, const char *name, int32_t signal, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH, RUNVOY_SYSTEMD_MANAGER, "KillUnit",
                               &error, NULL, "ssi", name, "all", signal);
    if (r < 0) runvoy_bus_take_error(&error, r, err);
    return r;
}

// --- Schedules: timers ---------------------------------------------------------------------------------------

/// TimersCalendar (`a(ss)`): one `OnCalendar=` expression, as systemd-run's --on-calendar appends it (PID 1 parses
/// it and refuses the call when it is not valid).
static inline int runvoy_bus_prop_on_calendar(sd_bus_message *m, const char *calendar) {
    return sd_bus_message_append(m, "(sv)", "TimersCalendar", "a(ss)", 1, "OnCalendar", calendar);
}

/// Closes the unit's properties and opens one auxiliary unit `name` and its properties (`a(sa(sv))`, as
/// systemd-run passes a timer's service): append them with the runvoy_bus_prop_* calls, then
/// runvoy_bus_start_finish_aux.
static inline int runvoy_bus_start_aux(sd_bus_message *m, const char *name) {
    int r = sd_bus_message_close_container(m);
    if (r >= 0) r = sd_bus_message_open_container(m, 'a', "(sa(sv))");
    if (r >= 0) r = sd_bus_message_open_container(m, 'r', "sa(sv)");
    if (r >= 0) r = sd_bus_message_append(m, "s", name);
    if (r >= 0) r = sd_bus_message_open_container(m, 'a', "(sv)");
    return r;
}

/// Sends a StartTransientUnit call whose containers are all closed; returns the job's object path (to free).
static inline int runvoy_bus_start_call(sd_bus *bus, sd_bus_message *m, char **job, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *reply = NULL;
    int r = sd_bus_call(bus, m, 0, &error, &reply);
    if (r < 0) {
        runvoy_bus_take_error(&error, r, err);
        return r;
    }
    const char *path = NULL;
    r = sd_bus_message_read(reply, "o", &path);
    if (r >= 0) {
        *job = strdup(path);
        if (*job == NULL) r = -ENOMEM;
    }
    sd_bus_message_unref(reply);
    return r;
}

/// Closes the auxiliary unit's properties, it and the list of auxiliary units, and calls.
static inline int runvoy_bus_start_finish_aux(sd_bus *bus, sd_bus_message *m, char **job, char *err) {
    int r = 0;
    for (int i = 0; i < 3 && r >= 0; i++) r = sd_bus_message_close_container(m);
    if (r < 0) {
        runvoy_bus_take_errno(r, err);
        return r;
    }
    return runvoy_bus_start_call(bus, m, job, err);
}

/// Manager.ResetFailedUnit(name): a failed unit is forgotten (and unloaded, when nothing else holds it).
static inline int runvoy_bus_reset_failed_unit(sd_bus *bus, const char *name, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH, RUNVOY_SYSTEMD_MANAGER,
                               "ResetFailedUnit", &error, NULL, "s", name);
    if (r < 0) runvoy_bus_take_error(&error, r, err);
    return r;
}

/// Manager.ListUnitsByPatterns([], [pattern]): the names of the loaded units matching the glob `pattern`, as a
/// NULL-terminated list (to free with runvoy_bus_free_strv).
static inline int runvoy_bus_list_units(sd_bus *bus, const char *pattern, char ***names, char *err) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message *call = NULL, *reply = NULL;
    int r = sd_bus_message_new_method_call(bus, &call, RUNVOY_SYSTEMD_DEST, RUNVOY_SYSTEMD_PATH,
                                           RUNVOY_SYSTEMD_MANAGER, "ListUnitsByPatterns");
    if (r >= 0) r = sd_bus_message_append(call, "as", 0);
    if (r >= 0) r = sd_bus_message_append(call, "as", 1, pattern);
    if (r >= 0) r = sd_bus_call(bus, call, 0, &error, &reply);
    sd_bus_message_unref(call);
    if (r < 0) {
        runvoy_bus_take_error(&error, r, err);
        return r;
    }
    size_t count = 0, capacity = 8;
    char **list = calloc(capacity + 1, sizeof(char *));
    r = list == NULL ? -ENOMEM : sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
    const char *id = NULL;
    while (r >= 0 &&
           (r = sd_bus_message_read(reply, "(ssssssouso)", &id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                    NULL)) > 0) {
        if (count == capacity) {
            char **bigger = realloc(list, (capacity * 2 + 1) * sizeof(char *));
            if (bigger == NULL) { r = -ENOMEM; break; }
            list = bigger;
            capacity *= 2;
        }
        list[count] = strdup(id);
        if (list[count] == NULL) { r = -ENOMEM; break; }
        list[++count] = NULL;
    }
    sd_bus_message_unref(reply);
    if (r < 0) {
        for (size_t i = 0; list != NULL && i < count; i++) free(list[i]);
        free(list);
        runvoy_bus_take_errno(r, err);
        return r;
    }
    *names = list;
    return 0;
}

static inline void runvoy_bus_free_strv(char **list) {
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) free(list[i]);
    free(list);
}

/// What `schedules` reads of a schedule's timer and service.
typedef struct runvoy_timer_state {
    char timer_state[32]; /* its SubState: waiting, running, elapsed, dead, failed */
    char service_state[32];
    char service_result[64];
    uint64_t next_elapse_realtime;
    uint64_t last_trigger_realtime;
    int32_t exec_main_status;
} runvoy_timer_state;

/// Reads the timer at `timer_path` and the service at `service_path`. A service never started has result
/// "success" and status 0 (what systemd says of it).
static inline int runvoy_bus_timer_state(sd_bus *bus, const char *timer_path, const char *service_path,
                                         runvoy_timer_state *s, char *err) {
    const char *unit = "org.freedesktop.systemd1.Unit", *timer = "org.freedesktop.systemd1.Timer",
               *service = "org.freedesktop.systemd1.Service";
    memset(s, 0, sizeof(*s));
    int r = runvoy_bus_get_string(bus, timer_path, unit, "SubState", s->timer_state, sizeof(s->timer_state), err);
    if (r >= 0) r = runvoy_bus_get_trivial(bus, timer_path, timer, "NextElapseUSecRealtime", 't',
                                           &s->next_elapse_realtime, err);
    if (r >= 0) r = runvoy_bus_get_trivial(bus, timer_path, timer, "LastTriggerUSec", 't',
                                           &s->last_trigger_realtime, err);
    if (r >= 0) r = runvoy_bus_get_string(bus, service_path, unit, "ActiveState", s->service_state,
                                          sizeof(s->service_state), err);
    if (r >= 0) r = runvoy_bus_get_string(bus, service_path, service, "Result", s->service_result,
                                          sizeof(s->service_result), err);
    if (r >= 0) r = runvoy_bus_get_trivial(bus, service_path, service, "ExecMainStatus", 'i', &s->exec_main_status,
                                           err);
    return r < 0 ? r : 0;
}

#endif
