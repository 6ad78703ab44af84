/*
 * The kernel floor for the connect scenario: the least a server can do per
 * connection on this machine. One thread, one epoll loop; it sends a
 * greeting line, answers QUIT with one line and closes. No logging, no
 * limits, no state: whatever CPU it spends per connection is the kernel's
 * (accept, two sends, a receive, epoll, close, and the TCP handshake and
 * teardown), so no FTP server can cost less. bench/compare.py measures it
 * beside the real servers.
 *
 *     gcc -O2 -o floor bench/floor.c && ./floor 2408
 *
 * Listens on 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char GREETING[] = "220 floor\r\n";
static const char GOODBYE[] = "221 bye\r\n";

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int on = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096)) {
        perror("listen");
        return 1;
    }
    int poller = epoll_create1(0);
    struct epoll_event want = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(poller, EPOLL_CTL_ADD, listener, &want);
    printf("floor listening on 127.0.0.1:%s\n", argv[1]);
    fflush(stdout);

    struct epoll_event ready[64];
    char line[512];
    for (;;) {
        int n = epoll_wait(poller, ready, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == listener) {
                int conn;
                while ((conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    (void)!write(conn, GREETING, sizeof GREETING - 1);
                    struct epoll_event readable = {.events = EPOLLIN, .data.fd = conn};
                    epoll_ctl(poller, EPOLL_CTL_ADD, conn, &readable);
                }
                continue;
            }
            ssize_t got = read(fd, line, sizeof line);
            if (got <= 0) {
                close(fd);
            } else if (got >= 4 && strncasecmp(line, "QUIT", 4) == 0) {
                (void)!write(fd, GOODBYE, sizeof GOODBYE - 1);
                close(fd);
            }
        }
    }
}
