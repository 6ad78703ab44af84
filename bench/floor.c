/*
 * The kernel floor for the connect and small-RETR scenarios: the least a
 * server can do per connection, and per small download, on this machine.
 * One thread, one epoll loop, non-blocking sockets, 127.0.0.1 only. No
 * logging, no limits, no files, no checks: whatever CPU it spends per
 * operation is the kernel's, so no FTP server can cost less, and none can
 * show a much higher rate against the same load generator. bench/compare.py
 * measures it beside the real servers.
 *
 *     gcc -O2 -o floor bench/floor.c && ./floor 2408   (0: any free port)
 *
 * Per connection (the connect scenario): accept, send the greeting, read
 * QUIT, send one line and close (accept, two sends, a receive, epoll,
 * close, and the TCP handshake and teardown).
 *
 * Per small download (the small-RETR scenario, EPSV or PASV): read EPSV,
 * answer with the session's passive port, read RETR, accept the data
 * connection the client has already opened, send the file from memory in
 * one send (more only when the socket's buffer fills: then "150" goes out
 * first and the rest waits in epoll), send "150" and "226" in one write on
 * the control connection, close the data connection: two reads, two
 * writes, an accept, a send and a close per file. The passive listener is
 * made at the session's first EPSV/PASV and kept until the session ends;
 * it is only put in epoll when a transfer finds no connection waiting, and
 * the data connection only when a send or receive would block.
 *
 * Besides: USER, PASS, TYPE and the like are answered yes (any login is
 * good), unknown commands 502. STOR keeps what it receives (up to 1 MiB,
 * the rest is read and dropped) as the one file every RETR of any session
 * serves, whatever the path; before any STOR, RETR serves 4096 bytes of a
 * pattern. A connection left waiting by an EPSV without a transfer would
 * be the next transfer's; the load generator never does that.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536          /* sessions are indexed by control fd */
#define FILE_CAP (1 << 20)     /* what STOR keeps; the rest is dropped */
#define PATTERN_SIZE 4096      /* what RETR serves before any STOR */

static const char GREETING[] = "220 floor\r\n";
static const char GOODBYE[] = "221 bye\r\n";

/* What an epoll event is about (the upper 32 bits of its data; the lower
 * hold the session's control fd, or the main listener's fd). */
enum kind { CONTROL, PASSIVE, DATA, LISTENER };

/* Where a session's transfer is: none, waiting for the data connection,
 * sending (RETR), receiving (STOR). */
enum state { IDLE, ACCEPTING, SENDING, RECEIVING };

/* A file's bytes, shared by reference: the served file, and RETRs under way. */
struct file {
    long refs;
    size_t len, cap;
    unsigned char bytes[];
};

struct session {
    int open;
    int control;
    int passive;          /* the passive listener, -1 before the first EPSV/PASV */
    int data;             /* the data connection under way, -1 */
    unsigned short port;  /* the passive listener's */
    unsigned char state;
    unsigned char command;     /* 'R' or 'S': the transfer under way */
    unsigned char armed;       /* EPSV/PASV given since the last transfer */
    unsigned char passive_polled, data_polled;
    unsigned char told;        /* the 150 has gone out */
    unsigned char discarding;  /* inside a line too long for the buffer */
    unsigned char dead;        /* close at the end of this event */
    struct file *file;    /* RETR: what is sent (a reference); STOR: what is received */
    struct file *spare;   /* a receive buffer kept for the next STOR */
    size_t sent;
    size_t have;          /* bytes in line */
    char line[512];
};

static int poller;
static struct session *sessions;
static struct file *served;
static unsigned char scratch[65536]; /* where STOR's bytes past FILE_CAP go */

static uint64_t tag(enum kind kind, int fd) { return (uint64_t)kind << 32 | (uint32_t)fd; }

static void reply(struct session *s, const char *text, size_t len) {
    if (write(s->control, text, len) != (ssize_t)len)
        s->dead = 1;
}
#define REPLY(s, literal) reply(s, literal, sizeof literal - 1)

