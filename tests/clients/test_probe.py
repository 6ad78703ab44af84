"""`ferroftp probe` against pyftpdlib (a server nobody here wrote) and ferroftp.

pyftpdlib runs as a subprocess on 127.0.0.1 (port 0), configured per test:
default; announcing a wrong PASV address (``masquerade_address``);
connecting to any PORT/EPRT address (``permit_foreign_addresses``); a
passive port range whose ports never accept (bound, not listening: what a
firewall REJECT looks like); one connection per IP. Every other address
involved is 127.0.0.9, on which nothing listens.

Checked: exit codes, the JSON report (each mode's works/failure cause and
detail, the 227 arithmetic recomputed here, data_peer, retr_path and byte
counts against the files on disk and a LIST fetched with ftplib, write_ok
and the probe file gone afterwards), and the text output (-v transcript,
"= p1*256+p2", "MODE fails:", "  fix:", "N of M modes work.").
"""

from __future__ import annotations

import dataclasses
import ftplib
import io
import json
import re
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Callable, Iterable

import pytest

from conftest import (
    CLIENT_ENV,
    FERROFTP_BIN,
    HOST,
    describe,
    free_port_range,
    run,
    spawn_server,
    stop_process,
    wait_for,
)

WRONG_HOST = "127.0.0.9"  # nothing listens here
PY_USER = "bob"
PY_PASSWORD = "pw-Секрет 42"  # spaces and non-ASCII: must be percent-encoded, must never be printed
ALL_MODES = ["PASV", "EPSV", "PORT", "EPRT"]
PROBE_TIMEOUT = "3"  # --timeout for probe, seconds per step

# Files in every probe root. The CJK name with spaces is deliberately the
# smallest non-empty regular file: probe must pick it (not the empty one,
# not the directory) and get its name right.
CJK_NAME = "中文 文件 名.txt"
CJK_BODY = "小文件 with spaces\n".encode("utf-8")
TEXT_NAME = "a.txt"
TEXT_BODY = b"".join(b"line %d of a small text file\n" % i for i in range(100))
EMPTY_NAME = "empty.txt"
SUBDIR = "目录 dir"
SUB_FILE = "子 文件.bin"
SUB_BODY = bytes(range(256)) * 9

# ---------------------------------------------------------------------------
# pyftpdlib as a subprocess
# ---------------------------------------------------------------------------

PYFTPD_SCRIPT = r"""
import json, logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP
from pyftpdlib.servers import FTPServer

cfg = json.loads(sys.argv[1])
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
auth = DummyAuthorizer()
auth.add_anonymous(cfg["root"], perm="elradfmwMT")
auth.add_user(cfg["user"], cfg["password"], cfg["root"], perm="elradfmwMT")


class Handler(FTPHandler):
    pass


Handler.authorizer = auth
Handler.timeout = 30
Handler.auth_failed_timeout = 0.05
Handler.banner = "pyftpdlib test server ready."
Handler.log_cmds_list = list(FTPHandler.log_cmds_list) + ["PORT", "EPRT"]
if cfg.get("masquerade_address"):
    Handler.masquerade_address = cfg["masquerade_address"]
if cfg.get("permit_foreign_addresses"):
    Handler.permit_foreign_addresses = True
if cfg.get("passive_ports"):
    lo, hi = cfg["passive_ports"]
    Handler.passive_ports = range(lo, hi + 1)
if cfg.get("deaf_passive"):
    # The passive socket is bound (so the port is announced and taken) but
    # never listens: connecting to it is refused, like a firewall REJECT.
    class DeafPassiveDTP(PassiveDTP):
        def listen(self, num):
            pass

    Handler.passive_dtp = DeafPassiveDTP

server = FTPServer(("127.0.0.1", 0), Handler)
if cfg.get("max_cons_per_ip"):
    server.max_cons_per_ip = cfg["max_cons_per_ip"]
print("pyftpd listening on %s:%d" % tuple(server.address[:2]), flush=True)
server.serve_forever()
"""

