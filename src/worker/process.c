/* SPDX-License-Identifier: MIT */
/*
 * process.c — running tasks in processes (see process.h).
 *
 * posix_spawn() (vfork-fast in glibc, safe in a threaded process) starts /bin/sh -c COMMAND
 * as the leader of a new process group, with a clean signal mask and default dispositions;
 * its limits are set with prlimit() as soon as it exists. A C task function runs in a process
 * forked by the worker's fork server (fork_server.h: never a fork of the threaded worker
 * itself), which sets up the same way (its own group, clean signals, the pipes on 0/1/2, its
 * limits: process_enter_child) before it calls the function. All pipe ends are O_CLOEXEC, so
 * commands spawned concurrently by other executor threads never inherit each other's pipes.
 * The end of a spawned command is seen through a pidfd when the kernel has them (no polling
 * delay), else by checking waitpid() every few milliseconds; the end of a task process
 * through the status socket its keeper writes to.
 */
#include "worker/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"

extern char **environ;

/* Bytes read from a pipe at once. */
#define PROCESS_READ_CHUNK 65536
/* After the command exited, how long its pipes may stay open (held by a background child)
 * before we stop reading them. */
#define PROCESS_DRAIN_MS 200
/* Without a pidfd: the longest sleep between waitpid() checks once the pipes are closed. */
#define PROCESS_REAP_SLICE_MS 10

enum { FD_IN, FD_OUT, FD_ERR, FD_PID, FD_COUNT };

