/* SPDX-License-Identifier: MIT */
/*
 * beanstalk_bench.c — the beanstalkd side of bench/peers: C clients speaking beanstalkd's
 * text protocol, one connection per thread, so that beanstalkd is measured at its best
 * rather than through a scripting language's client. A "run" is a job in the tube "jobs";
 * a worker reserves it, puts its result (the job's body) into the tube "results" and deletes
 * the job — the result is stored as beanstalkd stores anything, in memory or its binlog.
 *
 *   beanstalk_bench PORT submit N THREADS   put N jobs; prints {"start_ms", "end_ms"}
 *   beanstalk_bench PORT work THREADS        serve jobs until killed
 *   beanstalk_bench PORT collect N           take N results; prints {"first_ms", "end_ms"}
 *   beanstalk_bench PORT latency R           R jobs one at a time, each until its result
 *                                            (a worker must run); prints {"p50_ms", "p99_ms"}
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 256
#define BODY_MAX_BYTES 1024
#define MAX_THREADS 64
#define TTR_SECONDS 60

struct conn {
    int fd;
    char buf[4096];
    size_t len, pos;
};

static void die(const char *what)
{
    fprintf(stderr, "beanstalk_bench: %s\n", what);
    exit(1);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void conn_open(struct conn *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("cannot connect to beanstalkd");
}

static void send_all(struct conn *c, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(c->fd, data, n);
        if (w <= 0)
            die("write failed");
        data += w;
        n -= (size_t)w;
    }
}

static int next_byte(struct conn *c)
{
    if (c->pos == c->len) {
        ssize_t r = read(c->fd, c->buf, sizeof c->buf);
        if (r <= 0)
            die("connection closed");
        c->len = (size_t)r;
        c->pos = 0;
    }
    return (unsigned char)c->buf[c->pos++];
}

/* One "\r\n"-ended line into out, without the ending. */
static void read_line(struct conn *c, char *out, size_t max)
{
    size_t n = 0;
    for (;;) {
        int ch = next_byte(c);
        if (ch == '\n')
            break;
        if (ch != '\r' && n + 1 < max)
            out[n++] = (char)ch;
    }
    out[n] = '\0';
}

static void expect(struct conn *c, const char *prefix)
{
    char line[LINE_MAX_BYTES];
    read_line(c, line, sizeof line);
    if (strncmp(line, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "beanstalk_bench: expected %s, got '%s'\n", prefix, line);
        exit(1);
    }
}

static void command(struct conn *c, const char *cmd, const char *reply)
{
    send_all(c, cmd, strlen(cmd));
    expect(c, reply);
}

static void put(struct conn *c, const char *body)
{
    char head[LINE_MAX_BYTES];
    size_t n = strlen(body);
    int h = snprintf(head, sizeof head, "put 0 0 %d %zu\r\n", TTR_SECONDS, n);
    char msg[LINE_MAX_BYTES + BODY_MAX_BYTES];
    memcpy(msg, head, (size_t)h);
    memcpy(msg + h, body, n);
    memcpy(msg + h + n, "\r\n", 2);
    send_all(c, msg, (size_t)h + n + 2);
    expect(c, "INSERTED");
}

/* Reserves a job: its id, its body into body. */
static unsigned long long reserve(struct conn *c, char *body, size_t max)
{
    send_all(c, "reserve\r\n", 9);
    char line[LINE_MAX_BYTES];
    read_line(c, line, sizeof line);
    unsigned long long id = 0;
    size_t bytes = 0;
    if (sscanf(line, "RESERVED %llu %zu", &id, &bytes) != 2 || bytes + 1 > max)
        die("unexpected reserve answer");
    for (size_t i = 0; i < bytes; i++)
        body[i] = (char)next_byte(c);
    body[bytes] = '\0';
    next_byte(c); /* \r */
    next_byte(c); /* \n */
    return id;
}

static void delete_job(struct conn *c, unsigned long long id)
{
    char cmd[LINE_MAX_BYTES];
    snprintf(cmd, sizeof cmd, "delete %llu\r\n", id);
    command(c, cmd, "DELETED");
}

struct job {
    int port, n;
};

