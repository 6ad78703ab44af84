#!/usr/bin/env python3
"""Server CPU and context switches while N downloads wait on clients that
do not read (each client's receive buffer full): what an idle transfer
costs the server. Binds only 127.0.0.1; stops itself after the interval.

    bench/wakeups.py BINARY [N] [SECONDS]

BINARY is a ferroftp binary; it serves a 50 MB file from a temporary root.
"""
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("the server closed a control connection")
        if len(line) >= 4 and line[3:4] == " ":
            return line


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    root = tempfile.mkdtemp(prefix="ferroftp-wakeups-")
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20) * 50)
    config = os.path.join(root, "config.toml")
    with open(config, "w") as f:
        f.write(f"max_clients = {n + 10}\nmax_clients_per_ip = {n + 10}\ndata_timeout = 600\nidle_timeout = 600\n")
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--root", root, "--config", config],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r":(\d+) ", server.stdout.readline()).group(1))
        held = []
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", port))
            f = c.makefile("r", encoding="latin-1")
            reply(f)
            for line in ("USER ftp", "PASS x", "TYPE I", "EPSV"):
                c.sendall(line.encode() + b"\r\n")
                last = reply(f)
            data_port = int(re.search(r"\|\|\|(\d+)\|", last).group(1))
            c.sendall(b"RETR big.bin\r\n")
            d = socket.create_connection(("127.0.0.1", data_port))
            d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reply(f)
            held.append((c, f, d))

        def switches():
            total = 0
            for task in os.listdir(f"/proc/{server.pid}/task"):
                try:
                    with open(f"/proc/{server.pid}/task/{task}/status") as s:
                        total += sum(int(l.split()[1]) for l in s if "ctxt_switches" in l)
                except FileNotFoundError:
                    pass
            return total

        def cpu():
            with open(f"/proc/{server.pid}/stat") as s:
                fields = s.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        # Measure once every download has data waiting in its client's
        # receive buffer: from then on each transfer only waits.
        poller = select.poll()
        waiting = {d.fileno() for _, _, d in held}
        for fd in waiting:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + 30
        while waiting and time.monotonic() < deadline:
            for fd, _ in poller.poll(1000):
                waiting.discard(fd)
                poller.unregister(fd)
        if waiting:
            raise SystemExit(f"{len(waiting)} downloads never started")
        s0, c0 = switches(), cpu()
        time.sleep(secs)
        s1, c1 = switches(), cpu()
        print(f"{n} waiting downloads: {(s1 - s0) / secs:.0f} server context switches/s, "
              f"server CPU {100 * (c1 - c0) / secs:.1f}% of a core")
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
