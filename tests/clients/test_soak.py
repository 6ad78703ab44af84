"""Soak and crash tests with Python ftplib against ferroftp.

The soak runs about 50 concurrent sessions against one server for a bounded
time (an operation count and a deadline, whichever comes first), each
storing, reading back, listing, sizing, renaming and deleting files in a
directory of its own, over PASV, EPSV and PORT mixed. It shows that under
sustained concurrent load every reply is the expected one, every byte read
back is the byte written, and the disk ends up holding exactly the files
the clients believe exist, byte for byte, with no temporary upload files
(`.ferroftp-upload-*`) left behind.

The crash test kills the server with SIGKILL while replacing uploads are in
flight. It shows what atomic_uploads promises: every target holds exactly
its old content or exactly its new complete content, never a mix or a
truncation; and that a restarted server removes the orphaned temporary
files the killed one left, and refuses their names (550).

Every address used here is 127.0.0.1. Nothing asserts on speed; waits are
on observable things (files on disk, replies), each with a bound. The soak
prints its seed; SOAK_SEED=N replays its sequence of operations and sizes.
"""

from __future__ import annotations

import collections
import dataclasses
import ftplib
import functools
import hashlib
import os
import random
import socket
import threading
import time
import traceback
from pathlib import Path

from conftest import (
    HOST,
    nlst_names,
    parse_ls_lines,
    sha256_bytes,
    sha256_file,
    wait_for,
)

TIMEOUT = 30  # seconds, for every socket operation
TEMP_PREFIX = ".ferroftp-upload-"  # what atomic uploads are written as (storage/local/temp.rs)
DATA_MODES = ("PASV", "EPSV", "PORT")
KiB, MiB = 1024, 1024 * 1024


# ---------------------------------------------------------------------------
# ftplib with the data-connection command chosen per transfer
# ---------------------------------------------------------------------------


class ModeFTP(ftplib.FTP):
    """ftplib with the data connection opened by PASV, EPSV or PORT, as set
    by `use()` before each transfer (ftplib itself sends EPSV only over
    IPv6), and with PORT's listener bound to 127.0.0.1 only (ftplib binds
    every address)."""

    data_mode = "PASV"

    def use(self, mode: str) -> None:
        assert mode in DATA_MODES, mode
        self.data_mode = mode
        self.passiveserver = mode != "PORT"

    def makepasv(self):
        if self.data_mode == "EPSV":
            resp = self.sendcmd("EPSV")
            if not resp.startswith("229"):
                raise SoakError(f"EPSV: expected 229, got {resp!r}")
            _, port = ftplib.parse229(resp, self.sock.getpeername())
        else:
            resp = self.sendcmd("PASV")
            if not resp.startswith("227"):
                raise SoakError(f"PASV: expected 227, got {resp!r}")
            host, port = ftplib.parse227(resp)
            if host != HOST:
                raise SoakError(f"PASV announced {host}, expected {HOST}: {resp!r}")
        return HOST, port

    def makeport(self):
        sock = socket.create_server((HOST, 0), backlog=1)
        try:
            resp = self.sendport(HOST, sock.getsockname()[1])
            if not resp.startswith("200"):
                raise SoakError(f"PORT: expected 200, got {resp!r}")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(TIMEOUT)
        return sock


class SoakError(Exception):
    """An unexpected reply or a content mismatch."""


def connect(port: int, password: str = "soak@example.com") -> ModeFTP:
    ftp = ModeFTP(timeout=TIMEOUT, encoding="utf-8")
    expect(ftp.connect(HOST, port), "220", "greeting")
    expect(ftp.login("anonymous", password), "230", "USER anonymous / PASS")
    expect(command(ftp, "TYPE I"), "200", "TYPE I")
    return ftp


def command(ftp: ftplib.FTP, cmd: str) -> str:
    """Sends `cmd` and returns the reply whatever its code (ftplib raises
    on 4xx and 5xx; the reply is the exception's text)."""
    try:
        return ftp.sendcmd(cmd)
    except (ftplib.error_temp, ftplib.error_perm) as e:
        return str(e)


def expect(resp: str, code: str, what: str) -> str:
    if resp[:3] != code:
        raise SoakError(f"{what}: expected {code}, got {resp!r}")
    return resp