static void *submitter(void *arg)
{
    struct job *j = arg;
    struct conn c;
    conn_open(&c, j->port);
    command(&c, "use jobs\r\n", "USING");
    char body[64];
    for (int i = 0; i < j->n; i++) {
        snprintf(body, sizeof body, "{\"i\": %d}", i);
        put(&c, body);
    }
    close(c.fd);
    return NULL;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    struct conn jobs, results;
    conn_open(&jobs, j->port);
    conn_open(&results, j->port);
    command(&jobs, "watch jobs\r\n", "WATCHING");
    command(&jobs, "ignore default\r\n", "WATCHING");
    command(&results, "use results\r\n", "USING");
    char body[BODY_MAX_BYTES];
    for (;;) {
        unsigned long long id = reserve(&jobs, body, sizeof body);
        put(&results, body); /* the no-op's result: its parameters */
        delete_job(&jobs, id);
    }
    return NULL;
}

static void collect(int port, int n)
{
    struct conn c;
    conn_open(&c, port);
    command(&c, "watch results\r\n", "WATCHING");
    command(&c, "ignore default\r\n", "WATCHING");
    char body[BODY_MAX_BYTES];
    int64_t first = 0;
    for (int i = 0; i < n; i++) {
        delete_job(&c, reserve(&c, body, sizeof body));
        if (i == 0)
            first = now_ms();
    }
    printf("{\"first_ms\": %lld, \"end_ms\": %lld}\n", (long long)first, (long long)now_ms());
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void latency(int port, int r)
{
    struct conn jobs, results;
    conn_open(&jobs, port);
    conn_open(&results, port);
    command(&jobs, "use jobs\r\n", "USING");
    command(&results, "watch results\r\n", "WATCHING");
    command(&results, "ignore default\r\n", "WATCHING");
    double *ms = calloc((size_t)r, sizeof *ms);
    char body[BODY_MAX_BYTES];
    for (int i = 0; i < r && ms; i++) {
        double t0 = mono_ms();
        snprintf(body, sizeof body, "{\"latency\": %d}", i);
        put(&jobs, body);
        delete_job(&results, reserve(&results, body, sizeof body));
        ms[i] = mono_ms() - t0;
    }
    if (!ms)
        die("out of memory");
    qsort(ms, (size_t)r, sizeof *ms, compare_doubles);
    printf("{\"p50_ms\": %.3f, \"p99_ms\": %.3f}\n", ms[r / 2], ms[(r * 99) / 100]);
    free(ms);
}

int main(int argc, char **argv)
{
    if (argc < 4)
        die("usage: beanstalk_bench PORT submit N THREADS | work THREADS | collect N | latency R");
    int port = atoi(argv[1]);
    const char *mode = argv[2];
    int n = atoi(argv[3]);
    if (strcmp(mode, "submit") == 0 && argc == 5) {
        int threads = atoi(argv[4]);
        if (threads < 1 || threads > MAX_THREADS || n < threads)
            die("bad thread count");
        pthread_t t[MAX_THREADS];
        struct job jobs[MAX_THREADS];
        int64_t start = now_ms();
        for (int i = 0; i < threads; i++) {
            jobs[i] = (struct job){port, n / threads + (i < n % threads ? 1 : 0)};
            pthread_create(&t[i], NULL, submitter, &jobs[i]);
        }
        for (int i = 0; i < threads; i++)
            pthread_join(t[i], NULL);
        printf("{\"start_ms\": %lld, \"end_ms\": %lld}\n", (long long)start, (long long)now_ms());
    } else if (strcmp(mode, "work") == 0) {
        if (n < 1 || n > MAX_THREADS)
            die("bad thread count");
        pthread_t t[MAX_THREADS];
        struct job j = {port, 0};
        for (int i = 0; i < n; i++)
            pthread_create(&t[i], NULL, worker, &j);
        for (int i = 0; i < n; i++)
            pthread_join(t[i], NULL);
    } else if (strcmp(mode, "collect") == 0) {
        collect(port, n);
    } else if (strcmp(mode, "latency") == 0 && n > 0) {
        latency(port, n);
    } else {
        die("unknown mode");
    }
    return 0;
}
