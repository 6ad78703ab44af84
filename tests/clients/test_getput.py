"""`ferroftp ls|get|put` round trips against ferroftp and pyftpdlib.

Every test runs against four logins (ferroftp anonymous with
--anonymous-write, a ferroftp virtual user, pyftpdlib anonymous, a pyftpdlib
user), most in passive (default, EPSV) and active (--active, EPRT) mode:

- a multi-megabyte file with a CJK name with spaces goes up and comes back
  (to -o FILE, to the current directory, to stdout), compared by sha256
  with the original and with the file on the server's disk;
- resumed uploads (put -c) and downloads (get -c), and a second resume
  over a prefix altered on purpose, which shows that only the tail moved;
- ls and ls -1 against the server's directory on disk;
- exit codes: 1 refused, 2 connection/URL, 3 local file.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from conftest import (
    FERROFTP_BIN,
    HOST,
    PLAIN_TXT,
    UNICODE_BIN,
    UNICODE_DIR,
    USER_NAME,
    USER_PASSWORD,
    assert_in_list_output,
    assert_same_file,
    describe,
    nlst_names,
    run,
    sha256_bytes,
    sha256_file,
)
from test_probe import PY_PASSWORD, PY_USER, closed_port, pyftpd_factory  # noqa: F401  (fixture)

TARGETS = ["ferroftp-anonymous", "ferroftp-user", "pyftpdlib-anonymous", "pyftpdlib-user"]
MODES = {"passive": [], "active": ["--active"]}


@dataclasses.dataclass
class Target:
    kind: str
    port: int
    root: Path  # the directory "/" of this login is on disk
    user: str | None = None
    password: str | None = None

    def url(self, path: str = "/", quote: bool = True) -> str:
        cred = ""
        if self.user is not None:
            cred = f"{urllib.parse.quote(self.user, safe='')}:{urllib.parse.quote(self.password or '', safe='')}@"
        p = urllib.parse.quote(path, safe="/") if quote else path
        return f"ftp://{cred}{HOST}:{self.port}{p}"


@pytest.fixture(params=TARGETS)
def target(request, tmp_path) -> Target:
    kind = request.param
    if kind == "ferroftp-anonymous":
        srv = request.getfixturevalue("anon_server")
        return Target(kind, srv.port, srv.root)
    if kind == "ferroftp-user":
        srv, home = request.getfixturevalue("user_server")
        return Target(kind, srv.port, home, USER_NAME, USER_PASSWORD)
    factory = request.getfixturevalue("pyftpd_factory")
    srv = factory(tmp_path / "pyftpd root 根")
    if kind == "pyftpdlib-anonymous":
        return Target(kind, srv.port, srv.root)
    return Target(kind, srv.port, srv.root, PY_USER, PY_PASSWORD)


@pytest.fixture(params=list(MODES))
def mode(request) -> list[str]:
    return MODES[request.param]


def ferroftp(*args, cwd=None):
    return run([FERROFTP_BIN, *args], cwd=cwd)


def ok(cp, what: str) -> None:
    assert cp.returncode == 0, describe(cp, f"{what} failed")


def write_prefix(path: Path, data: bytes, n: int, flip_first: bool = False) -> bytes:
    prefix = bytearray(data[:n])
    if flip_first:
        prefix[0] ^= 0xFF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(prefix))
    return bytes(prefix)


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


def test_put_get_roundtrip(target, mode, payload, workdir):
    big = payload.big
    # put into a directory URL: the remote name is the local one.
    ok(ferroftp("put", big, target.url("/"), *mode), "put")
    on_server = target.root / UNICODE_BIN
    assert_same_file(on_server, big, "uploaded file on the server's disk")

    # get to -o FILE
    back = workdir / "back 回来.bin"
    ok(ferroftp("get", target.url(f"/{UNICODE_BIN}"), "-o", back, *mode), "get -o")
    assert_same_file(back, big, "downloaded with -o")
    assert sha256_file(back) == sha256_file(on_server)

    # get with no -o: the file's name in the current directory; the URL
    # written as is (unencoded spaces and CJK).
    dl = workdir / "dl"
    dl.mkdir()
    ok(ferroftp("get", target.url(f"/{UNICODE_BIN}", quote=False), *mode, cwd=dl), "get into cwd")
    assert sorted(os.listdir(dl)) == [UNICODE_BIN]
    assert_same_file(dl / UNICODE_BIN, big, "downloaded into the cwd")

    # get -o - : stdout
    cp = ferroftp("get", target.url(f"/{UNICODE_BIN}"), "-o", "-", *mode)
    ok(cp, "get -o -")
    assert len(cp.stdout) == big.stat().st_size and sha256_bytes(cp.stdout) == sha256_file(big)

    # get over an existing, longer, different local file: replaced, not merged.
    junk = workdir / "junk.bin"
    junk.write_bytes(b"\xee" * (big.stat().st_size + 1000))
    ok(ferroftp("get", target.url(f"/{UNICODE_BIN}"), "-o", junk, *mode), "get over an existing file")
    assert_same_file(junk, big, "get over a longer existing file")

    # put to an explicit remote name in a subdirectory.
    (target.root / UNICODE_DIR).mkdir()
    remote = f"/{UNICODE_DIR}/另 一个 name.txt"
    ok(ferroftp("put", payload.text, target.url(remote), *mode), "put to an explicit name")
    assert sorted(os.listdir(target.root / UNICODE_DIR)) == ["另 一个 name.txt"]
    assert_same_file(target.root / UNICODE_DIR / "另 一个 name.txt", payload.text, "put to an explicit name")
    cp = ferroftp("get", target.url(remote), "-o", "-", *mode)
    ok(cp, "get from a subdirectory")
    assert cp.stdout == payload.text.read_bytes()


@pytest.mark.parametrize("data_mode", ["pasv", "epsv", "port", "eprt"])
def test_every_data_mode(data_mode, anon_server, pyftpd_factory, tmp_path, payload, workdir):
    """--mode M works for each of the four modes, on both servers."""
    py = pyftpd_factory(tmp_path / "py")
    for name, port, root in (("ferroftp", anon_server.port, anon_server.root), ("pyftpdlib", py.port, py.root)):
        t = Target(name, port, root)
        ok(ferroftp("put", payload.text, t.url("/"), "--mode", data_mode), f"{name} put --mode {data_mode}")
        assert_same_file(root / PLAIN_TXT, payload.text, f"{name} --mode {data_mode}")
        cp = ferroftp("get", t.url(f"/{PLAIN_TXT}"), "-o", "-", "--mode", data_mode)
        ok(cp, f"{name} get --mode {data_mode}")
        assert cp.stdout == payload.text.read_bytes()
        cp = ferroftp("ls", "-1", t.url("/"), "--mode", data_mode)
        ok(cp, f"{name} ls --mode {data_mode}")
        assert nlst_names(cp.stdout.decode("utf-8")) == [PLAIN_TXT]


# ---------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------

PART = 1_000_003  # bytes in the partial copies


def test_put_resume(target, mode, payload, workdir):
    data = payload.big.read_bytes()
    on_server = target.root / UNICODE_BIN

    # First part: a truncated copy with the same name.
    partial = workdir / "partial" / UNICODE_BIN
    write_prefix(partial, data, PART)
    ok(ferroftp("put", partial, target.url("/"), *mode), "put of the first part")
    assert on_server.read_bytes() == data[:PART]

    # put -c: the server's file becomes the original.
    ok(ferroftp("put", "-c", payload.big, target.url("/"), *mode), "put -c")
    assert_same_file(on_server, payload.big, "after put -c")

    # Again over a prefix altered on the server: only the tail may be sent
    # (REST at the remote SIZE), so the altered byte stays.
    altered = write_prefix(on_server, data, PART, flip_first=True)
    ok(ferroftp("put", "-c", payload.big, target.url("/"), *mode), "put -c over an altered prefix")
    got = on_server.read_bytes()
    assert len(got) == len(data), f"size {len(got)} != {len(data)}"
    assert got == altered + data[PART:], (
        "put -c did not continue at the remote size "
        f"(first byte {got[0]:#x}, original {data[0]:#x}, altered {altered[0]:#x})"
    )

    # Nothing left to send: a no-op, and the file stays as it is.
    ok(ferroftp("put", "-c", payload.big, target.url("/"), *mode), "put -c of a complete file")
    assert on_server.read_bytes() == altered + data[PART:]

    # put -c of a file the server does not have: a plain upload.
    ok(ferroftp("put", "-c", payload.text, target.url("/"), *mode), "put -c of a new file")
    assert_same_file(target.root / PLAIN_TXT, payload.text, "put -c of a new file")


def test_get_resume(target, mode, payload, workdir):
    data = payload.big.read_bytes()
    shutil.copyfile(payload.big, target.root / UNICODE_BIN)
    url = target.url(f"/{UNICODE_BIN}")

    local = workdir / "resumed 续传.bin"
    write_prefix(local, data, PART)
    ok(ferroftp("get", "-c", "-o", local, url, *mode), "get -c")
    assert_same_file(local, payload.big, "after get -c")

    # Over an altered local prefix: only the tail may be fetched (REST at
    # the local size), so the altered byte stays.
    altered = write_prefix(local, data, PART, flip_first=True)
    ok(ferroftp("get", "-c", "-o", local, url, *mode), "get -c over an altered prefix")
    got = local.read_bytes()
    assert len(got) == len(data), f"size {len(got)} != {len(data)}"
    assert got == altered + data[PART:], "get -c did not continue at the local size"

    # Complete already: nothing changes.
    ok(ferroftp("get", "-c", "-o", local, url, *mode), "get -c of a complete file")
    assert local.read_bytes() == altered + data[PART:]

    # -c into the default name in the cwd, partial file there.
    write_prefix(workdir / UNICODE_BIN, data, 12345)
    ok(ferroftp("get", "-c", url, *mode, cwd=workdir), "get -c into the cwd")
    assert_same_file(workdir / UNICODE_BIN, payload.big, "get -c into the cwd")


# ---------------------------------------------------------------------------
# ls
# ---------------------------------------------------------------------------


def test_ls(target, mode, payload):
    root = target.root
    shutil.copyfile(payload.big, root / UNICODE_BIN)
    shutil.copyfile(payload.text, root / PLAIN_TXT)
    (root / UNICODE_DIR).mkdir()
    (root / UNICODE_DIR / "内 部.txt").write_bytes(b"inside\n")

    cp = ferroftp("ls", target.url("/"), *mode)
    ok(cp, "ls")
    out = cp.stdout.decode("utf-8")
    assert_in_list_output(out, UNICODE_BIN, size=payload.big.stat().st_size)
    assert_in_list_output(out, PLAIN_TXT, size=payload.text.stat().st_size)
    assert_in_list_output(out, UNICODE_DIR, kind="d")
    assert "内 部.txt" not in out

    cp = ferroftp("ls", "-1", target.url("/"), *mode)
    ok(cp, "ls -1")
    names = nlst_names(cp.stdout.decode("utf-8"))
    assert sorted(names) == sorted(os.listdir(root)), f"ls -1 printed {names!r}, the directory has {os.listdir(root)!r}"

    cp = ferroftp("ls", target.url(f"/{UNICODE_DIR}/"), *mode)
    ok(cp, "ls of a subdirectory")
    out = cp.stdout.decode("utf-8")
    assert_in_list_output(out, "内 部.txt", size=7)
    assert UNICODE_BIN not in out


# ---------------------------------------------------------------------------
# exit codes
# ---------------------------------------------------------------------------


def test_exit_codes(target, payload, workdir):
    before = sorted(os.listdir(target.root))

    # 1: the server refuses.
    out = workdir / "missing.bin"
    cp = ferroftp("get", target.url("/no such file.bin"), "-o", out)
    assert cp.returncode == 1, describe(cp, "get of a missing file: expected exit 1")
    assert not out.exists(), "get of a missing file left a local file behind"
    cp = ferroftp("get", target.url("/no such file.bin"), "-o", out, "--active")
    assert cp.returncode == 1, describe(cp, "get --active of a missing file: expected exit 1")
    cp = ferroftp("put", payload.text, target.url("/no such dir/"))
    assert cp.returncode == 1, describe(cp, "put into a missing directory: expected exit 1")
    cp = ferroftp("ls", target.url("/no such dir/"))
    assert cp.returncode == 1, describe(cp, "ls of a missing directory: expected exit 1")

    # 3: local file errors.
    cp = ferroftp("put", workdir / "no such local file.bin", target.url("/"))
    assert cp.returncode == 3, describe(cp, "put of a missing local file: expected exit 3")
    shutil.copyfile(payload.text, target.root / "t.txt")
    cp = ferroftp("get", target.url("/t.txt"), "-o", workdir / "no such dir" / "t.txt")
    assert cp.returncode == 3, describe(cp, "get into a missing local directory: expected exit 3")
    (target.root / "t.txt").unlink()

    assert sorted(os.listdir(target.root)) == before, "a failed command changed the server's directory"


def test_exit_codes_without_a_server(workdir, payload):
    with closed_port() as s:
        port = s.getsockname()[1]
        out = workdir / "x.bin"
        cp = ferroftp("get", f"ftp://{HOST}:{port}/x.bin", "-o", out)
        assert cp.returncode == 2, describe(cp, "get from a closed port: expected exit 2")
        assert not out.exists()
        cp = ferroftp("put", payload.text, f"ftp://{HOST}:{port}/")
        assert cp.returncode == 2, describe(cp, "put to a closed port: expected exit 2")
        cp = ferroftp("ls", f"ftp://{HOST}:{port}/")
        assert cp.returncode == 2, describe(cp, "ls of a closed port: expected exit 2")
    cp = ferroftp("get", f"http://{HOST}:1/x.bin", "-o", out)
    assert cp.returncode == 2, describe(cp, "get of a non-ftp URL: expected exit 2")
    assert not out.exists()


def test_put_refused_by_read_only_server(readonly_anon_server, payload):
    srv = readonly_anon_server
    cp = ferroftp("put", payload.text, f"{srv.url}/")
    assert cp.returncode == 1, describe(cp, "put to a read-only server: expected exit 1")
    assert os.listdir(srv.root) == []


def test_local_write_and_read_errors_are_exit_3(anon_server, payload, workdir):
    """A local file that fails during the transfer is a local file error (3),
    like a local file that cannot be opened. (Client-side: one server is enough.)"""
    target = Target("ferroftp-anonymous", anon_server.port, anon_server.root)
    shutil.copyfile(payload.text, target.root / PLAIN_TXT)
    before = sorted(os.listdir(target.root))
    assert Path("/dev/full").exists(), "this test needs /dev/full (every write fails with ENOSPC)"
    cp = ferroftp("get", target.url(f"/{PLAIN_TXT}"), "-o", "/dev/full")
    assert cp.returncode == 3, describe(cp, "get -o /dev/full (local write fails): expected exit 3")

    a_dir = workdir / "a directory"
    a_dir.mkdir()
    cp = ferroftp("put", a_dir, target.url("/"))
    assert cp.returncode == 3, describe(cp, "put of a local directory (local read fails): expected exit 3")
    assert sorted(os.listdir(target.root)) == before, (
        f"put of a local directory changed the server's directory: {sorted(os.listdir(target.root))}"
    )


def test_get_of_a_url_naming_no_file_is_a_url_error(anon_server, workdir):
    cp = ferroftp("get", f"{anon_server.url}/", "-o", workdir / "x")
    assert cp.returncode == 2, describe(cp, "get of a directory URL (names no file): expected exit 2 (URL error)")