def stor(ftp: ModeFTP, name: str, data: bytes) -> str:
    """STOR `data` as `name`; the reply after the data (226 expected)."""
    conn = ftp.transfercmd(f"STOR {name}")  # raises unless 1xx
    try:
        conn.sendall(data)
    finally:
        conn.close()
    return ftp.voidresp()


def retrlines(ftp: ModeFTP, cmd: str) -> tuple[list[str], str]:
    """LIST/NLST: (the lines, the final reply). ftplib switches to TYPE A
    for it; TYPE I is restored after, so later STORs stay binary."""
    lines: list[str] = []
    resp = ftp.retrlines(cmd, lines.append)
    expect(command(ftp, "TYPE I"), "200", f"TYPE I after {cmd}")
    return lines, resp


def retr_digest(ftp: ModeFTP, name: str) -> tuple[int, str, str]:
    """RETR `name`: (bytes received, their sha256, final reply)."""
    h = hashlib.sha256()
    count = [0]

    def got(chunk: bytes) -> None:
        h.update(chunk)
        count[0] += len(chunk)

    resp = ftp.retrbinary(f"RETR {name}", got, blocksize=256 * KiB)
    return count[0], h.hexdigest(), resp


def temp_files(root: Path) -> list[Path]:
    """Every `.ferroftp-upload-*` file under `root`."""
    return sorted(p for p in root.rglob(TEMP_PREFIX + "*") if p.is_file())


