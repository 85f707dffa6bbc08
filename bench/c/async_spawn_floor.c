// The physical floor of the "async spawn" scenario: N concurrent `/bin/echo i` children with
// stdout on a pipe, started back to back from one thread, read in one poll loop, then reaped;
// no runtime, no allocation per child beyond the kernel's. Not part of `cargo xtask bench` (it
// needs a C compiler); run it by hand next to the bench to know what no spawner can beat:
//
//   gcc -O2 -o /tmp/async_spawn_floor bench/c/async_spawn_floor.c && /tmp/async_spawn_floor 1000 9
//
// Prints, per method, the median, min and max time per child over the rounds (methods
// interleaved round by round): `vfork + execve` (the least a parent can do) and glibc's
// `posix_spawn` (what std's and tokio's `Command` use).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { VFORK_EXECVE, POSIX_SPAWN, METHODS };
static const char *const NAMES[METHODS] = {"vfork + execve", "posix_spawn"};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

// One batch of `n` children by `method`; returns the time per child in microseconds.
static double batch(int n, int method) {
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    struct pollfd *fds = calloc((size_t)n, sizeof *fds);
    char (*args)[16] = calloc((size_t)n, sizeof *args);
    if (!pids || !fds || !args) die("calloc");
    double start = now();
    for (int i = 0; i < n; i++) {
        int pipe_fds[2];
        if (pipe2(pipe_fds, O_CLOEXEC)) die("pipe2");
        snprintf(args[i], sizeof args[i], "%d", i);
        char *argv[] = {"echo", args[i], NULL};
        if (method == POSIX_SPAWN) {
            posix_spawn_file_actions_t actions;
            posix_spawn_file_actions_init(&actions);
            posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
            int rc = posix_spawn(&pids[i], "/bin/echo", &actions, NULL, argv, environ);
            posix_spawn_file_actions_destroy(&actions);
            if (rc) {
                errno = rc;
                die("posix_spawn");
            }
        } else {
            pid_t pid = vfork();
            if (pid == 0) {
                dup2(pipe_fds[1], 1);
                execve("/bin/echo", argv, environ);
                _exit(127);
            }
            if (pid < 0) die("vfork");
            pids[i] = pid;
        }
        close(pipe_fds[1]);
        fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
        fds[i].fd = pipe_fds[0];
        fds[i].events = POLLIN;
    }
    for (int open = n; open > 0;) {
        if (poll(fds, (nfds_t)n, -1) < 0) die("poll");
        for (int i = 0; i < n; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            char buf[64];
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got == 0 || (got < 0 && errno != EAGAIN)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open--;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) < 0) die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "echo %d failed\n", i);
            exit(1);
        }
    }
    double per_child = (now() - start) / n * 1e6;
    free(pids);
    free(fds);
    free(args);
    return per_child;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int rounds = argc > 2 ? atoi(argv[2]) : 9;
    if (n < 1 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: %s [children, default 1000] [rounds 1-100, default 9]\n", argv[0]);
        return 2;
    }
    double times[METHODS][100];
    for (int round = 0; round < rounds; round++)
        for (int method = 0; method < METHODS; method++)
            times[method][round] = batch(n, method);
    for (int method = 0; method < METHODS; method++) {
        qsort(times[method], (size_t)rounds, sizeof(double), by_value);
        printf("%-16s median %4.0f us per child (min %.0f, max %.0f)\n", NAMES[method],
               times[method][rounds / 2], times[method][0], times[method][rounds - 1]);
    }
    return 0;
}
