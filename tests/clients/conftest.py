"""Shared fixtures and helpers for the ferroftp real-client test suite.

These tests start the real ``ferroftp`` binary (``$FERROFTP_BIN``, default
``target/debug/ferroftp``) on 127.0.0.1 and drive it with real FTP clients
(curl, lftp, tnftp and Python's ftplib), comparing transferred bytes with
the originals and with what landed on disk under the server root.

Every network address used here is on 127.0.0.1; nothing talks to the
outside world.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
FERROFTP_BIN = Path(
    os.environ.get("FERROFTP_BIN", str(REPO / "target" / "debug" / "ferroftp"))
)

HOST = "127.0.0.1"
SUBPROCESS_TIMEOUT = 60  # seconds, for every client invocation
STARTUP_TIMEOUT = 10  # seconds to wait for "listening on"
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")

# Names used throughout: spaces + CJK characters, and plain ones.
UNICODE_DIR = "目录 dir"
UNICODE_BIN = "测试 文件 1.bin"
PLAIN_TXT = "plain.txt"
BIG_SIZE = 3 * 1024 * 1024 + 4321  # multi-megabyte, deliberately not block aligned

USER_NAME = "alice"
USER_PASSWORD = "S3cret-pass_42"

# Environment for client subprocesses: UTF-8 locale so clients don't mangle
# non-ASCII file names, no proxies, no user config leaking in.
CLIENT_ENV = {
    k: v
    for k, v in os.environ.items()
    if k.lower() not in ("ftp_proxy", "http_proxy", "https_proxy", "all_proxy", "no_proxy")
}
CLIENT_ENV.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "NO_PROXY": "*", "no_proxy": "*"})


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def assert_same_file(actual: os.PathLike | str, expected: os.PathLike | str, what: str = "") -> None:
    """Byte-for-byte comparison (size first for a readable message, then sha256)."""
    actual, expected = Path(actual), Path(expected)
    assert actual.exists(), f"{what}: {actual} does not exist"
    a_size, e_size = actual.stat().st_size, expected.stat().st_size
    assert a_size == e_size, f"{what}: size {a_size} != expected {e_size} ({actual})"
    assert sha256_file(actual) == sha256_file(expected), f"{what}: sha256 differs ({actual})"


def make_random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def run(
    cmd: Sequence[str | os.PathLike],
    *,
    input: bytes | str | None = None,
    timeout: float = SUBPROCESS_TIMEOUT,
    cwd: os.PathLike | str | None = None,
    env: dict | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run a command with a hard timeout; capture stdout/stderr as bytes.

    A timeout is reported as a test failure (with whatever output we have)
    rather than hanging the suite.
    """
    if isinstance(input, str):
        input = input.encode("utf-8")
    cmd = [str(c) for c in cmd]
    try:
        cp = subprocess.run(
            cmd,
            input=input if input is not None else b"",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
            cwd=cwd,
            env=env if env is not None else CLIENT_ENV,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"command timed out after {timeout}s: {cmd!r}\n"
            f"stdout:\n{_dec(e.stdout)}\nstderr:\n{_dec(e.stderr)}"
        )
    if check and cp.returncode != 0:
        pytest.fail(describe(cp, "command failed"))
    return cp


def _dec(b: bytes | None) -> str:
    if b is None:
        return ""
    return b.decode("utf-8", "replace")


def describe(cp: subprocess.CompletedProcess, msg: str = "") -> str:
    return (
        f"{msg}\ncommand: {cp.args!r}\nexit code: {cp.returncode}\n"
        f"--- stdout ---\n{_dec(cp.stdout)[-6000:]}\n--- stderr ---\n{_dec(cp.stderr)[-6000:]}"
    )


# ---------------------------------------------------------------------------
# listing parsing
# ---------------------------------------------------------------------------

# ls -l style:  -rw-r--r-- 1 owner group 3149755 Nov 24 14:32 name with spaces
LS_LINE_RE = re.compile(
    r"^(?P<perm>[-dlbcps][-rwxsStT]{9})[+@.]?\s+\d+\s+\S+\s+\S+\s+(?P<size>\d+)\s+"
    r"(?P<date>[A-Za-z]{3}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4}))\s(?P<name>.+)$"
)


