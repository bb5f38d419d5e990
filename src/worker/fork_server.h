/* SPDX-License-Identifier: MIT */
/*
 * fork_server.h — the process that starts the processes of isolated C tasks.
 *
 * A C task function runs in a copy of the worker's memory (its code, its userdata), so its
 * process must be a fork(), not an exec. But a fork() of a threaded process copies the locks
 * other threads held at that instant, and the child then waits for ever on the first one it
 * takes: the allocator's under AddressSanitizer, a library's anywhere. So the worker forks
 * this server once, at the start of serve(), while it is still a single thread, and every
 * task process is forked from it: a process whose only thread waits on a socket holds no
 * lock when it forks.
 *
 * For each task process the server forks a keeper, which forks the task process, sets its
 * process group (the task's pid; the worker signals the group), reports its pid, waits for
 * it and reports its wait status. The server ignores SIGINT and SIGTERM (a Ctrl-C to the
 * terminal's group is the worker's to handle) and ends when the worker closes the socket;
 * each of the three dies by SIGKILL with its parent (PR_SET_PDEATHSIG), so a worker killed
 * with -9 takes its task processes with it, as the runs are redelivered.
 */
#ifndef ERRAND_WORKER_FORK_SERVER_H
#define ERRAND_WORKER_FORK_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "errand/errand.h"

typedef struct fork_server fork_server;

/* What a task process runs, in the copy of memory the server was forked with: stdin, stdout
 * and stderr are on the caller's pipes, the limits set; it must end the process with _exit(). */
typedef void (*fork_server_child_fn)(void *arg);

/* The limits a task process sets on itself before it calls the function. */
struct fork_limits {
    size_t memory_limit_bytes; /* 0 = none; data size it may add to what it has at start */
    double cpu_limit_seconds;  /* 0 = none */
};

/* Forks the server. Call it while the process has one thread (before serve() starts its
 * threads): fn(arg) is what each task process runs. */
int fork_server_start(fork_server_child_fn fn, void *arg, fork_server **out, errand_error *err);

/* Starts a task process with fds[0], fds[1], fds[2] as its stdin, stdout and stderr (the
 * caller keeps and closes its own). Safe from any thread. Returns 0 with *pid (the task
 * process, leader of its own group) and *status_fd (the caller's to close): readable when the
 * process has ended, then it gives read_exit_status(). */
int fork_server_spawn(fork_server *fs, const int fds[3], const struct fork_limits *limits,
                      pid_t *pid, int *status_fd, errand_error *err);

/* Reads the wait status from a status_fd without blocking: 1 with *status when the process
 * ended, 0 when it runs on, -1 when the keeper died without saying (the process is gone). */
int fork_server_read_status(int status_fd, int *status);

/* True once the server has died (killed, out of memory): no task process can start any more,
 * and the worker must stop (its supervisor restarts it with a new one). Safe from any
 * thread. */
bool fork_server_gone(fork_server *fs);

/* Closes the socket, which ends the server, and reaps it. NULL is fine. */
void fork_server_stop(fork_server *fs);

#endif