struct proc {
    const char *input;
    size_t input_len, input_off;
    struct process_result *res;
    size_t out_cap;
    struct line_buffer err_lines;
    line_fn on_line;
    void *ctx;
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void keep_tail(struct process_result *res, const char *data, size_t n)
{
    const size_t max = PROCESS_STDERR_TAIL_MAX;
    if (n >= max) {
        memcpy(res->err_tail, data + n - max, max);
        res->err_tail_len = max;
    } else {
        if (res->err_tail_len + n > max) {
            size_t drop = res->err_tail_len + n - max;
            memmove(res->err_tail, res->err_tail + drop, res->err_tail_len - drop);
            res->err_tail_len -= drop;
        }
        memcpy(res->err_tail + res->err_tail_len, data, n);
        res->err_tail_len += n;
    }
    res->err_tail[res->err_tail_len] = '\0';
}

static int append_out(struct proc *p, const char *data, size_t n)
{
    struct process_result *res = p->res;
    if (res->out_len + n > (size_t)PROCESS_STDOUT_MAX) {
        res->out_too_big = true;
        return -1;
    }
    if (res->out_len + n + 1 > p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap : 4096;
        while (cap < res->out_len + n + 1)
            cap *= 2;
        char *b = mem_realloc(res->out, cap);
        if (!b)
            return -1;
        res->out = b;
        p->out_cap = cap;
    }
    memcpy(res->out + res->out_len, data, n);
    res->out_len += n;
    res->out[res->out_len] = '\0';
    return 0;
}

/* Reads what a pipe has; closes it at EOF. Returns -1 when stdout overflowed. */
static int drain(struct proc *p, int *fd, bool is_err, char *buf)
{
    for (;;) {
        ssize_t n = read(*fd, buf, PROCESS_READ_CHUNK);
        if (n > 0) {
            if (is_err) {
                keep_tail(p->res, buf, (size_t)n);
                if (p->on_line)
                    line_buffer_feed(&p->err_lines, buf, (size_t)n, p->on_line, p->ctx);
            } else if (append_out(p, buf, (size_t)n)) {
                return -1;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        close_fd(fd); /* EOF or a read error */
        return 0;
    }
}

static void feed_input(struct proc *p, int *fd)
{
    while (p->input_off < p->input_len) {
        ssize_t n = write(*fd, p->input + p->input_off, p->input_len - p->input_off);
        if (n > 0) {
            p->input_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EPIPE) {
            /* The command does not read its stdin: fine. Consume the SIGPIPE this thread
               got (blocked, so pending) so it never reaches the process later. */
            sigset_t pipe_set;
            sigemptyset(&pipe_set);
            sigaddset(&pipe_set, SIGPIPE);
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
        break;
    }
    close_fd(fd);
}

/* Signals whose dispositions a task process starts with at their defaults. */
static const int RESET_SIGNALS[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP,
                                    SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};
#define N_RESET_SIGNALS (sizeof RESET_SIGNALS / sizeof RESET_SIGNALS[0])
/* The grace between SIGXCPU (soft CPU limit) and SIGKILL (hard limit). */
#define CPU_LIMIT_GRACE_S 1

static rlim_t cpu_limit(double seconds)
{
    return seconds < 1 ? 1 : (rlim_t)(seconds + 0.999);
}

/* The data size (RLIMIT_DATA's measure) of this process, in bytes; 0 if unknown. Reads
 * /proc/self/status with read() only (runs in a forked child). */
static size_t own_data_bytes(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *at = strstr(buf, "\nVmData:");
    return at ? (size_t)strtoull(at + 9, NULL, 10) * 1024 : 0;
}

/* In a forked child: applies the limits to itself. */
static void limit_self(const struct fork_limits *limits)
{
    if (limits->memory_limit_bytes > 0) {
        rlim_t data = (rlim_t)(own_data_bytes() + limits->memory_limit_bytes);
        struct rlimit rl = {data, data};
        setrlimit(RLIMIT_DATA, &rl);
    }
    if (limits->cpu_limit_seconds > 0) {
        rlim_t soft = cpu_limit(limits->cpu_limit_seconds);
        struct rlimit rl = {soft, soft + CPU_LIMIT_GRACE_S};
        setrlimit(RLIMIT_CPU, &rl);
    }
}

void process_enter_child(int in, int out, int errp, const struct fork_limits *limits)
{
    setpgid(0, 0);
    for (size_t i = 0; i < N_RESET_SIGNALS; i++)
        signal(RESET_SIGNALS[i], SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(errp, STDERR_FILENO) < 0)
        _exit(127);
    const int given[] = {in, out, errp};
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++)
        if (given[i] > STDERR_FILENO)
            close(given[i]);
    limit_self(limits);
}

/* Applies the limits to a process just spawned (a new image: the memory limit is absolute). */
static void limit_spawned(pid_t pid, const struct process_spec *spec)
{
    if (spec->memory_limit_bytes > 0) {
        struct rlimit rl = {(rlim_t)spec->memory_limit_bytes, (rlim_t)spec->memory_limit_bytes};
        prlimit(pid, RLIMIT_DATA, &rl, NULL);
    }
    if (spec->cpu_limit_seconds > 0) {
        rlim_t soft = cpu_limit(spec->cpu_limit_seconds);
        struct rlimit rl = {soft, soft + CPU_LIMIT_GRACE_S};
        prlimit(pid, RLIMIT_CPU, &rl, NULL);
    }
}

#define TRACEPARENT_ENV "TRACEPARENT"

/* The environment of an exec task: the worker's, without its own TRACEPARENT, and with the
 * run's when it has one. Built in the parent: after posix_spawn's vfork nothing may allocate. */
struct child_env {
    char **envp;
    char *traceparent; /* the one string owned: "TRACEPARENT=..." */
};

/* 0, or ENOMEM (e is then empty). traceparent NULL = none. */
static int child_env_build(struct child_env *e, const char *traceparent)
{
    memset(e, 0, sizeof *e);
    size_t n = 0;
    while (environ && environ[n])
        n++;
    if (!(e->envp = mem_calloc(n + 2, sizeof *e->envp)))
        return ENOMEM;
    if (traceparent && !(e->traceparent = mem_printf(TRACEPARENT_ENV "=%s", traceparent))) {
        mem_free(e->envp);
        e->envp = NULL;
        return ENOMEM;
    }
    size_t k = 0;
    const size_t name_len = sizeof TRACEPARENT_ENV - 1;
    for (size_t i = 0; i < n; i++)
        if (!(strncmp(environ[i], TRACEPARENT_ENV, name_len) == 0 && environ[i][name_len] == '='))
            e->envp[k++] = environ[i];
    if (e->traceparent)
        e->envp[k++] = e->traceparent;
    e->envp[k] = NULL;
    return 0;
}

static void child_env_free(struct child_env *e)
{
    mem_free(e->traceparent);
    mem_free(e->envp);
}

/* Starts a task process through the fork server; *status_fd tells its end. */
static int fork_child(const struct process_spec *spec, int in[2], int out[2], int errp[2],
                      pid_t *pid, int *status_fd, errand_error *err)
{
    const int fds[3] = {in[0], out[1], errp[1]};
    const struct fork_limits limits = {.memory_limit_bytes = spec->memory_limit_bytes,
                                       .cpu_limit_seconds = spec->cpu_limit_seconds};
    return fork_server_spawn(spec->fork_server, fds, &limits, pid, status_fd, err);
}

static int spawn(const struct process_spec *spec, int in[2], int out[2], int errp[2], pid_t *pid,
                 int *status_fd, errand_error *err)
{
    if (!spec->command)
        return fork_child(spec, in, out, errp, pid, status_fd, err);
    const char *command = spec->command;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot prepare to run an exec task");
    rc = posix_spawnattr_init(&attr);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        return error_set(err, ERRAND_ENOMEM, NULL, "cannot prepare to run an exec task");
    }
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (size_t i = 0; i < N_RESET_SIGNALS; i++)
        sigaddset(&defaults, RESET_SIGNALS[i]);
    rc = posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, errp[1], STDERR_FILENO);
    /* Nothing else of the worker's: its connections to the server (libcurl's sockets are not
       close-on-exec) would otherwise live on in the command, hide the worker's death from
       the server, and be the command's to write to. */
    if (!rc)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    if (!rc)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    if (!rc)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc)
        rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    struct child_env env = {0};
    if (!rc)
        rc = child_env_build(&env, spec->traceparent);
    if (!rc) {
        char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
        rc = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, env.envp);
    }
    child_env_free(&env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return error_set(err, ERRAND_EIO, "command", "cannot start /bin/sh -c '%s': %s", command,
                         strerror(rc));
    limit_spawned(*pid, spec);
    return 0;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    (void)pid;
    return -1;
#endif
}

