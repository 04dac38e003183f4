#define _GNU_SOURCE
#include "runvoy_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <stdio.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int move_fd(int from, int to) {
    if (from == to) {
        int flags = fcntl(from, F_GETFD);
        if (flags < 0) return -1;
        return fcntl(from, F_SETFD, flags & ~FD_CLOEXEC);
    }
    while (dup2(from, to) < 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

/* Runs in the vfork child, on the parent's stack and memory: only system calls, and the only memory it writes
   is the `failure` record the parent reads after the child has gone. */
static void child_main(const struct runvoy_spawn_request *r, volatile struct runvoy_spawn_result *failure,
                       const sigset_t *empty) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)sigaction(sig, &dfl, NULL);
    }
    (void)sigprocmask(SIG_SETMASK, empty, NULL);

    int stage = RUNVOY_STAGE_SETSID;
    if (setsid() < 0) goto fail;
    if (r->change_identity) {
        stage = RUNVOY_STAGE_SETGROUPS;
        if (setgroups(r->ngroups, r->groups) < 0) goto fail;
        stage = RUNVOY_STAGE_SETGID;
        if (setresgid(r->gid, r->gid, r->gid) < 0) goto fail;
        stage = RUNVOY_STAGE_SETUID;
        if (setresuid(r->uid, r->uid, r->uid) < 0) goto fail;
    }
    stage = RUNVOY_STAGE_CHDIR;
    if (chdir(r->cwd) < 0) goto fail;
    stage = RUNVOY_STAGE_DUP;
    if (move_fd(r->stdin_fd, 0) < 0) goto fail;
    if (move_fd(r->stdout_fd, 1) < 0) goto fail;
    if (move_fd(r->stderr_fd, 2) < 0) goto fail;
    /* Nothing but stdio crosses exec: not client sockets, not other executions' pipes. */
    (void)syscall(SYS_close_range, 3, ~0U, 0);
    stage = RUNVOY_STAGE_EXEC;
    execve(r->path, r->argv, r->envp);
fail:
    failure->stage = stage;
    failure->error = errno;
    _exit(127);
}

struct runvoy_spawn_result runvoy_spawn(const struct runvoy_spawn_request *r) {
    volatile struct runvoy_spawn_result result = {0, RUNVOY_STAGE_NONE, 0};
    sigset_t all, old, empty;
    sigfillset(&all);
    sigemptyset(&empty);
    /* No signal handler of the daemon may run in the child while it shares the daemon's memory. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork();
    if (pid == 0) {
        child_main(r, &result, &empty);
        _exit(127);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    struct runvoy_spawn_result out = {pid, result.stage, result.error};
    if (pid < 0) {
        out.pid = -1;
        out.stage = RUNVOY_STAGE_FORK;
        out.error = saved;
        return out;
    }
    if (out.stage != RUNVOY_STAGE_NONE) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        out.pid = -1;
    }
    return out;
}

int runvoy_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int runvoy_pidfd_wait(int pidfd, int *exited, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int rc;
    do {
        rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -1;
    if (info.si_code == CLD_EXITED) {
        *exited = 1;
        *status = info.si_status;
    } else {
        *exited = 0;
        *status = info.si_status;
    }
    return 0;
}

int runvoy_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int runvoy_set_pipe_size(int fd, int size) {
    return fcntl(fd, F_SETPIPE_SZ, size);
}

int runvoy_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int runvoy_pipe_cloexec(int fds[2], int nonblocking) {
    return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

int runvoy_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC);
}

const void *runvoy_memmem(const void *haystack, size_t haystack_len, const void *needle, size_t needle_len) {
    return memmem(haystack, haystack_len, needle, needle_len);
}

int runvoy_is_tmpfs(const char *path) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -1;
    return info.f_type == 0x01021994 /* TMPFS_MAGIC */ || info.f_type == (long)0x858458f6 /* RAMFS_MAGIC */;
}

/* Linux keeps credentials per thread, and the raw system calls below change only the calling thread's (glibc's
   setgroups and setuid wrappers would change every thread of the daemon). setfsuid/setfsgid return the previous
   value and cannot report failure, so each change is read back with an invalid id, which changes nothing. */
int runvoy_stat_as(const char *const *paths, size_t count_paths, struct stat *infos, int *errors, uid_t uid, gid_t gid,
                   const gid_t *groups, size_t ngroups) {
    long count = syscall(SYS_getgroups, 0, NULL);
    if (count < 0) return -1;
    gid_t *saved = malloc(sizeof(gid_t) * (size_t)(count > 0 ? count : 1));
    if (saved == NULL) {
        errno = ENOMEM;
        return -1;
    }
    if (count > 0 && syscall(SYS_getgroups, count, saved) != count) {
        free(saved);
        errno = EAGAIN;
        return -1;
    }
    uid_t saved_fsuid = (uid_t)syscall(SYS_setfsuid, (uid_t)-1);
    gid_t saved_fsgid = (gid_t)syscall(SYS_setfsgid, (gid_t)-1);

    int rc = -1;
    int error = EPERM;
    if (syscall(SYS_setgroups, ngroups, groups) != 0) {
        error = errno;
        goto restore;
    }
    (void)syscall(SYS_setfsgid, gid);
    (void)syscall(SYS_setfsuid, uid);
    if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid || (uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid) {
        error = EPERM;
        goto restore;
    }
    for (size_t i = 0; i < count_paths; i++) {
        errors[i] = stat(paths[i], &infos[i]) == 0 ? 0 : errno;
    }
    rc = 0;
    error = 0;

restore:
    /* fsuid first: going back to 0 gives the thread its file capabilities again. */
    (void)syscall(SYS_setfsuid, saved_fsuid);
    (void)syscall(SYS_setfsgid, saved_fsgid);
    if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != saved_fsuid ||
        (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != saved_fsgid || syscall(SYS_setgroups, count, saved) != 0) {
        /* A daemon thread left with another user's identity must not go on. */
        abort();
    }
    free(saved);
    errno = error;
    return rc;
}

int runvoy_set_nondumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int runvoy_o_path(void) { return O_PATH; }

int runvoy_is_procfs(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return -1;
    return info.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */;
}

int runvoy_has_access_acl(int fd) {
    // fgetxattr does not take O_PATH descriptors; the descriptor's /proc/self/fd link reaches the same file.
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (getxattr(path, "system.posix_acl_access", NULL, 0) >= 0) return 1;
    return errno == ENODATA || errno == ENOTSUP ? 0 : -1;
}

int runvoy_malloc_trim(void) { return malloc_trim(0); }
