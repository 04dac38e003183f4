#define _GNU_SOURCE
#include "runvoy_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void child_fail(int status_fd, int stage) {
    int report[2] = {stage, errno};
    ssize_t ignored = write(status_fd, report, sizeof(report));
    (void)ignored;
    _exit(127);
}

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

pid_t runvoy_spawn(const struct runvoy_spawn_request *r) {
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    /* Child: only async-signal-safe calls from here on. */
    sigset_t all;
    sigemptyset(&all);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)sigaction(sig, &dfl, NULL);
    }
    (void)sigprocmask(SIG_SETMASK, &all, NULL);

    if (setsid() < 0) child_fail(r->status_fd, RUNVOY_STAGE_SETSID);
    if (r->change_identity) {
        if (setgroups(r->ngroups, r->groups) < 0) child_fail(r->status_fd, RUNVOY_STAGE_SETGROUPS);
        if (setresgid(r->gid, r->gid, r->gid) < 0) child_fail(r->status_fd, RUNVOY_STAGE_SETGID);
        if (setresuid(r->uid, r->uid, r->uid) < 0) child_fail(r->status_fd, RUNVOY_STAGE_SETUID);
    }
    if (chdir(r->cwd) < 0) child_fail(r->status_fd, RUNVOY_STAGE_CHDIR);

    /* Move the gate and status fds out of the way of 0-2 before wiring stdio. */
    int gate = fcntl(r->gate_fd, F_DUPFD_CLOEXEC, 10);
    int status = fcntl(r->status_fd, F_DUPFD_CLOEXEC, 10);
    if (gate < 0 || status < 0) child_fail(r->status_fd, RUNVOY_STAGE_DUP);
    if (move_fd(r->stdin_fd, 0) < 0) child_fail(status, RUNVOY_STAGE_DUP);
    if (move_fd(r->stdout_fd, 1) < 0) child_fail(status, RUNVOY_STAGE_DUP);
    if (move_fd(r->stderr_fd, 2) < 0) child_fail(status, RUNVOY_STAGE_DUP);
    /* Keep only stdio, the gate (3) and the status pipe (4), and close everything else the daemon had open
       (client sockets, other children's pipes) before waiting: a child held at its gate must not keep another
       child's status pipe open, or that child's start would wait for this one. */
    if (dup3(gate, 3, O_CLOEXEC) < 0 || dup3(status, 4, O_CLOEXEC) < 0) child_fail(status, RUNVOY_STAGE_DUP);
    gate = 3;
    status = 4;
    (void)syscall(SYS_close_range, 5, ~0U, 0);

    char go = 0;
    ssize_t n;
    do {
        n = read(gate, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        errno = ECANCELED;
        child_fail(status, RUNVOY_STAGE_GATE);
    }
    close(gate);

    execve(r->path, r->argv, r->envp);
    child_fail(status, RUNVOY_STAGE_EXEC);
    return -1;
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