static void record_status(struct process_result *res, int status)
{
    if (WIFEXITED(status)) {
        res->exited = true;
        res->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res->term_signal = WTERMSIG(status);
    }
}

int process_run(const struct process_spec *spec, const char *input, size_t input_len,
                process_stop_fn should_stop, line_fn on_stderr_line, void *ctx,
                struct process_result *res, errand_error *err)
{
    memset(res, 0, sizeof *res);
    int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
    char *buf = mem_alloc(PROCESS_READ_CHUNK);
    struct proc *p = mem_calloc(1, sizeof *p); /* holds a line buffer: too big for a stack */
    if (!buf || !p) {
        mem_free(buf);
        mem_free(p);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory running an exec task");
    }
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
        int e = errno;
        close_fd(&in[0]), close_fd(&in[1]), close_fd(&out[0]), close_fd(&out[1]);
        close_fd(&errp[0]), close_fd(&errp[1]);
        mem_free(buf);
        mem_free(p);
        return error_set(err, ERRAND_EIO, NULL, "cannot create pipes for an exec task: %s",
                         strerror(e));
    }
    pid_t pid;
    int status_fd = -1; /* a task process's (fork_server.h); else a pidfd is opened */
    int rc = spawn(spec, in, out, errp, &pid, &status_fd, err);
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&errp[1]);
    if (rc) {
        close_fd(&in[1]), close_fd(&out[0]), close_fd(&errp[0]);
        mem_free(buf);
        mem_free(p);
        return rc;
    }

    sigset_t pipe_set, old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    p->input = input;
    p->input_len = input_len;
    p->res = res;
    p->on_line = on_stderr_line;
    p->ctx = ctx;
    const bool keeper_reports = status_fd >= 0;
    int fds[FD_COUNT] = {in[1], out[0], errp[0], keeper_reports ? status_fd : open_pidfd(pid)};
    bool has_pidfd = fds[FD_PID] >= 0;
    for (int i = FD_IN; i <= FD_ERR; i++)
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    if (input_len == 0)
        close_fd(&fds[FD_IN]);

    bool reaped = false, hard_killed = false;
    int64_t kill_at = 0, exited_at = 0, reap_sleep = 1;
    for (;;) {
        int64_t now = clock_mono_ms();
        if (!res->stopped && should_stop && should_stop(ctx)) {
            res->stopped = true;
            killpg(pid, SIGTERM);
            kill_at = now + PROCESS_KILL_GRACE_MS;
        }
        if (res->stopped && !hard_killed && now >= kill_at) {
            killpg(pid, SIGKILL);
            hard_killed = true;
        }
        if (!reaped) {
            int status;
            bool ended, known;
            if (keeper_reports) {
                int got = fork_server_read_status(fds[FD_PID], &status);
                ended = got != 0;
                known = got > 0;
            } else {
                pid_t w = waitpid(pid, &status, WNOHANG);
                ended = w == pid || (w < 0 && errno == ECHILD);
                known = w == pid;
            }
            if (ended) {
                if (known)
                    record_status(res, status);
                reaped = true;
                exited_at = now;
                close_fd(&fds[FD_PID]);
                close_fd(&fds[FD_IN]);
            }
        }
        bool pipes_open = fds[FD_OUT] >= 0 || fds[FD_ERR] >= 0;
        if (reaped && (!pipes_open || now - exited_at >= PROCESS_DRAIN_MS))
            break;

        struct pollfd pf[FD_COUNT];
        int idx[FD_COUNT];
        nfds_t n = 0;
        for (int i = 0; i < FD_COUNT; i++) {
            if (fds[i] < 0)
                continue;
            pf[n] = (struct pollfd){.fd = fds[i], .events = i == FD_IN ? POLLOUT : POLLIN};
            idx[n++] = i;
        }
        int timeout = PROCESS_POLL_MS;
        if (reaped)
            timeout = PROCESS_DRAIN_MS;
        else if (!has_pidfd && !pipes_open) {
            timeout = (int)reap_sleep;
            reap_sleep =
                reap_sleep * 2 < PROCESS_REAP_SLICE_MS ? reap_sleep * 2 : PROCESS_REAP_SLICE_MS;
        }
        if (res->stopped && !hard_killed && kill_at - now < timeout)
            timeout = (int)(kill_at - now > 0 ? kill_at - now : 0);
        int ready = poll(pf, n, timeout);
        if (ready < 0 && errno != EINTR)
            break;
        for (nfds_t k = 0; ready > 0 && k < n; k++) {
            if (!pf[k].revents)
                continue;
            int i = idx[k];
            if (i == FD_IN)
                feed_input(p, &fds[FD_IN]);
            else if ((i == FD_OUT || i == FD_ERR) && drain(p, &fds[i], i == FD_ERR, buf)) {
                /* stdout overflowed: end it now */
                close_fd(&fds[FD_OUT]);
                if (!res->stopped) {
                    killpg(pid, SIGKILL);
                    hard_killed = true;
                }
            }
        }
    }
    if (!reaped) { /* the poll failed: make sure the process ends and is reaped */
        killpg(pid, SIGKILL);
        int status;
        if (keeper_reports) {
            struct pollfd pf = {.fd = fds[FD_PID], .events = POLLIN};
            if (poll(&pf, 1, PROCESS_KILL_GRACE_MS) > 0 &&
                fork_server_read_status(fds[FD_PID], &status) > 0)
                record_status(res, status);
        } else if (waitpid(pid, &status, 0) == pid) {
            record_status(res, status);
        }
    }
    if (p->on_line)
        line_buffer_flush(&p->err_lines, p->on_line, p->ctx);
    for (int i = 0; i < FD_COUNT; i++)
        close_fd(&fds[i]);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (!res->out) {
        res->out = mem_strdup("");
        if (!res->out) {
            mem_free(buf);
            mem_free(p);
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory running an exec task");
        }
    }
    mem_free(buf);
    mem_free(p);
    return 0;
}

void process_result_clear(struct process_result *res)
{
    mem_free(res->out);
    res->out = NULL;
    res->out_len = 0;
}
