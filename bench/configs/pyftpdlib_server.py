"""pyftpdlib server for bench/compare.py.

One virtual user (plain-text password, pyftpdlib's DummyAuthorizer) with
full write permission in its home, loopback only, a fixed passive port
range, no anonymous login, warnings-only logging. pyftpdlib's default
server class: one process, one thread, an event loop.

    python pyftpdlib_server.py --port P --root DIR --passive A-B \
        --user U --password PW --max-sessions N
"""

import argparse
import logging

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.log import config_logging
from pyftpdlib.servers import FTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--passive", required=True, help="A-B")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--max-sessions", type=int, default=4000)
    args = ap.parse_args()

    config_logging(level=logging.WARNING)

    authorizer = DummyAuthorizer()
    # e l r a d f m w: cd, list, read, append, delete, rename, mkdir, write.
    authorizer.add_user(args.user, args.password, args.root, perm="elradfmw")

    low, high = (int(p) for p in args.passive.split("-"))

    class Handler(FTPHandler):
        pass

    Handler.authorizer = authorizer
    Handler.passive_ports = range(low, high + 1)
    Handler.banner = "pyftpdlib ready."

    server = FTPServer(("127.0.0.1", args.port), Handler)
    server.max_cons = args.max_sessions
    server.max_cons_per_ip = 0
    server.serve_forever()


if __name__ == "__main__":
    main()
