/*
 * kc-sink: the benchmark's SMTP sink. It answers like Postfix's smtp-sink and counts
 * messages the same way (`mesg=<n>` on stdout as each one ends), with the same command
 * line (`kc-sink -c -M N [-u user] host:port backlog`), but reads a message's data in
 * large blocks and finds its end with memmem().
 *
 * Why it exists: smtp-sink reads DATA one character at a time (VSTREAM_GETC). At 100 KB
 * that took about 0.5 ms of CPU per message, on the same two vCPUs as the relay being
 * measured: 40-60 % of what the relay itself used, for whichever side sent. A real
 * receiving MX does not run on the sender's CPUs, so the sink's cost is a measurement
 * artefact; this sink keeps it small. See docs/performance.md ("The sink").
 *
 * One process, one thread, epoll, non-blocking sockets. Replies to pipelined commands are
 * gathered and written once the input read so far has been handled, as smtp-sink does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BLOCK (256 * 1024)
#define MAX_LINE 4096 /* a command line longer than this is refused and the session closed */
#define MAX_OUT (64 * 1024)
#define END_MARK "\r\n.\r\n"
#define END_LEN 5

static const char GREETING[] = "220 kc-sink ESMTP\r\n";
/* The same extensions smtp-sink advertises by default, so a relay behaves the same. */
static const char EHLO_REPLY[] =
    "250-kc-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n"
    "250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n";

struct conn {
    int fd;
    int in_data;  /* reading a message's data */
    int quitting; /* close once the replies are written */
    size_t len;   /* bytes held in buf */
    char *buf;    /* READ_BLOCK + MAX_LINE bytes */
    size_t out_len;
    char out[MAX_OUT];
};

static long messages, limit = -1;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void reply(struct conn *c, const char *text, size_t n) {
    if (c->out_len + n > MAX_OUT) { /* a client that pipelines without reading replies */
        c->quitting = 1;
        return;
    }
    memcpy(c->out + c->out_len, text, n);
    c->out_len += n;
}
#define REPLY(c, s) reply((c), (s), sizeof(s) - 1)

static void count_message(struct conn *c) {
    char line[32];
    int n;
    messages++;
    REPLY(c, "250 2.0.0 Ok: queued\r\n");
    n = snprintf(line, sizeof line, "mesg=%ld\r", messages);
    if (write(1, line, (size_t)n) < 0 && errno != EAGAIN) {
        /* the reader is gone: keep answering, the count is lost only to it */
    }
}

static int verb_is(const char *line, size_t n, const char *verb) {
    size_t v = strlen(verb);
    return n >= v && strncasecmp(line, verb, v) == 0 && (n == v || line[v] == ' ');
}