def trace_commands(cp: subprocess.CompletedProcess, prefix: str) -> list[str]:
    """The FTP verbs a client sent, from its debug trace on stderr: lines
    starting with `prefix` (curl -v: "> ", lftp -d: "---> ")."""
    return [
        line[len(prefix):].split(" ", 1)[0].upper()
        for line in _dec(cp.stderr).splitlines()
        if line.startswith(prefix)
    ]


def parse_ls_lines(text: str) -> list[dict]:
    entries = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip() or line.startswith("total "):
            continue
        m = LS_LINE_RE.match(line)
        if m:
            entries.append(
                {"type": m["perm"][0], "size": int(m["size"]), "name": m["name"], "line": line}
            )
    return entries


def assert_in_list_output(text: str, name: str, size: int | None = None, kind: str = "-") -> None:
    """Assert `name` appears as an ls -l style entry (with `size` if given)."""
    entries = parse_ls_lines(text)
    matches = [e for e in entries if e["name"] == name]
    assert matches, f"{name!r} not found as an ls -l entry in LIST output:\n{text}"
    e = matches[0]
    assert e["type"] == kind, f"{name!r}: expected type {kind!r} in LIST line {e['line']!r}"
    if size is not None:
        assert e["size"] == size, f"{name!r}: LIST size {e['size']} != {size}: {e['line']!r}"


def nlst_names(text: str) -> list[str]:
    return [l for l in text.replace("\r\n", "\n").split("\n") if l.strip()]


def assert_in_nlst_output(text: str, name: str) -> None:
    names = nlst_names(text)
    ok = any(n == name or n.rstrip("/").rsplit("/", 1)[-1] == name for n in names)
    assert ok, f"{name!r} not found in NLST output: {names!r}"


# ---------------------------------------------------------------------------
# server management
# ---------------------------------------------------------------------------


def spawn_server(cmd, env, listen_re, log: list[str], what: str):
    """Starts a server process and waits for its "listening on HOST:PORT"
    line (listen_re's two groups). Returns (process, host, port); every
    output line is appended to `log`."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    ready = threading.Event()
    found: dict = {}

    def reader():
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            log.append(line)
            m = listen_re.search(line)
            if m and not ready.is_set():
                found["host"], found["port"] = m.group(1), int(m.group(2))
                ready.set()
        ready.set()  # EOF: wake the waiter so it can report the failure

    threading.Thread(target=reader, daemon=True).start()
    ready.wait(STARTUP_TIMEOUT)
    if "port" not in found:
        stop_process(proc)
        pytest.fail(
            f"{what} did not report 'listening on HOST:PORT' within {STARTUP_TIMEOUT}s\n"
            f"command: {cmd!r}\nexit code: {proc.returncode}\noutput:\n" + "\n".join(log)
        )
    return proc, found["host"], found["port"]


def stop_process(p: subprocess.Popen | None) -> None:
    """Terminates a server process, killing it if it does not stop."""
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


class Log(list):
    """A server's output lines, appended as they come (by spawn_server's
    reader thread); a test can wait for a line instead of looking again and
    again."""

    def __init__(self) -> None:
        super().__init__()
        self._grown = threading.Condition()

    def append(self, line: str) -> None:
        with self._grown:
            super().append(line)
            self._grown.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0, start: int = 0) -> str:
        """The first line from index `start` on that contains `text`,
        waiting for it at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._grown:
            while True:
                for line in self[start:]:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no line with {text!r} within {timeout}s; output:\n" + "\n".join(self[-200:]))
                self._grown.wait(left)


@dataclasses.dataclass
class FtpServer:
    root: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    host: str = HOST
    port: int = 0
    log: Log = dataclasses.field(default_factory=Log)

    def start(self) -> "FtpServer":
        if not FERROFTP_BIN.exists():
            pytest.fail(f"ferroftp binary not found at {FERROFTP_BIN} (set FERROFTP_BIN)")
        cmd = [
            str(FERROFTP_BIN),
            "serve",
            "--listen",
            f"{HOST}:0",
            "--root",
            str(self.root),
            *self.args,
        ]
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc, self.host, self.port = spawn_server(cmd, env, LISTEN_RE, self.log, "ferroftp")
        assert self.host == HOST, f"server reports listening on {self.host}, expected {HOST}"
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    @property
    def url(self) -> str:
        return f"ftp://{HOST}:{self.port}"

    def dump_log(self) -> str:
        return "\n".join(self.log[-200:])