PYFTPD_LISTEN_RE = re.compile(r"pyftpd listening on (\S+):(\d+)")


@dataclasses.dataclass
class PyFtpd:
    """A pyftpdlib server: anonymous (read/write) and PY_USER/PY_PASSWORD, both rooted at `root`."""

    root: Path
    options: dict
    proc: subprocess.Popen | None = None
    port: int = 0
    log: list[str] = dataclasses.field(default_factory=list)

    def start(self) -> "PyFtpd":
        cfg = dict(self.options, root=str(self.root), user=PY_USER, password=PY_PASSWORD)
        cmd = [sys.executable, "-u", "-W", "ignore::RuntimeWarning", "-c", PYFTPD_SCRIPT, json.dumps(cfg)]
        self.proc, host, self.port = spawn_server(cmd, CLIENT_ENV, PYFTPD_LISTEN_RE, self.log, "pyftpdlib")
        assert host == HOST, host
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def url(self, path: str = "/", user: str | None = None, password: str | None = None) -> str:
        cred = ""
        if user is not None:
            cred = urllib.parse.quote(user, safe="")
            if password is not None:
                cred += ":" + urllib.parse.quote(password, safe="")
            cred += "@"
        return f"ftp://{cred}{HOST}:{self.port}{urllib.parse.quote(path, safe='/')}"

    def log_text(self) -> str:
        return "\n".join(self.log)


@pytest.fixture
def pyftpd_factory(tmp_path) -> Iterable[Callable[..., PyFtpd]]:
    """Start pyftpdlib servers with handler options; all stopped at teardown."""
    servers: list[PyFtpd] = []

    def start(root: Path | None = None, **options) -> PyFtpd:
        if root is None:
            root = tmp_path / f"pyftpd root {len(servers)}"
        root.mkdir(parents=True, exist_ok=True)
        srv = PyFtpd(root=root, options=options)
        servers.append(srv)
        return srv.start()

    yield start
    for s in servers:
        s.stop()
    for s in servers:
        print(f"===== pyftpdlib log (port {s.port}, options {s.options}) =====\n{s.log_text()[-8000:]}")


def populate(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / TEXT_NAME).write_bytes(TEXT_BODY)
    (root / CJK_NAME).write_bytes(CJK_BODY)
    (root / EMPTY_NAME).write_bytes(b"")
    (root / SUBDIR).mkdir(exist_ok=True)
    (root / SUBDIR / SUB_FILE).write_bytes(SUB_BODY)
    return root


def closed_port() -> socket.socket:
    """A socket bound to a 127.0.0.1 port but not listening: connecting is refused,
    and nothing else can take the port while the socket is open."""
    s = socket.socket()
    s.bind((HOST, 0))
    return s


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under root with its bytes (None for directories)."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


# ---------------------------------------------------------------------------
# running probe
# ---------------------------------------------------------------------------


def probe(url: str, *args: str) -> subprocess.CompletedProcess:
    return run([FERROFTP_BIN, "probe", url, "--timeout", PROBE_TIMEOUT, *args])


