/* SPDX-License-Identifier: MIT */
/*
 * fork_server.c — the process that starts the processes of isolated C tasks (see
 * fork_server.h).
 *
 * The worker and the server share a SOCK_SEQPACKET socket pair. A request is one message:
 * the limits, and four descriptors (SCM_RIGHTS): the task process's stdin, stdout and
 * stderr, and one end of a second socket pair made for that process alone, on which its
 * keeper sends two messages: the pid (once the process is its own group's leader), then the
 * wait status. The caller waits on its end of that pair; no answer is shared between
 * threads, so the socket needs no lock. A keeper that dies first leaves EOF there.
 *
 * The server's direct children (the keepers) are reaped by the kernel (SIGCHLD ignored).
 */
#include "worker/fork_server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/mem.h"
#include "worker/process.h"

/* How long a spawn waits for the keeper to report the task process's pid. */
#define FORK_SERVER_REPLY_MS 10000

enum { CHILD_STDIN, CHILD_STDOUT, CHILD_STDERR, CHILD_STATUS, CHILD_FDS };

struct fork_server {
    int sock; /* the worker's end */
    pid_t pid;
    pthread_mutex_t mu; /* over reaped */
    bool reaped;        /* the server has ended and was reaped */
};

struct request {
    struct fork_limits limits;
};

static void close_quietly(int fd)
{
    if (fd >= 0)
        close(fd);
}

static bool write_whole(int fd, const void *data, size_t n)
{
    for (;;) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        return w == (ssize_t)n;
    }
}

/* 1 with a request, 0 at EOF, -1 on an error of the socket, -2 for a message that is not a
 * request of ours (dropped: its caller sees EOF). */
static int receive(int sock, struct request *rq, int fds[CHILD_FDS])
{
    union {
        char buf[CMSG_SPACE(CHILD_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = rq, .iov_len = sizeof *rq};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n == 0 ? 0 : -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    size_t got = c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS
                     ? (c->cmsg_len - CMSG_LEN(0)) / sizeof(int)
                     : 0;
    for (size_t i = 0; i < CHILD_FDS; i++)
        fds[i] = i < got ? ((int *)CMSG_DATA(c))[i] : -1;
    for (size_t i = CHILD_FDS; i < got; i++)
        close(((int *)CMSG_DATA(c))[i]);
    if (n != (ssize_t)sizeof *rq || got < CHILD_FDS || (msg.msg_flags & MSG_CTRUNC)) {
        for (size_t i = 0; i < CHILD_FDS; i++)
            close_quietly(fds[i]);
        return -2;
    }
    return 1;
}

/* Dies with the parent; false when the parent is already gone. */
static bool die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    return getppid() == parent;
}

/* The keeper of one task process (see the top of the file). */
static _Noreturn void keeper(const struct request *rq, int fds[CHILD_FDS], fork_server_child_fn fn,
                             void *arg)
{
    signal(SIGCHLD, SIG_DFL); /* its child is its own to wait for */
    pid_t self = getpid();
    pid_t task = fork();
    if (task == 0) {
        if (!die_with_parent(self))
            _exit(127);
        close(fds[CHILD_STATUS]);
        process_enter_child(fds[CHILD_STDIN], fds[CHILD_STDOUT], fds[CHILD_STDERR], &rq->limits);
        fn(arg);
        _exit(127); /* fn ends the process itself */
    }
    for (int i = CHILD_STDIN; i <= CHILD_STDERR; i++)
        close(fds[i]);
    if (task < 0)
        _exit(1);        /* EOF on the status socket: nothing started */
    setpgid(task, task); /* the child does it too: whichever comes first */
    if (!write_whole(fds[CHILD_STATUS], &task, sizeof task)) {
        kill(task, SIGKILL);
        _exit(1);
    }
    int status;
    while (waitpid(task, &status, 0) < 0)
        if (errno != EINTR)
            _exit(1);
    write_whole(fds[CHILD_STATUS], &status, sizeof status);
    _exit(0);
}

static _Noreturn void server_main(int sock, pid_t worker, fork_server_child_fn fn, void *arg)
{
    if (!die_with_parent(worker))
        _exit(0);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_IGN); /* keepers are reaped by the kernel */
    for (;;) {
        struct request rq;
        int fds[CHILD_FDS];
        int got = receive(sock, &rq, fds);
        if (got == 0)
            _exit(0); /* the worker closed its end: serve() is over */
        if (got == -2)
            continue;
        if (got < 0)
            _exit(1);
        pid_t k = fork();
        if (k == 0) {
            close(sock);
            keeper(&rq, fds, fn, arg);
        }
        for (int i = 0; i < CHILD_FDS; i++)
            close(fds[i]); /* a failed fork leaves the caller EOF */
    }
}