def files_on_disk(root: Path) -> dict[str, Path]:
    """Every regular file under `root`, by path relative to it."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for f in filenames:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = p
    return out


# ---------------------------------------------------------------------------
# soak
# ---------------------------------------------------------------------------

SOAK_SESSIONS = 50  # = the default max_clients_per_ip: all from 127.0.0.1
SOAK_SECONDS = 20.0  # wall time of the load, after every session is ready
SOAK_MAX_OPS_PER_SESSION = 1000  # the other bound: whichever comes first
SOAK_MAX_FILES = 6  # files a session keeps at once
SOAK_SMALL_MAX = 300 * KiB
SOAK_LARGE = (2 * MiB - 4 * KiB, 2 * MiB + 64 * KiB)  # about 2 MiB
SOAK_LARGE_SHARE = 0.05
SOAK_NAME_SUFFIXES = (".bin", " with spaces.bin", " 数据 ü.bin")


@dataclasses.dataclass
class SoakSession:
    """One client: its directory, the files it believes it has (name ->
    (size, sha256)) and what it did."""

    index: int
    seed: int
    dirname: str = ""
    files: dict = dataclasses.field(default_factory=dict)
    ops: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    modes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    done: int = 0
    negative_checks: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    bytes_compared: int = 0
    errors: list = dataclasses.field(default_factory=list)
    recent: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=8))
    ready: bool = False
    next_name: int = 0

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.dirname = f"session {self.index:02d} 目录"

    # -- helpers --

    def mode(self, ftp: ModeFTP) -> str:
        m = self.rng.choice(DATA_MODES)
        ftp.use(m)
        self.modes[m] += 1
        return m

    def fresh_name(self) -> str:
        self.next_name += 1
        return f"s{self.index:02d}-{self.next_name:04d}{self.rng.choice(SOAK_NAME_SUFFIXES)}"

    def pick(self) -> str:
        return self.rng.choice(sorted(self.files))

    def choose_op(self) -> str:
        n = len(self.files)
        if n < 2:
            return "stor_new"
        weights = {
            "stor_new": 20 if n < SOAK_MAX_FILES else 0,
            "stor_replace": 10,
            "retr": 20,
            "size": 10,
            "list": 8,
            "nlst": 8,
            "rename": 10,
            "dele": 10 if n > 3 else 2,
        }
        ops = [k for k, w in weights.items() if w]
        return self.rng.choices(ops, [weights[k] for k in ops])[0]

    def random_size(self) -> int:
        if self.rng.random() < SOAK_LARGE_SHARE:
            return self.rng.randint(*SOAK_LARGE)
        return self.rng.randint(0, SOAK_SMALL_MAX)

    # -- operations --

    def op_stor(self, ftp: ModeFTP, name: str) -> None:
        data = os.urandom(self.random_size())
        mode = self.mode(ftp)
        self.recent.append(f"STOR {name!r} ({len(data)} bytes, {mode})")
        expect(stor(ftp, name, data), "226", f"STOR {name!r} ({len(data)} bytes, {mode})")
        self.files[name] = (len(data), sha256_bytes(data))
        self.bytes_up += len(data)

    def op_stor_new(self, ftp):
        self.op_stor(ftp, self.fresh_name())

    def op_stor_replace(self, ftp):
        self.op_stor(ftp, self.pick())

    def op_retr(self, ftp):
        name = self.pick()
        size, digest = self.files[name]
        mode = self.mode(ftp)
        self.recent.append(f"RETR {name!r} ({mode})")
        n, got, resp = retr_digest(ftp, name)
        expect(resp, "226", f"RETR {name!r} ({mode})")
        self.bytes_down += n
        if (n, got) != (size, digest):
            raise SoakError(f"RETR {name!r} ({mode}): got {n} bytes sha256 {got}, stored {size} bytes sha256 {digest}")
        self.bytes_compared += n

    def op_size(self, ftp):
        name = self.pick()
        self.recent.append(f"SIZE {name!r}")
        resp = expect(command(ftp, f"SIZE {name}"), "213", f"SIZE {name!r}")
        if resp[4:].strip() != str(self.files[name][0]):
            raise SoakError(f"SIZE {name!r}: {resp!r}, stored {self.files[name][0]} bytes")

    def op_list(self, ftp):
        mode = self.mode(ftp)
        self.recent.append(f"LIST ({mode})")
        lines, resp = retrlines(ftp, "LIST")
        expect(resp, "226", f"LIST ({mode})")
        text = "\n".join(lines)
        entries = parse_ls_lines(text)
        unparsed = [l for l in lines if l.strip() and not l.startswith("total ")]
        if len(unparsed) != len(entries):
            raise SoakError(f"LIST ({mode}): lines that are not ls -l entries:\n{text}")
        listed = {e["name"]: e["size"] for e in entries}
        want = {name: size for name, (size, _) in self.files.items()}
        if listed != want or len(entries) != len(want) or any(e["type"] != "-" for e in entries):
            raise SoakError(f"LIST ({mode}) shows {listed}, expected {want}:\n{text}")

    def op_nlst(self, ftp):
        mode = self.mode(ftp)
        self.recent.append(f"NLST ({mode})")
        lines, resp = retrlines(ftp, "NLST")
        expect(resp, "226", f"NLST ({mode})")
        names = sorted(n.rstrip("/").rsplit("/", 1)[-1] for n in nlst_names("\n".join(lines)))
        if names != sorted(self.files):
            raise SoakError(f"NLST ({mode}) shows {names}, expected {sorted(self.files)}")

    def op_rename(self, ftp):
        old, new = self.pick(), self.fresh_name()
        self.recent.append(f"RNFR {old!r} / RNTO {new!r}")
        expect(command(ftp, f"RNFR {old}"), "350", f"RNFR {old!r}")
        expect(command(ftp, f"RNTO {new}"), "250", f"RNTO {new!r} (from {old!r})")
        self.files[new] = self.files.pop(old)
        expect(command(ftp, f"SIZE {old}"), "550", f"SIZE {old!r} after renaming it to {new!r}")
        self.negative_checks += 1

    def op_dele(self, ftp):
        name = self.pick()
        self.recent.append(f"DELE {name!r}")
        expect(command(ftp, f"DELE {name}"), "250", f"DELE {name!r}")
        del self.files[name]
        expect(command(ftp, f"SIZE {name}"), "550", f"SIZE {name!r} after DELE")
        self.negative_checks += 1

    # -- the session --

    def run(self, port: int, go: threading.Event, clock: dict) -> None:
        ftp = None
        op = "connect"
        try:
            ftp = connect(port, f"soak{self.index}@example.com")
            op = "MKD"
            expect(command(ftp, f"MKD {self.dirname}"), "257", f"MKD {self.dirname!r}")
            expect(command(ftp, f"CWD {self.dirname}"), "250", f"CWD {self.dirname!r}")
            self.ready = True
            if not go.wait(60):
                raise SoakError("the soak never started")
            deadline = clock["deadline"]
            while self.done < SOAK_MAX_OPS_PER_SESSION and time.monotonic() < deadline:
                op = self.choose_op()
                getattr(self, "op_" + op)(ftp)
                self.ops[op] += 1
                self.done += 1
            op = "QUIT"
            expect(ftp.quit(), "221", "QUIT")
        except Exception as e:  # noqa: BLE001
            self.errors.append(
                f"session {self.index} (seed {self.seed}) during {op} after {self.done} operations, "
                f"recent {list(self.recent)}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
            )
        finally:
            if ftp is not None:
                ftp.close()


def test_soak_concurrent_sessions_account_for_every_byte(server_factory):
    """About 50 sessions at once for about 20 s, each in its own directory,
    looping over STOR (new names and replacing, 0-300 KiB and some ~2 MiB),
    RETR compared by SHA-256, SIZE, LIST, NLST, RNFR/RNTO and DELE over
    PASV, EPSV and PORT mixed: no reply other than the expected one, every
    byte read back equal to what was stored, and at the end the server root
    holds exactly the files the sessions believe exist, with the same
    bytes, and no temporary upload file."""
    srv = server_factory("--anonymous-write")
    base_seed = int(os.environ.get("SOAK_SEED", random.randrange(1 << 30)))
    sessions = [SoakSession(i, base_seed + i) for i in range(SOAK_SESSIONS)]
    go, clock = threading.Event(), {}
    threads = [
        threading.Thread(target=s.run, args=(srv.port, go, clock), name=f"soak-{s.index}", daemon=True)
        for s in sessions
    ]
    for t in threads:
        t.start()
    # Every session logged in and in its directory (or failed), then go.
    wait_for(lambda: all(s.ready or s.errors for s in sessions), timeout=60)
    started = time.monotonic()
    clock["deadline"] = started + SOAK_SECONDS
    go.set()
    for t in threads:
        t.join(max(0.1, clock["deadline"] + 3 * TIMEOUT - time.monotonic()))
    elapsed = time.monotonic() - started
    hung = [t.name for t in threads if t.is_alive()]

    ops = sum((s.ops for s in sessions), collections.Counter())
    modes = sum((s.modes for s in sessions), collections.Counter())
    errors = [e for s in sessions for e in s.errors]
    expected = {f"{s.dirname}/{name}": v for s in sessions for name, v in s.files.items()}
    bytes_down = sum(s.bytes_down for s in sessions)
    bytes_compared = sum(s.bytes_compared for s in sessions)
    summary = (
        f"soak (seed {base_seed}): {len(sessions)} sessions, {sum(s.done for s in sessions)} operations "
        f"in {elapsed:.1f} s {dict(sorted(ops.items()))}, data connections {dict(sorted(modes.items()))}, "
        f"{sum(s.negative_checks for s in sessions)} 550 checks, "
        f"{sum(s.bytes_up for s in sessions)} bytes stored, {bytes_down} bytes retrieved and "
        f"{bytes_compared} compared, {len(expected)} files expected on disk"
    )
    print(summary)

    assert not hung, f"sessions still running after the deadline: {hung}\n{summary}"
    assert not errors, f"{len(errors)} session(s) failed; first ones:\n" + "\n".join(errors[:10]) + f"\n{summary}"
    assert srv.proc.poll() is None, f"the server exited ({srv.proc.returncode})\n{summary}"
    assert not [l for l in srv.log if "panick" in l], f"the server panicked:\n{srv.dump_log()}\n{summary}"
    assert bytes_compared == bytes_down, f"bytes retrieved but not compared\n{summary}"
    assert set(modes) == set(DATA_MODES), f"not every data mode was used\n{summary}"
    missing_ops = {"stor_new", "stor_replace", "retr", "size", "list", "nlst", "rename", "dele"} - set(ops)
    assert not missing_ops, f"operations never run: {missing_ops}\n{summary}"

    # Every file accounted for: the disk holds exactly what the sessions
    # believe, byte for byte, and nothing else.
    on_disk = files_on_disk(srv.root)
    temps = sorted(p for p in on_disk if p.rsplit("/", 1)[-1].startswith(TEMP_PREFIX))
    assert not temps, f"temporary upload files left on disk: {temps}\n{summary}"
    unexpected = sorted(set(on_disk) - set(expected))
    missing = sorted(set(expected) - set(on_disk))
    assert not unexpected and not missing, (
        f"disk and sessions disagree: on disk but not expected {unexpected}, expected but missing {missing}\n{summary}"
    )
    dirs = sorted(p.name for p in srv.root.iterdir())
    assert dirs == sorted(s.dirname for s in sessions), f"directories under the root: {dirs}\n{summary}"
    wrong = []
    for rel, (size, digest) in sorted(expected.items()):
        p = on_disk[rel]
        actual = (p.stat().st_size, sha256_file(p))
        if actual != (size, digest):
            wrong.append(f"{rel}: {actual[0]} bytes sha256 {actual[1]}, expected {size} bytes sha256 {digest}")
    assert not wrong, "files on disk differ from what was stored:\n" + "\n".join(wrong) + f"\n{summary}"
    print(f"{summary}; all {len(expected)} files on disk match ({sum(v[0] for v in expected.values())} bytes)")


# ---------------------------------------------------------------------------
# kill -9 during replacing uploads
# ---------------------------------------------------------------------------

CRASH_DIRS = ("crash 0", "crash 1 目录", "crash 2", "crash 3 ü")
CRASH_FILES_PER_DIR = 5
CRASH_PIECE = 1 * MiB  # what each upload sends before it is held
CRASH_OLD = (256 * KiB, 3 * MiB)
CRASH_NEW = (4 * MiB, 8 * MiB)
ORPHAN_WAIT = 10.0  # seconds the restarted server has to remove orphans


@dataclasses.dataclass
class CrashUpload:
    """One replacing upload. group: "hold" stops after CRASH_PIECE until
    the kill; "complete" finishes (226) before the kill; "race" sends the
    rest and closes its data connection just before the kill."""

    index: int
    rel: str  # dir/name, relative to the root
    group: str
    mode: str
    old: tuple  # (size, sha256)
    new: bytes
    first_sent: threading.Event = dataclasses.field(default_factory=threading.Event)
    rest_sent: threading.Event = dataclasses.field(default_factory=threading.Event)
    final_reply: str = ""
    after_kill: str = ""
    error: str = ""

    @functools.cached_property
    def new_digest(self) -> tuple:
        return (len(self.new), sha256_bytes(self.new))

    def run(self, port: int, proceed: threading.Event, killed: threading.Event) -> None:
        ftp = conn = None
        try:
            ftp = connect(port, f"crash{self.index}@example.com")
            ftp.use(self.mode)
            conn = ftp.transfercmd(f"STOR {self.rel}")  # raises unless 1xx
            conn.sendall(self.new[:CRASH_PIECE])
            self.first_sent.set()
            if self.group == "hold":
                killed.wait(120)
                return
            if not proceed.wait(60):
                raise SoakError("never told to finish")
            conn.sendall(self.new[CRASH_PIECE:])
            conn.close()
            conn = None
            self.rest_sent.set()
            if self.group == "complete":
                self.final_reply = ftp.voidresp()
                return
            killed.wait(120)
            try:
                self.after_kill = ftp.getresp()
            except Exception as e:  # noqa: BLE001 -- the server is gone: any error is fine
                self.after_kill = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001
            if killed.is_set():
                self.after_kill = f"{type(e).__name__}: {e}"
            else:
                self.error = f"upload {self.index} {self.rel!r} ({self.group}, {self.mode}): {type(e).__name__}: {e}"
        finally:
            for s in (conn, ftp):
                try:
                    if s is not None:
                        s.close()
                except OSError:
                    pass


def test_kill_9_during_replacing_uploads_keeps_old_or_new_and_restart_clears_temps(server_factory):
    """kill -9 while 20 replacing uploads (4-8 MiB, PASV, EPSV and PORT)
    are in flight, their temporary files visibly holding data on disk: 4 had
    finished (226), 4 had just sent their last byte, 12 were held halfway.
    Each target then holds exactly its old or exactly its new content (new
    for the finished, old for the held, either for the racing), never a mix
    or a truncation, and every upload that did not land left its temporary
    file. A server restarted on the same root serves every file whole,
    lists only the targets, removes the orphaned `.ferroftp-upload-*` files
    once it is up and each directory has been listed, and answers 550 to
    SIZE, RETR and DELE of an orphan's exact name."""
    rng = random.Random(os.environ.get("SOAK_SEED", "kill-9"))
    srv = server_factory("--anonymous-write")
    root = srv.root
    uploads: list[CrashUpload] = []
    for d in CRASH_DIRS:
        (root / d).mkdir()
        for k in range(CRASH_FILES_PER_DIR):
            i = len(uploads)
            old = os.urandom(rng.randint(*CRASH_OLD))
            rel = f"{d}/target {k}.dat"
            (root / rel).write_bytes(old)
            group = {0: "complete", 1: "race"}.get(i % 5, "hold")
            uploads.append(
                CrashUpload(
                    i, rel, group, DATA_MODES[i % 3], (len(old), sha256_bytes(old)),
                    os.urandom(rng.randint(*CRASH_NEW) + rng.randint(1, 4095)),
                )
            )
    by_group = {g: [u for u in uploads if u.group == g] for g in ("hold", "complete", "race")}
    proceed = {g: threading.Event() for g in ("complete", "race")}
    killed = threading.Event()
    threads = [
        threading.Thread(
            target=u.run, args=(srv.port, proceed.get(u.group, killed), killed), name=f"upload-{u.index}", daemon=True
        )
        for u in uploads
    ]
    for t in threads:
        t.start()

    def errors() -> list[str]:
        return [u.error for u in uploads if u.error]

    try:
        # In flight: every upload has sent its first piece and the server has
        # written some of each to a temporary file beside its target.
        assert wait_for(lambda: all(u.first_sent.is_set() for u in uploads) or bool(errors()), timeout=60), (
            "uploads did not start"
        )
        assert not errors(), "\n".join(errors())

        def receiving() -> bool:
            return len([p for p in temp_files(root) if p.stat().st_size > 0]) == len(uploads)
        assert wait_for(receiving, timeout=30), (
            f"expected {len(uploads)} temporary files with data, found "
            f"{[(str(p.relative_to(root)), p.stat().st_size) for p in temp_files(root)]}"
        )
        # 4 finish (226 before the kill) ...
        proceed["complete"].set()
        for u, t in zip(uploads, threads):
            if u.group == "complete":
                t.join(2 * TIMEOUT)
        assert not errors(), "\n".join(errors())
        for u in by_group["complete"]:
            assert u.final_reply.startswith("226"), f"{u.rel}: reply after the whole upload: {u.final_reply!r}"
        # ... 4 send their last byte and close, racing the kill ...
        proceed["race"].set()
        assert wait_for(lambda: all(u.rest_sent.is_set() for u in by_group["race"]) or bool(errors()), timeout=60)
        assert not errors(), "\n".join(errors())
        # ... and 12 are still held halfway.
        srv.proc.kill()  # SIGKILL
        srv.proc.wait(10)
    finally:
        killed.set()
        for t in threads:
            t.join(2 * TIMEOUT)
    assert not errors(), "\n".join(errors())

    # After the kill: every target is old or new, whole.
    outcome = {}
    bad = []
    for u in uploads:
        p = root / u.rel
        actual = (p.stat().st_size, sha256_file(p))
        if actual == u.old:
            outcome[u.rel] = "old"
        elif actual == u.new_digest:
            outcome[u.rel] = "new"
        else:
            bad.append(f"{u.rel} ({u.group}): {actual[0]} bytes, neither the old {u.old[0]} nor the new {len(u.new)}")
            continue
        want = {"hold": ("old",), "complete": ("new",), "race": ("old", "new")}[u.group]
        if outcome[u.rel] not in want:
            bad.append(f"{u.rel} ({u.group}): holds the {outcome[u.rel]} content")
    assert not bad, "after kill -9:\n" + "\n".join(bad)
    # Every upload that did not land left its temporary file, holding a
    # prefix of what that upload sent.
    temps = temp_files(root)
    landed = sum(1 for v in outcome.values() if v == "new")
    assert len(temps) == len(uploads) - landed, (
        f"{len(temps)} temporary files after kill -9, expected {len(uploads) - landed} "
        f"(uploads that did not land): {[str(p.relative_to(root)) for p in temps]}"
    )
    for p in temps:
        data = p.read_bytes()
        owners = [
            u for u in uploads
            if outcome[u.rel] == "old" and (root / u.rel).parent == p.parent and u.new[: len(data)] == data
        ]
        assert data and owners, f"{p.relative_to(root)} ({len(data)} bytes) is not part of an unlanded upload"
    orphan = temps[0].relative_to(root).as_posix()
    print(
        f"kill -9: {len(uploads)} uploads ({ {g: len(v) for g, v in by_group.items()} }), "
        f"{landed} landed, {len(temps)} temporary files left: {[str(p.relative_to(root)) for p in temps]}; "
        f"racing uploads: {[(u.rel, outcome[u.rel], u.after_kill) for u in by_group['race']]}"
    )

    # Restart on the same root.
    srv2 = server_factory("--anonymous-write", root=root)
    ftp = connect(srv2.port)
    try:
        for d in CRASH_DIRS:
            want = {u.rel.split("/", 1)[1]: (u.old if outcome[u.rel] == "old" else u.new_digest)[0]
                    for u in uploads if u.rel.startswith(d + "/")}
            lines, resp = retrlines(ftp, f"LIST {d}")
            expect(resp, "226", f"LIST {d!r}")
            listed = {e["name"]: e["size"] for e in parse_ls_lines("\n".join(lines))}
            assert listed == want, f"LIST {d!r} after restart shows {listed}, expected {want}:\n" + "\n".join(lines)
            lines, resp = retrlines(ftp, f"NLST {d}")
            expect(resp, "226", f"NLST {d!r}")
            names = sorted(n.rsplit("/", 1)[-1] for n in nlst_names("\n".join(lines)))
            assert names == sorted(want), f"NLST {d!r} after restart shows {names}, expected {sorted(want)}"
        for i, u in enumerate(uploads):
            ftp.use(DATA_MODES[i % 3])
            want = u.old if outcome[u.rel] == "old" else u.new_digest
            n, digest, resp = retr_digest(ftp, u.rel)
            expect(resp, "226", f"RETR {u.rel!r}")
            assert (n, digest) == want, f"RETR {u.rel!r} after restart: {n} bytes, expected the {outcome[u.rel]} {want[0]}"
            expect(command(ftp, f"SIZE {u.rel}"), "213", f"SIZE {u.rel!r}")

        # The orphans go once the server is up and each directory was listed.
        wait_for(lambda: not temp_files(root), timeout=ORPHAN_WAIT, interval=0.1)
        leftovers = [str(p.relative_to(root)) for p in temp_files(root)]
        # Their names are not files a client can reach.
        replies = {"SIZE": command(ftp, f"SIZE {orphan}")}
        ftp.use("PASV")
        try:
            n, _, resp = retr_digest(ftp, orphan)
            replies["RETR"] = f"{resp} ({n} bytes)"
        except (ftplib.error_perm, ftplib.error_temp) as e:
            replies["RETR"] = str(e)
        replies["DELE"] = command(ftp, f"DELE {orphan}")
        expect(ftp.quit(), "221", "QUIT")
    finally:
        ftp.close()
    assert not leftovers, (
        f"orphaned temporary upload files still on disk {ORPHAN_WAIT:.0f} s after the restart "
        f"(every directory listed): {leftovers}; replies to the orphan {orphan!r}: {replies}"
    )
    wrong = {cmd: r for cmd, r in replies.items() if not r.startswith("550")}
    assert not wrong, f"the orphan's name {orphan!r} is reachable after restart: {wrong}"
    # Nothing else changed on disk.
    for u in uploads:
        want = u.old if outcome[u.rel] == "old" else u.new_digest
        p = root / u.rel
        assert (p.stat().st_size, sha256_file(p)) == want, f"{u.rel} changed after the restart"
    assert sorted(files_on_disk(root)) == sorted(u.rel for u in uploads), sorted(files_on_disk(root))