def probe_json(url: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    cp = probe(url, "--json", *args)
    try:
        report = json.loads(cp.stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        pytest.fail(describe(cp, f"probe --json did not print one JSON object: {e}"))
    assert isinstance(report, dict), describe(cp, "JSON is not an object")
    for key in ("target", "server", "greeting", "login", "fatal", "modes", "transcript"):
        assert key in report, describe(cp, f"JSON report lacks {key!r}")
    return cp, report


def modes_by_name(cp, report) -> dict[str, dict]:
    out = {}
    for m in report["modes"]:
        assert m["mode"] not in out, describe(cp, f"mode {m['mode']} reported twice")
        out[m["mode"]] = m
    return out


def text(cp) -> str:
    return cp.stdout.decode("utf-8", "replace")


PASV_RE = re.compile(r"^227 .*\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)")
EPSV_RE = re.compile(r"^229 .*\(\|\|\|(\d+)\|\)")


def check_mode_details(cp, m: dict) -> None:
    """setup_reply, arithmetic, data_peer and transcript agree with each other,
    recomputed here from the raw reply/command."""
    ctx = describe(cp, f"mode {m['mode']}: {json.dumps({k: v for k, v in m.items() if k != 'transcript'}, ensure_ascii=False)}")
    reply, arith, peer, tr = m["setup_reply"], m["arithmetic"], m["data_peer"], m["transcript"]
    assert reply and arith and peer, ctx
    assert f"< {reply}" in tr, f"setup_reply not in the transcript\n{ctx}"
    if m["mode"] == "PASV":
        g = PASV_RE.match(reply)
        assert g, f"setup_reply is not a 227 with (h1,h2,h3,h4,p1,p2)\n{ctx}"
        h = ".".join(g.groups()[:4])
        p1, p2 = int(g.group(5)), int(g.group(6))
        port = p1 * 256 + p2
        assert h == HOST, ctx
        tuple_text = "(" + ",".join(g.groups()) + ")"
        assert arith == f"{tuple_text} -> {h} port {port} = {p1}*256+{p2}", ctx
        assert peer == f"{h}:{port}", ctx
    elif m["mode"] == "EPSV":
        g = EPSV_RE.match(reply)
        assert g, f"setup_reply is not a 229 (|||port|)\n{ctx}"
        port = int(g.group(1))
        assert str(port) in arith and HOST in arith, ctx
        assert peer == f"{HOST}:{port}", ctx
    elif m["mode"] == "PORT":
        assert reply.startswith("200"), ctx
        sent = [l for l in tr if l.startswith("> PORT ")]
        assert sent, ctx
        nums = [int(x) for x in sent[0][len("> PORT "):].split(",")]
        assert len(nums) == 6 and nums[:4] == [127, 0, 0, 1], ctx
        port = nums[4] * 256 + nums[5]
        assert f"{HOST}:{port}" in arith, ctx
        assert f"PORT {','.join(map(str, nums))}" in arith, ctx
        assert f"{port} = {nums[4]}*256+{nums[5]}" in arith, ctx
        assert peer.startswith(f"{HOST}:"), ctx  # where the server connected from
    elif m["mode"] == "EPRT":
        assert reply.startswith("200"), ctx
        sent = [l for l in tr if l.startswith("> EPRT ")]
        assert sent, ctx
        g = re.fullmatch(r"> EPRT \|1\|127\.0\.0\.1\|(\d+)\|", sent[0])
        assert g, ctx
        assert f"{HOST}:{g.group(1)}" in arith and sent[0][2:] in arith, ctx
        assert peer.startswith(f"{HOST}:"), ctx
    else:
        pytest.fail(f"unknown mode {m['mode']}\n{ctx}")
    assert m["open_ms"] is not None and m["open_ms"] >= 0, ctx


def raw_list(port: int, path: str = "/", user: str = "anonymous", password: str = "x@") -> bytes:
    """The LIST bytes exactly as the server sends them (ftplib, passive)."""
    ftp = ftplib.FTP(timeout=30, encoding="utf-8")
    try:
        ftp.connect(HOST, port)
        ftp.login(user, password)
        buf = io.BytesIO()
        ftp.retrbinary(f"LIST {path}", buf.write)
        return buf.getvalue()
    finally:
        try:
            ftp.quit()
        except Exception:
            ftp.close()


def check_working_modes(cp, report, list_bytes: int, *, expect_retr: str, retr_size: int,
                        modes=ALL_MODES, write: bool = False) -> None:
    assert cp.returncode == 0, describe(cp, "probe should exit 0")
    assert report["fatal"] is None, describe(cp)
    by = modes_by_name(cp, report)
    assert list(by) == list(modes), describe(cp, f"modes reported {list(by)}, expected {modes}")
    for name, m in by.items():
        ctx = describe(cp, f"mode {name}")
        assert m["works"] is True, ctx
        assert m["failure"] is None, ctx
        check_mode_details(cp, m)
        assert m["list_bytes"] == list_bytes, f"list_bytes {m['list_bytes']} != {list_bytes} (LIST via ftplib)\n{ctx}"
        assert m["retr_path"] == expect_retr, ctx
        tr = m["transcript"]
        assert f"> RETR {expect_retr}" in tr, ctx
        if write:
            assert m["write_ok"] is True, ctx
            assert m["bytes"] > list_bytes + retr_size, ctx
            stor = [l for l in tr if l.startswith("> STOR ")]
            assert len(stor) == 1, ctx
            stored = stor[0][len("> STOR "):]
            i = tr.index(stor[0])
            assert any(l.startswith("< 226") for l in tr[i:]), f"no 226 after STOR\n{ctx}"
            assert f"> DELE {stored}" in tr, ctx
            assert any(l.startswith("< 250") for l in tr[tr.index(f"> DELE {stored}"):]), ctx
        else:
            assert m["write_ok"] is None, ctx
            assert m["bytes"] == list_bytes + retr_size, (
                f"bytes {m['bytes']} != list {list_bytes} + file {retr_size}\n{ctx}"
            )
            assert not any(l.startswith(("> STOR", "> DELE")) for l in tr), ctx
        assert m["rate"] is not None and m["rate"] > 0, ctx


# ---------------------------------------------------------------------------
# pyftpdlib
# ---------------------------------------------------------------------------


def test_pyftpdlib_all_modes_work(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    before = snapshot(root)
    srv = pyftpd_factory(root)
    listing = raw_list(srv.port)
    assert CJK_NAME.encode() in listing and TEXT_NAME.encode() in listing

    cp, report = probe_json(srv.url("/"))
    assert report["server"] == f"{HOST}:{srv.port}", describe(cp)
    assert report["target"] == f"ftp://anonymous@{HOST}:{srv.port}/", describe(cp)
    assert report["greeting"] == "220 pyftpdlib test server ready.", describe(cp)
    assert report["login"].startswith("230"), describe(cp)
    check_working_modes(cp, report, len(listing), expect_retr="/" + CJK_NAME, retr_size=len(CJK_BODY))
    assert snapshot(root) == before, "a read-only probe changed the server's files"


def test_pyftpdlib_write(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    before = snapshot(root)
    srv = pyftpd_factory(root)
    listing = raw_list(srv.port)
    cp, report = probe_json(srv.url("/", PY_USER, PY_PASSWORD), "--write")
    check_working_modes(cp, report, len(listing), expect_retr="/" + CJK_NAME,
                        retr_size=len(CJK_BODY), write=True)
    # The server really received and deleted one file per mode ...
    wait_for(lambda: srv.log_text().count("/ferroftp-probe-") >= 8, timeout=5)
    log = srv.log_text()
    stored = re.findall(r"STOR (.*/ferroftp-probe-\d+\.txt) completed=1 bytes=(\d+)", log)
    deleted = re.findall(r"DELE (.*/ferroftp-probe-\d+\.txt) 250", log)
    assert len(stored) == 4 and all(int(b) > 0 for _, b in stored), log[-4000:]
    assert sorted(p for p, _ in stored) == sorted(deleted), log[-4000:]
    # ... and nothing is left behind.
    assert snapshot(root) == before, f"probe --write left the root changed: {sorted(snapshot(root))}"
    assert PY_PASSWORD not in text(cp) and urllib.parse.quote(PY_PASSWORD, safe="") not in text(cp)


def test_pyftpdlib_url_names_a_file_in_a_subdirectory(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    srv = pyftpd_factory(root)
    listing = raw_list(srv.port, f"/{SUBDIR}")
    assert SUB_FILE.encode() in listing
    cp, report = probe_json(srv.url(f"/{SUBDIR}/{SUB_FILE}"), "--mode", "epsv", "--mode", "eprt")
    check_working_modes(cp, report, len(listing), expect_retr=f"/{SUBDIR}/{SUB_FILE}",
                        retr_size=len(SUB_BODY), modes=["EPSV", "EPRT"])
    for m in report["modes"]:
        assert f"> LIST /{SUBDIR}" in m["transcript"], describe(cp)


def test_pyftpdlib_wrong_pasv_address_is_nat(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    srv = pyftpd_factory(root, masquerade_address=WRONG_HOST)
    cp, report = probe_json(srv.url("/"))
    assert cp.returncode == 0, describe(cp, "EPSV, PORT and EPRT work: exit 0")
    by = modes_by_name(cp, report)
    pasv = by["PASV"]
    assert pasv["works"] is False, describe(cp)
    assert pasv["setup_reply"] and PASV_RE.match(pasv["setup_reply"]), describe(cp)
    g = PASV_RE.match(pasv["setup_reply"])
    assert ".".join(g.groups()[:4]) == WRONG_HOST, describe(cp)
    port = int(g.group(5)) * 256 + int(g.group(6))
    assert pasv["arithmetic"].endswith(f"-> {WRONG_HOST} port {port} = {g.group(5)}*256+{g.group(6)}"), describe(cp)
    f = pasv["failure"]
    assert f is not None and f["cause"] == "nat_address", describe(cp)
    assert WRONG_HOST in f["detail"] and f"{WRONG_HOST}:{port}" in f["detail"], describe(cp)
    assert f"the control address {HOST}:{port} works instead" in f["detail"], describe(cp)
    assert f["fix"], describe(cp)
    for name in ("EPSV", "PORT", "EPRT"):
        assert by[name]["works"] is True and by[name]["failure"] is None, describe(cp, name)
        check_mode_details(cp, by[name])

    # The same in text: the failure, its fix, the count.
    cp = probe(srv.url("/"))
    out = text(cp)
    assert cp.returncode == 0, describe(cp)
    lines = out.splitlines()
    fails = [i for i, l in enumerate(lines) if l.startswith("PASV fails: ")]
    assert len(fails) == 1, describe(cp, "expected one 'PASV fails:' line")
    assert "works instead" in lines[fails[0]] and WRONG_HOST in lines[fails[0]], describe(cp)
    assert lines[fails[0] + 1].startswith("  fix: "), describe(cp)
    assert not any(l.startswith(("EPSV fails", "PORT fails", "EPRT fails")) for l in lines), describe(cp)
    assert lines[-1] == "3 of 4 modes work.", describe(cp)


def test_pyftpdlib_cannot_connect_back(pyftpd_factory, tmp_path):
    """pyftpdlib accepts a PORT/EPRT naming 127.0.0.9, tries to connect there,
    fails, and answers 425: the server could not connect back."""
    root = populate(tmp_path / "py root")
    srv = pyftpd_factory(root, permit_foreign_addresses=True)
    cp, report = probe_json(srv.url("/"), "--active-address", WRONG_HOST, "--mode", "port", "--mode", "eprt")
    assert cp.returncode == 1, describe(cp, "no mode works: exit 1")
    by = modes_by_name(cp, report)
    assert list(by) == ["PORT", "EPRT"], describe(cp)
    # The server really tried to connect to 127.0.0.9, once per mode, and failed.
    tried = lambda: re.findall(r"PORT 127\.0\.0\.9:\d+ 425", srv.log_text())  # noqa: E731
    assert wait_for(lambda: len(tried()) == 2, timeout=5), srv.log_text()[-3000:]
    for name, m in by.items():
        sent = [l for l in m["transcript"] if l.startswith(f"> {name} ")]
        assert sent and WRONG_HOST.replace(".", "," if name == "PORT" else ".") in sent[0], describe(cp, name)
        assert m["works"] is False, describe(cp, name)
        f = m["failure"]
        assert f is not None, describe(cp, name)
        assert f["cause"] == "no_connect_back", describe(cp, f"{name}: cause {f['cause']!r}, expected no_connect_back")
        assert WRONG_HOST in f["detail"], describe(cp, f"{name}: the detail should name {WRONG_HOST}")


def test_pyftpdlib_refuses_foreign_port(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    srv = pyftpd_factory(root)
    cp, report = probe_json(srv.url("/"), "--active-address", WRONG_HOST, "--mode", "port")
    assert cp.returncode == 1, describe(cp)
    (m,) = report["modes"]
    assert m["mode"] == "PORT" and m["works"] is False, describe(cp)
    assert m["failure"]["cause"] == "active_refused", describe(cp)
    assert "501" in m["failure"]["detail"], describe(cp)
    assert WRONG_HOST in m["failure"]["fix"] and HOST in m["failure"]["fix"], describe(cp)
    assert "> PORT 127,0,0,9," in "\n".join(m["transcript"]), describe(cp)


def test_pyftpdlib_passive_ports_that_do_not_accept(pyftpd_factory, tmp_path):
    """The passive ports are announced (from the configured range) but refuse
    connections; active modes still work."""
    root = populate(tmp_path / "py root")
    lo, hi = free_port_range(10)
    srv = pyftpd_factory(root, passive_ports=[lo, hi], deaf_passive=True)
    cp, report = probe_json(srv.url("/"))
    assert cp.returncode == 0, describe(cp)
    by = modes_by_name(cp, report)
    for name in ("PASV", "EPSV"):
        m = by[name]
        assert m["works"] is False, describe(cp, name)
        f = m["failure"]
        assert f is not None and f["cause"] == "passive_port_refused", describe(cp, name)
        if name == "PASV":
            g = PASV_RE.match(m["setup_reply"])
            assert g and ".".join(g.groups()[:4]) == HOST, describe(cp)
            port = int(g.group(5)) * 256 + int(g.group(6))
        else:
            g = EPSV_RE.match(m["setup_reply"])
            assert g, describe(cp)
            port = int(g.group(1))
        assert lo <= port <= hi, describe(cp, f"{name} port {port} not in {lo}-{hi}")
        assert f"{HOST}:{port}" in f["detail"], describe(cp, name)
        assert "passive port" in f["fix"] or "range" in f["fix"], describe(cp, name)
    for name in ("PORT", "EPRT"):
        assert by[name]["works"] is True, describe(cp, name)


def test_pyftpdlib_login_refused(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    srv = pyftpd_factory(root)
    cp, report = probe_json(srv.url("/", PY_USER, "not the password"))
    assert cp.returncode == 2, describe(cp)
    assert report["fatal"] is not None and report["fatal"]["cause"] == "login_refused", describe(cp)
    assert "530" in report["fatal"]["detail"], describe(cp)
    assert report["modes"] == [], describe(cp)
    assert "not the password" not in text(cp) and "not%20the%20password" not in text(cp), describe(cp)

    cp = probe(srv.url("/", PY_USER, "not the password"))
    assert cp.returncode == 2, describe(cp)
    assert "FAILED before any mode could be tried" in text(cp) and "  fix: " in text(cp), describe(cp)


def test_nothing_listening(tmp_path):
    with closed_port() as s:
        port = s.getsockname()[1]
        cp, report = probe_json(f"ftp://{HOST}:{port}/")
    assert cp.returncode == 2, describe(cp)
    f = report["fatal"]
    assert f is not None and f["cause"] == "connect_failed", describe(cp)
    assert f"{HOST}:{port}" in f["detail"], describe(cp)
    assert report["modes"] == [], describe(cp)


def test_pyftpdlib_too_many_connections_is_not_ready(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    srv = pyftpd_factory(root, max_cons_per_ip=1)
    held = ftplib.FTP(timeout=30)
    held.connect(HOST, srv.port)
    try:
        cp, report = probe_json(srv.url("/"))
    finally:
        held.close()
    assert cp.returncode == 2, describe(cp)
    f = report["fatal"]
    assert f is not None and f["cause"] == "not_ready", describe(cp)
    assert "421" in f["detail"], describe(cp)


def test_pyftpdlib_verbose_text(pyftpd_factory, tmp_path):
    root = populate(tmp_path / "py root")
    srv = pyftpd_factory(root)
    cp = probe(srv.url("/", PY_USER, PY_PASSWORD), "-v")
    out = text(cp)
    assert cp.returncode == 0, describe(cp)
    lines = [l.strip() for l in out.splitlines()]
    assert f"> USER {PY_USER}" in lines, describe(cp)
    assert any(l.startswith("< 230") for l in lines), describe(cp)
    assert any(l.startswith("> PASS ") for l in lines), describe(cp)
    assert PY_PASSWORD not in out and urllib.parse.quote(PY_PASSWORD, safe="") not in out, describe(cp, "password shown")
    # The seed's arithmetic for the 227 reply printed in the text.
    g = re.search(r"227 [^\n]*\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", out)
    assert g, describe(cp)
    p1, p2 = int(g.group(5)), int(g.group(6))
    assert f"port {p1 * 256 + p2} = {p1}*256+{p2}" in out, describe(cp)
    for mode in ALL_MODES:
        assert f"{mode:<5} session:" in lines, describe(cp, f"no '{mode} session:' heading")
        assert any(l.startswith(f"> {mode}") for l in lines), describe(cp, f"no '> {mode}' transcript line")
    assert f"> RETR /{CJK_NAME}" in lines, describe(cp)
    assert "fails:" not in out, describe(cp)
    assert out.rstrip("\n").splitlines()[-1] == "4 of 4 modes work.", describe(cp)


# ---------------------------------------------------------------------------
# ferroftp itself
# ---------------------------------------------------------------------------


def test_ferroftp_all_modes_work(server_factory, tmp_path):
    root = populate(tmp_path / "ferro root")
    before = snapshot(root)
    srv = server_factory(root=root)  # anonymous, read-only
    listing = raw_list(srv.port)
    cp, report = probe_json(f"{srv.url}/")
    assert report["greeting"].startswith("220"), describe(cp)
    check_working_modes(cp, report, len(listing), expect_retr="/" + CJK_NAME, retr_size=len(CJK_BODY))
    assert snapshot(root) == before

    # Read-only anonymous: --write fails in every mode (STOR refused), the
    # rest still works, so no mode "works" and the exit code is 1.
    cp, report = probe_json(f"{srv.url}/", "--write", "--mode", "epsv")
    assert cp.returncode == 1, describe(cp)
    (m,) = report["modes"]
    assert m["works"] is False and m["write_ok"] is False, describe(cp)
    assert m["failure"]["cause"] == "transfer_failed", describe(cp)
    assert snapshot(root) == before


def test_ferroftp_write_and_passive_range(server_factory, tmp_path):
    root = populate(tmp_path / "ferro root")
    before = snapshot(root)
    lo, hi = free_port_range(10)
    srv = server_factory("--anonymous-write", "--passive-ports", f"{lo}-{hi}", root=root)
    listing = raw_list(srv.port)
    cp, report = probe_json(f"{srv.url}/", "--write")
    check_working_modes(cp, report, len(listing), expect_retr="/" + CJK_NAME,
                        retr_size=len(CJK_BODY), write=True)
    for m in report["modes"][:2]:
        port = int(m["data_peer"].rsplit(":", 1)[1])
        assert lo <= port <= hi, describe(cp, f"{m['mode']} data port {port} not in {lo}-{hi}")
    assert snapshot(root) == before, f"probe --write left the root changed: {sorted(snapshot(root))}"


def test_ferroftp_wrong_public_address_and_foreign_port(server_factory, tmp_path):
    root = populate(tmp_path / "ferro root")
    srv = server_factory("--public-address", WRONG_HOST, root=root)
    cp, report = probe_json(f"{srv.url}/", "--mode", "pasv", "--mode", "epsv")
    assert cp.returncode == 0, describe(cp)
    pasv, epsv = report["modes"]
    assert pasv["works"] is False and pasv["failure"]["cause"] == "nat_address", describe(cp)
    assert "works instead" in pasv["failure"]["detail"], describe(cp)
    assert epsv["works"] is True, describe(cp)

    cp, report = probe_json(f"{srv.url}/", "--mode", "port", "--mode", "eprt", "--active-address", WRONG_HOST)
    assert cp.returncode == 1, describe(cp)
    for m in report["modes"]:
        assert m["works"] is False and m["failure"]["cause"] == "active_refused", describe(cp, m["mode"])