/* Drops a reference; the last one frees the file, or keeps it as the
 * session's next receive buffer. */
static void drop(struct session *s, struct file *f) {
    if (--f->refs > 0)
        return;
    if (f->cap == FILE_CAP && !s->spare)
        s->spare = f;
    else
        free(f);
}

/* The transfer is over: the final reply, then the data connection closes. */
static void end_transfer(struct session *s, const char *text, size_t len) {
    reply(s, text, len);
    close(s->data);
    s->data = -1;
    if (s->file) {
        drop(s, s->file);
        s->file = NULL;
    }
    s->state = IDLE;
}

#define END(s, literal) end_transfer(s, literal, sizeof literal - 1)

static void watch_data(struct session *s, uint32_t events) {
    if (s->data_polled)
        return;
    struct epoll_event want = {.events = events, .data.u64 = tag(DATA, s->control)};
    epoll_ctl(poller, EPOLL_CTL_ADD, s->data, &want);
    s->data_polled = 1;
}

static void send_file(struct session *s) {
    struct file *f = s->file;
    while (s->sent < f->len) {
        ssize_t n = send(s->data, f->bytes + s->sent, f->len - s->sent, MSG_NOSIGNAL);
        if (n > 0) {
            s->sent += n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            /* The client reads only after the 150. */
            if (!s->told) {
                REPLY(s, "150 ok\r\n");
                s->told = 1;
            }
            watch_data(s, EPOLLOUT);
            return;
        } else {
            END(s, "426 data connection lost\r\n");
            return;
        }
    }
    if (s->told)
        END(s, "226 ok\r\n");
    else
        END(s, "150 ok\r\n226 ok\r\n");
}

static void receive_file(struct session *s) {
    struct file *f = s->file;
    for (;;) {
        size_t room = f->cap - f->len;
        ssize_t n = room ? read(s->data, f->bytes + f->len, room) : read(s->data, scratch, sizeof scratch);
        if (n > 0) {
            if (room)
                f->len += n;
        } else if (n == 0) {
            struct file *old = served;
            served = f;
            s->file = NULL;
            drop(s, old);
            END(s, "226 ok\r\n");
            return;
        } else if (errno == EAGAIN || errno == EINTR) {
            watch_data(s, EPOLLIN);
            return;
        } else {
            END(s, "426 data connection lost\r\n");
            return;
        }
    }
}

/* The data connection is open: start the transfer. */
static void connected(struct session *s, int fd) {
    s->data = fd;
    s->data_polled = 0;
    s->sent = 0;
    s->told = 0;
    if (s->command == 'R') {
        s->file = served;
        served->refs++;
        s->state = SENDING;
        send_file(s);
        return;
    }
    struct file *f = s->spare;
    s->spare = NULL;
    if (!f && (f = malloc(sizeof *f + FILE_CAP)))
        f->cap = FILE_CAP;
    if (!f) {
        s->file = NULL;
        END(s, "451 out of memory\r\n");
        return;
    }
    f->refs = 1;
    f->len = 0;
    s->file = f;
    s->state = RECEIVING;
    REPLY(s, "150 ok\r\n");
    receive_file(s);
}

/* Waits for the data connection: the listener goes in epoll, once. */
static void await_connection(struct session *s) {
    struct epoll_event want = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = tag(PASSIVE, s->control)};
    epoll_ctl(poller, s->passive_polled ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->passive, &want);
    s->passive_polled = 1;
    s->state = ACCEPTING;
}

/* RETR or STOR: take the data connection the client opened after EPSV/PASV. */
static void transfer(struct session *s, unsigned char command) {
    if (!s->armed) {
        REPLY(s, "425 use EPSV or PASV first\r\n");
        return;
    }
    s->armed = 0;
    s->command = command;
    int fd = accept4(s->passive, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0)
        connected(s, fd);
    else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        await_connection(s);
    else
        REPLY(s, "425 no data connection\r\n");
}