int fork_server_start(fork_server_child_fn fn, void *arg, fork_server **out, errand_error *err)
{
    *out = NULL;
    fork_server *fs = mem_calloc(1, sizeof *fs);
    if (!fs)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory starting the fork server");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = errno;
        mem_free(fs);
        return error_set(err, ERRAND_EIO, NULL, "cannot create the fork server's socket: %s",
                         strerror(e));
    }
    pid_t worker = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]), close(sv[1]);
        mem_free(fs);
        return error_set(err, ERRAND_EIO, NULL, "cannot fork the fork server: %s", strerror(e));
    }
    if (pid == 0) {
        close(sv[0]);
        server_main(sv[1], worker, fn, arg);
    }
    close(sv[1]);
    fs->sock = sv[0];
    fs->pid = pid;
    pthread_mutex_init(&fs->mu, NULL);
    *out = fs;
    return 0;
}

int fork_server_spawn(fork_server *fs, const int fds[3], const struct fork_limits *limits,
                      pid_t *pid, int *status_fd, errand_error *err)
{
    int st[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, st) != 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot create a socket for the task process: %s",
                         strerror(errno));
    struct request rq = {.limits = *limits};
    int pass[CHILD_FDS] = {fds[0], fds[1], fds[2], st[1]};
    union {
        char buf[CMSG_SPACE(sizeof pass)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = &rq, .iov_len = sizeof rq};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof pass);
    memcpy(CMSG_DATA(c), pass, sizeof pass);
    ssize_t sent;
    do
        sent = sendmsg(fs->sock, &msg, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    int send_errno = errno;
    close(st[1]);
    if (sent != (ssize_t)sizeof rq) {
        close(st[0]);
        return error_set(err, ERRAND_EIO, NULL,
                         "cannot reach the worker's fork server to start a task process: %s",
                         sent < 0 ? strerror(send_errno) : "short write");
    }
    struct pollfd pf = {.fd = st[0], .events = POLLIN};
    int ready;
    do
        ready = poll(&pf, 1, FORK_SERVER_REPLY_MS);
    while (ready < 0 && errno == EINTR);
    ssize_t n = ready > 0 ? recv(st[0], pid, sizeof *pid, 0) : -1;
    if (n != (ssize_t)sizeof *pid) {
        close(st[0]);
        return error_set(err, ERRAND_EIO, NULL,
                         "the worker's fork server could not start a "
                         "task process (out of processes or memory?)");
    }
    *status_fd = st[0];
    return 0;
}

int fork_server_read_status(int status_fd, int *status)
{
    ssize_t n;
    do
        n = recv(status_fd, status, sizeof *status, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof *status)
        return 1;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return -1;
}

bool fork_server_gone(fork_server *fs)
{
    pthread_mutex_lock(&fs->mu);
    if (!fs->reaped) {
        pid_t w = waitpid(fs->pid, NULL, WNOHANG);
        fs->reaped = w == fs->pid || (w < 0 && errno == ECHILD);
    }
    bool gone = fs->reaped;
    pthread_mutex_unlock(&fs->mu);
    return gone;
}

void fork_server_stop(fork_server *fs)
{
    if (!fs)
        return;
    close(fs->sock);
    if (!fork_server_gone(fs))
        while (waitpid(fs->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    pthread_mutex_destroy(&fs->mu);
    mem_free(fs);
}
