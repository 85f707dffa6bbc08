// The physical floor of the "async spawn" scenario: N concurrent `/bin/echo i` children with
// stdout on a pipe, started back to back from one thread, read in one poll loop, then reaped;
// no runtime, no allocation per child beyond the kernel's. Not part of `cargo xtask bench` (it
// needs a C compiler); run it by hand next to the bench to know what no spawner can beat:
//
//   gcc -O2 -o /tmp/async_spawn_floor bench/c/async_spawn_floor.c && /tmp/async_spawn_floor 1000 9
//
// Prints, per method, the median, min and max time per child over the rounds (methods
// interleaved round by round): `vfork + execve` (the least a parent can do with a child that
// gets a copy of its fd table), glibc's `posix_spawn` (what std's and tokio's `Command` use),
// and `clone, own fd table`: fork-sys's trick (Linux 5.9+) of a `CLONE_FILES` child that takes
// a table of its own holding only fds 0-2 (`close_range` `CLOSE_RANGE_UNSHARE`) and copies its
// stdout from the parent by `pidfd_getfd`, so the parent's N pipes are neither copied into it
// nor closed at its exec.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { VFORK_EXECVE, POSIX_SPAWN, OWN_FD_TABLE, METHODS };
static const char *const NAMES[METHODS] = {"vfork + execve", "posix_spawn",
                                           "clone, own fd table"};

// What the OWN_FD_TABLE child needs: the parent's stdout source, and argv.
struct child_args {
    int stdout_source;
    char **argv;
};

static char child_stack[1 << 16] __attribute__((aligned(16)));

static int own_table_child(void *arg) {
    struct child_args *args = arg;
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_UNSHARE)) _exit(120);
    int parent = (int)syscall(SYS_pidfd_open, getppid(), 0);
    if (parent < 0) _exit(121);
    int copy = (int)syscall(SYS_pidfd_getfd, parent, args->stdout_source, 0);
    if (copy < 0 || dup2(copy, 1) < 0) _exit(122);
    execve("/bin/echo", args->argv, environ);
    _exit(127);
}

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
        } else if (method == OWN_FD_TABLE) {
            struct child_args child = {pipe_fds[1], argv};
            pids[i] = clone(own_table_child, child_stack + sizeof child_stack,
                            CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &child);
            if (pids[i] < 0) die("clone");
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
        printf("%-20s median %4.0f us per child (min %.0f, max %.0f)\n", NAMES[method],
               times[method][rounds / 2], times[method][0], times[method][rounds - 1]);
    }
    return 0;
}
