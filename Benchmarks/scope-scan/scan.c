// Times runvoy_scope_members with N other processes (scripts/bench-scope-scan).
#define _GNU_SOURCE
#include "../../Sources/CRunvoyPosix/runvoy_posix.c"
#include <time.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    pid_t *kids = malloc(n * sizeof *kids);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) { setpgid(0, 0); pause(); _exit(0); }
        kids[i] = p;
    }
    pid_t leader = fork();
    if (leader == 0) { setpgid(0,0); pause(); _exit(0); }
    usleep(200000);
    pid_t out[16];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    long found = 0;
    for (int r = 0; r < 3; r++) found = runvoy_scope_members(leader, 0xffffffffu, out, 16);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%d processes: %.1f ms per scan (found %ld)\n", n, ((b.tv_sec-a.tv_sec)*1e3+(b.tv_nsec-a.tv_nsec)/1e6)/3, found);
    for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
    kill(leader, SIGKILL);
    while (wait(NULL) > 0);
    return 0;
}