static void on_passive(struct session *s) {
    int fd = accept4(s->passive, NULL, NULL, SOCK_NONBLOCK);
    if (fd >= 0) {
        connected(s, fd);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        await_connection(s);
    } else {
        s->state = IDLE;
        REPLY(s, "425 no data connection\r\n");
    }
}

/* EPSV or PASV: the session's listener, made once. */
static void passive(struct session *s, int extended) {
    if (s->passive < 0) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t size = sizeof addr;
        if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 16) ||
            getsockname(fd, (struct sockaddr *)&addr, &size)) {
            if (fd >= 0)
                close(fd);
            REPLY(s, "425 cannot listen\r\n");
            return;
        }
        s->passive = fd;
        s->port = ntohs(addr.sin_port);
    }
    s->armed = 1;
    char text[64];
    int len = extended ? snprintf(text, sizeof text, "229 Entering Extended Passive Mode (|||%u|)\r\n", s->port)
                       : snprintf(text, sizeof text, "227 Entering Passive Mode (127,0,0,1,%u,%u)\r\n",
                                  s->port >> 8, s->port & 255);
    reply(s, text, len);
}

#define V3(a, b, c) ((uint32_t)(a) << 16 | (uint32_t)(b) << 8 | (uint32_t)(c))
#define V4(a, b, c, d) ((uint32_t)(a) << 24 | V3(b, c, d))

/* One command line (without its line end; NUL-terminated). */
static void command(struct session *s, const char *line, size_t len) {
    size_t n = 0;
    while (n < len && line[n] != ' ')
        n++;
    uint32_t verb = 0;
    if (n == 3 || n == 4)
        for (size_t i = 0; i < n; i++)
            verb = verb << 8 | (unsigned char)toupper((unsigned char)line[i]);
    const char *arg = n < len ? line + n + 1 : "";
    switch (verb) {
    case V4('Q', 'U', 'I', 'T'):
        REPLY(s, GOODBYE);
        s->dead = 1;
        break;
    case V4('U', 'S', 'E', 'R'):
        REPLY(s, "331 password\r\n");
        break;
    case V4('P', 'A', 'S', 'S'):
        REPLY(s, "230 in\r\n");
        break;
    case V4('E', 'P', 'S', 'V'):
        if (strcasecmp(arg, "ALL") == 0)
            REPLY(s, "200 ok\r\n");
        else
            passive(s, 1);
        break;
    case V4('P', 'A', 'S', 'V'):
        passive(s, 0);
        break;
    case V4('R', 'E', 'T', 'R'):
        transfer(s, 'R');
        break;
    case V4('S', 'T', 'O', 'R'):
        transfer(s, 'S');
        break;
    case V4('T', 'Y', 'P', 'E'):
    case V4('M', 'O', 'D', 'E'):
    case V4('S', 'T', 'R', 'U'):
    case V4('O', 'P', 'T', 'S'):
    case V4('N', 'O', 'O', 'P'):
        REPLY(s, "200 ok\r\n");
        break;
    case V4('S', 'Y', 'S', 'T'):
        REPLY(s, "215 UNIX Type: L8\r\n");
        break;
    case V4('F', 'E', 'A', 'T'):
        REPLY(s, "211-Features:\r\n EPSV\r\n PASV\r\n SIZE\r\n211 End\r\n");
        break;
    case V4('S', 'I', 'Z', 'E'): {
        char text[32];
        int size = snprintf(text, sizeof text, "213 %zu\r\n", served->len);
        reply(s, text, size);
        break;
    }
    case V3('P', 'W', 'D'):
        REPLY(s, "257 \"/\"\r\n");
        break;
    case V3('C', 'W', 'D'):
    case V4('C', 'D', 'U', 'P'):
    case V4('D', 'E', 'L', 'E'):
        REPLY(s, "250 ok\r\n");
        break;
    default:
        REPLY(s, "502 no\r\n");
    }
}

/* Runs the complete lines in the buffer; none while a transfer is under
 * way (they wait for it to end). */