def ferroftp_user_add(users_file: Path, name: str, home: Path, password: str, write: bool = True):
    cmd = [str(FERROFTP_BIN), "user", "add", "--file", str(users_file), name, "--home", str(home)]
    if write:
        cmd.append("--write")
    cmd.append("--password-stdin")
    cp = run(cmd, input=password + "\n", timeout=30, env=dict(os.environ))
    assert cp.returncode == 0, describe(cp, "ferroftp user add failed")
    assert users_file.exists(), f"ferroftp user add did not create {users_file}"
    return cp


@pytest.fixture
def server_factory(tmp_path) -> Iterable[Callable[..., FtpServer]]:
    """Start ferroftp servers; all are stopped (terminate, then kill) at teardown."""
    servers: list[FtpServer] = []

    def start(*args: str, root: Path | None = None, make_root: bool = True) -> FtpServer:
        if root is None:
            root = tmp_path / f"root{len(servers)}"
        if make_root:
            root.mkdir(parents=True, exist_ok=True)
        srv = FtpServer(root=root, args=list(args))
        servers.append(srv)
        return srv.start()

    yield start
    for s in servers:
        s.stop()
    # Printed output is shown by pytest only for failing tests.
    for s in servers:
        print(f"===== ferroftp log (port {s.port}, args {s.args}) =====\n{s.dump_log()}")


@dataclasses.dataclass
class Account:
    """A server plus credentials, and the directory the login is rooted at."""

    kind: str  # "anonymous" or "user"
    server: FtpServer
    user: str
    password: str
    root: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def anon_server(server_factory) -> FtpServer:
    """Anonymous login with write access."""
    return server_factory("--anonymous-write")


@pytest.fixture
def readonly_anon_server(server_factory) -> FtpServer:
    """Anonymous login without --anonymous-write."""
    return server_factory()


@pytest.fixture
def user_server(server_factory, tmp_path) -> tuple[FtpServer, Path]:
    """Virtual user created with `ferroftp user add`, anonymous disabled.

    The server --root is a different (empty) directory from the user's home,
    so files landing in the wrong place are detected.
    """
    home = tmp_path / "home alice"
    home.mkdir()
    users = tmp_path / "users.toml"
    ferroftp_user_add(users, USER_NAME, home, USER_PASSWORD, write=True)
    srv = server_factory("--users", str(users), "--no-anonymous")
    return srv, home


@pytest.fixture
def anon_account(anon_server) -> Account:
    """Anonymous login on an --anonymous-write server."""
    return Account("anonymous", anon_server, "anonymous", "guest@example.com", anon_server.root)


@pytest.fixture(params=["anonymous", "user"])
def account(request, tmp_path) -> Account:
    """Parametrized: anonymous on an --anonymous-write server, or a virtual user."""
    if request.param == "anonymous":
        srv = request.getfixturevalue("anon_server")
        return Account("anonymous", srv, "anonymous", "guest@example.com", srv.root)
    srv, home = request.getfixturevalue("user_server")
    return Account("user", srv, USER_NAME, USER_PASSWORD, home)


# ---------------------------------------------------------------------------
# payload files
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Payload:
    dir: Path
    big: Path  # multi-megabyte random binary with a unicode/space name
    text: Path  # small text file, plain name

    @property
    def big_name(self) -> str:
        return self.big.name

    @property
    def text_name(self) -> str:
        return self.text.name


@pytest.fixture(scope="session")
def payload(tmp_path_factory) -> Payload:
    d = tmp_path_factory.mktemp("payload")
    big = make_random_file(d / UNICODE_BIN, BIG_SIZE)
    rnd = random.Random(1234)
    lines = [
        f"line {i}: " + "".join(rnd.choice("abcdefghij klmnop 中文") for _ in range(rnd.randint(0, 70)))
        for i in range(500)
    ]
    text = d / PLAIN_TXT
    text.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return Payload(d, big, text)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """Scratch directory for client-side downloads/listings."""
    w = tmp_path / "client work 客户"
    w.mkdir()
    return w


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Looks at `predicate` until it holds (bounded). Only for what nothing
    announces, such as how far a transfer has come (the server tells that
    only when asked, with STAT); a line the server prints is waited for with
    Log.wait_for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def free_port_range(count: int = 20) -> tuple[int, int]:
    """Pick a contiguous run of currently-free TCP ports on 127.0.0.1."""
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randint(30000, 60000 - count)
        ok = True
        for p in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind((HOST, p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base, base + count - 1
    pytest.fail("could not find a free port range")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"required client {name!r} is not installed")
    return path