/* One command line (without CR LF). */
static void command(struct conn *c, const char *line, size_t n) {
    if (verb_is(line, n, "EHLO"))
        REPLY(c, EHLO_REPLY);
    else if (verb_is(line, n, "HELO"))
        REPLY(c, "250 kc-sink\r\n");
    else if (verb_is(line, n, "MAIL"))
        REPLY(c, "250 2.1.0 Ok\r\n");
    else if (verb_is(line, n, "RCPT"))
        REPLY(c, "250 2.1.5 Ok\r\n");
    else if (verb_is(line, n, "DATA")) {
        REPLY(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
        c->in_data = 1;
    } else if (verb_is(line, n, "QUIT")) {
        REPLY(c, "221 2.0.0 Bye\r\n");
        c->quitting = 1;
    } else if (verb_is(line, n, "RSET") || verb_is(line, n, "NOOP"))
        REPLY(c, "250 2.0.0 Ok\r\n");
    else
        REPLY(c, "502 5.5.2 Error: command not recognized\r\n");
}

/*
 * Handle what buf holds. In data mode buf starts with the message's last bytes seen so far
 * (at most END_LEN - 1 of them, or the CR LF that ended the DATA command), so an end mark
 * split between two reads is found, and no byte is scanned twice for a whole mark.
 */
static void consume(struct conn *c) {
    size_t at = 0;
    while (at < c->len && !c->quitting) {
        char *from = c->buf + at;
        size_t left = c->len - at;
        if (c->in_data) {
            char *end = memmem(from, left, END_MARK, END_LEN);
            if (end == NULL) {
                size_t keep = left < END_LEN - 1 ? left : END_LEN - 1;
                memmove(c->buf, from + left - keep, keep);
                c->len = keep;
                return;
            }
            at = (size_t)(end - c->buf) + END_LEN;
            c->in_data = 0;
            count_message(c);
            if (limit > 0 && messages >= limit)
                c->quitting = 1;
            continue;
        }
        char *nl = memchr(from, '\n', left);
        if (nl == NULL) {
            if (left > MAX_LINE) {
                REPLY(c, "500 5.5.0 Error: line too long\r\n");
                c->quitting = 1;
                return;
            }
            memmove(c->buf, from, left);
            c->len = left;
            return;
        }
        size_t n = (size_t)(nl - from);
        command(c, from, n > 0 && from[n - 1] == '\r' ? n - 1 : n);
        at += n + 1;
        if (c->in_data) { /* the data starts right after DATA's CR LF: keep that CR LF */
            at -= 2;
            c->buf[at] = '\r';
            c->buf[at + 1] = '\n';
        }
    }
    c->len = 0;
}

static int flush(struct conn *c) {
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = write(c->fd, c->out + done, c->out_len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1; /* replies are tiny: a full socket buffer means a dead client */
        }
        done += (size_t)n;
    }
    c->out_len = 0;
    return 0;
}

static void close_conn(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c);
}

static void readable(int ep, struct conn *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, READ_BLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            close_conn(ep, c);
            return;
        }
        c->len += (size_t)n;
        consume(c);
        if (c->quitting || (size_t)n < READ_BLOCK)
            break;
    }
    if (flush(c) < 0 || c->quitting) {
        close_conn(ep, c);
        if (limit > 0 && messages >= limit)
            exit(0);
    }
}

static void drop_privileges(const char *user) {
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "kc-sink: unknown user %s\n", user);
        exit(1);
    }
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
        die("kc-sink: dropping privileges");
}

static int listen_on(const char *where, int backlog) {
    char host[256];
    const char *colon = strrchr(where, ':');
    struct sockaddr_in addr = {.sin_family = AF_INET};
    int one = 1, fd;
    if (colon == NULL || (size_t)(colon - where) >= sizeof host) {
        fprintf(stderr, "kc-sink: expected host:port, got %s\n", where);
        exit(1);
    }
    memcpy(host, where, (size_t)(colon - where));
    host[colon - where] = 0;
    addr.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "kc-sink: not an IPv4 address: %s\n", host);
        exit(1);
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(fd, backlog) < 0)
        die("listen");
    return fd;
}

static void accept_all(int ep, int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL || (c->buf = malloc(READ_BLOCK + MAX_LINE + END_LEN)) == NULL)
            die("malloc");
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            die("epoll_ctl");
        REPLY(c, GREETING);
        if (flush(c) < 0)
            close_conn(ep, c);
    }
}

int main(int argc, char **argv) {
    const char *user = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "cM:u:")) != -1) {
        if (opt == 'M')
            limit = atol(optarg);
        else if (opt == 'u')
            user = optarg;
        else if (opt != 'c') {
            fprintf(stderr, "usage: kc-sink [-c] [-M count] [-u user] host:port [backlog]\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: kc-sink [-c] [-M count] [-u user] host:port [backlog]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = listen_on(argv[optind], optind + 1 < argc ? atoi(argv[optind + 1]) : 128);
    if (user != NULL)
        drop_privileges(user);
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl");
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(ep, events, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_all(ep, lfd);
            else
                readable(ep, events[i].data.ptr);
        }
    }
}