static void run_lines(struct session *s) {
    while (!s->dead && s->state == IDLE && s->have) {
        char *end = memchr(s->line, '\n', s->have);
        if (!end) {
            if (s->have == sizeof s->line) {
                if (!s->discarding)
                    REPLY(s, "500 line too long\r\n");
                s->discarding = 1;
                s->have = 0;
            }
            return;
        }
        size_t used = end - s->line + 1;
        if (s->discarding) {
            s->discarding = 0;
        } else {
            size_t len = end - s->line;
            if (len && s->line[len - 1] == '\r')
                len--;
            s->line[len] = 0;
            command(s, s->line, len);
        }
        s->have -= used;
        if (s->have)
            memmove(s->line, s->line + used, s->have);
    }
}

static void on_control(struct session *s) {
    size_t room = sizeof s->line - s->have;
    if (room == 0) { /* a full buffer while a transfer waits: flooding */
        s->dead = 1;
        return;
    }
    ssize_t got = read(s->control, s->line + s->have, room);
    if (got > 0)
        s->have += got;
    else if (got == 0 || (errno != EAGAIN && errno != EINTR))
        s->dead = 1;
}

static void close_session(struct session *s) {
    close(s->control);
    if (s->passive >= 0)
        close(s->passive);
    if (s->data >= 0)
        close(s->data);
    if (s->file)
        drop(s, s->file);
    free(s->spare);
    s->file = s->spare = NULL;
    s->open = 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Every fd is below the limit, so it indexes the sessions. */
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max < MAX_FDS ? limit.rlim_max : MAX_FDS;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
    sessions = calloc(limit.rlim_cur, sizeof *sessions); /* untouched pages cost nothing */
    served = malloc(sizeof *served + PATTERN_SIZE);
    if (!sessions || !served) {
        perror("malloc");
        return 1;
    }
    served->refs = 1;
    served->len = served->cap = PATTERN_SIZE;
    for (int i = 0; i < PATTERN_SIZE; i++)
        served->bytes[i] = (unsigned char)(i % 251);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int on = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    /* Accepted connections inherit it: replies are not held back by Nagle. */
    setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096)) {
        perror("listen");
        return 1;
    }
    poller = epoll_create1(0);
    struct epoll_event want = {.events = EPOLLIN, .data.u64 = tag(LISTENER, listener)};
    epoll_ctl(poller, EPOLL_CTL_ADD, listener, &want);
    /* Port 0 takes any free port; the line says which. */
    socklen_t size = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &size);
    printf("floor listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event ready[64];
    for (;;) {
        int n = epoll_wait(poller, ready, 64, -1);
        for (int i = 0; i < n; i++) {
            enum kind kind = ready[i].data.u64 >> 32;
            int fd = (int)(uint32_t)ready[i].data.u64;
            if (kind == LISTENER) {
                int conn;
                while ((conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct session *s = &sessions[conn];
                    s->open = 1;
                    s->control = conn;
                    s->passive = s->data = -1;
                    s->state = IDLE;
                    s->armed = s->passive_polled = s->discarding = s->dead = 0;
                    s->have = 0;
                    (void)!write(conn, GREETING, sizeof GREETING - 1);
                    struct epoll_event readable = {.events = EPOLLIN, .data.u64 = tag(CONTROL, conn)};
                    epoll_ctl(poller, EPOLL_CTL_ADD, conn, &readable);
                }
                continue;
            }
            struct session *s = &sessions[fd];
            if (!s->open) /* closed earlier in this batch */
                continue;
            /* The state checks skip events left from a session closed
             * earlier in this batch whose fd a new session now has. */
            if (kind == CONTROL)
                on_control(s);
            else if (kind == PASSIVE && s->state == ACCEPTING)
                on_passive(s);
            else if (kind == DATA && s->state == SENDING)
                send_file(s);
            else if (kind == DATA && s->state == RECEIVING)
                receive_file(s);
            run_lines(s);
            if (s->dead)
                close_session(s);
        }
    }
}
