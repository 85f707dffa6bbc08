// The ways a C program could do the "communicate 256 MiB through cat" scenario, to know which
// tricks a `communicate` could use and what the limit of each way of returning the output is.
// Not part of `cargo xtask bench` (it needs a C compiler); the bench's own C-equivalent rows
// are the first two methods written in Rust. Run it by hand:
//
//   gcc -O2 -pthread -o /tmp/communicate_floor bench/c/communicate_floor.c && /tmp/communicate_floor 8
//
// Every method sends the same 256 MiB through `cat` (both pipes enlarged to 1 MiB) and checks
// the length back; methods are interleaved round by round, and each prints its median
// throughput and the median CPU time of this process (the reader and writer, not `cat`):
//   poll, reused      one poll loop on non-blocking pipes into a buffer faulted in once, before
//   poll, fresh       the same into a fresh malloc'd buffer, faulted in page by page by `read`
//   poll, fresh+huge  the same into a fresh 2 MiB-aligned mapping with MADV_HUGEPAGE
//   poll, fresh+ahead the same, MADV_POPULATE_WRITE 2 MiB ahead of the reads
//   thread, reused    a writer thread with blocking writes (std's way), blocking reads
//   thread, fresh     the same into a fresh buffer
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define SIZE (256UL << 20)
#define ROOM (SIZE + 4096)
#define HUGE (2UL << 20)
#define METHODS 6

static const char *NAMES[METHODS] = {"poll, reused", "poll, fresh", "poll, fresh+huge",
                                     "poll, fresh+ahead", "thread, reused", "thread, fresh"};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

// `cat` with its stdin and stdout on new pipes enlarged to 1 MiB: *to its stdin, *from its stdout.
static pid_t start_cat(int *to, int *from) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execlp("cat", "cat", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    fcntl(in[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
    *to = in[1];
    *from = out[0];
    return pid;
}

// One poll loop; `ahead`: populate the output 2 MiB ahead of the reads.
static size_t poll_loop(const char *data, char *out, int ahead) {
    int to, from;
    pid_t pid = start_cat(&to, &from);
    fcntl(to, F_SETFL, O_NONBLOCK);
    fcntl(from, F_SETFL, O_NONBLOCK);
    size_t written = 0, got = 0, ready = 0;
    for (;;) {
        struct pollfd fds[2] = {{from, POLLIN, 0}, {to, POLLOUT, 0}};
        poll(fds, to >= 0 ? 2 : 1, -1);
        if (to >= 0 && fds[1].revents) {
            for (;;) {
                ssize_t n = write(to, data + written, SIZE - written);
                if (n < 0) break;
                written += n;
                if (written == SIZE) {
                    close(to);
                    to = -1;
                    break;
                }
            }
        }
        if (fds[0].revents) {
            for (;;) {
                size_t room = ROOM - got;
                if (ahead) {
                    if (ready - got < HUGE && ready < ROOM) {
                        size_t start = ready & ~4095UL, end = ready + HUGE < ROOM ? ready + HUGE : ROOM;
                        madvise(out + start, ((end + 4095) & ~4095UL) - start, MADV_POPULATE_WRITE);
                        ready = end;
                    }
                    room = ready - got;
                }
                ssize_t n = read(from, out + got, room);
                if (n == 0) goto done;
                if (n < 0) break;
                got += n;
            }
        }
    }
done:
    close(from);
    waitpid(pid, NULL, 0);
    return got;
}

struct writer {
    int fd;
    const char *data;
};

static void *write_all(void *arg) {
    struct writer *w = arg;
    for (size_t done = 0; done < SIZE;) {
        ssize_t n = write(w->fd, w->data + done, SIZE - done);
        if (n <= 0) break;
        done += n;
    }
    close(w->fd);
    return NULL;
}

// A writer thread and blocking reads, as std's `Command` + `wait_with_output`.
static size_t thread_loop(const char *data, char *out) {
    int to, from;
    pid_t pid = start_cat(&to, &from);
    struct writer w = {to, data};
    pthread_t thread;
    pthread_create(&thread, NULL, write_all, &w);
    size_t got = 0;
    for (ssize_t n; (n = read(from, out + got, ROOM - got)) > 0;) got += n;
    pthread_join(thread, NULL);
    close(from);
    waitpid(pid, NULL, 0);
    return got;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 8;
    if (rounds < 1) rounds = 1;
    char *data = malloc(SIZE), *reused = malloc(ROOM);
    double *gbs = calloc((size_t)rounds * METHODS, sizeof(double));
    double *ms = calloc((size_t)rounds * METHODS, sizeof(double));
    if (!data || !reused || !gbs || !ms) return 1;
    for (size_t i = 0; i < SIZE; i++) data[i] = (char)i;
    memset(reused, 0, ROOM);
    for (int round = 0; round < rounds; round++) {
        for (int m = 0; m < METHODS; m++) {
            double start = now(), cpu_start = cpu();
            char *map = NULL, *out = reused;
            size_t map_len = ROOM + HUGE;
            if (m == 1 || m == 3 || m == 5) out = malloc(ROOM);
            if (m == 2) {
                map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                out = (char *)(((unsigned long)map + HUGE - 1) & ~(HUGE - 1));
                madvise(out, ROOM & ~(HUGE - 1), MADV_HUGEPAGE);
            }
            size_t got = m < 4 ? poll_loop(data, out, m == 3) : thread_loop(data, out);
            gbs[m * rounds + round] = SIZE / (now() - start) / 1e9;
            ms[m * rounds + round] = (cpu() - cpu_start) * 1000;
            if (got != SIZE) {
                fprintf(stderr, "%s: cat returned %zu bytes of %lu\n", NAMES[m], got, SIZE);
                return 1;
            }
            if (map) munmap(map, map_len);
            else if (out != reused) free(out);
        }
    }
    for (int m = 0; m < METHODS; m++) {
        qsort(gbs + m * rounds, rounds, sizeof(double), by_value);
        qsort(ms + m * rounds, rounds, sizeof(double), by_value);
        printf("%-18s %5.2f GB/s  %4.0f ms CPU (medians of %d)\n", NAMES[m], gbs[m * rounds + rounds / 2],
               ms[m * rounds + rounds / 2], rounds);
    }
    return 0;
}
