"""curl against ferroftp: upload (-T), LIST, NLST (--list-only), download (-o).

Every data-connection mode curl supports is exercised, and curl's verbose
trace is checked so that a silent fallback (e.g. EPSV refused -> PASV) is
reported as a failure instead of hiding a server bug.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import (
    HOST,
    UNICODE_DIR,
    USER_NAME,
    USER_PASSWORD,
    _dec,
    assert_in_list_output,
    assert_in_nlst_output,
    assert_same_file,
    describe,
    require_tool,
    run,
    trace_commands,
)

# mode id -> (extra curl args, command that must be sent, commands that must NOT be sent)
CURL_MODES = {
    "epsv-default": ([], "EPSV", ("PASV", "PORT", "EPRT")),
    "epsv-ftp-pasv": (["--ftp-pasv"], "EPSV", ("PASV", "PORT", "EPRT")),
    "pasv-disable-epsv": (["--ftp-pasv", "--disable-epsv"], "PASV", ("EPSV", "PORT", "EPRT")),
    "active-eprt": (["-P", HOST], "EPRT", ("PORT", "PASV", "EPSV")),
    "active-port": (["-P", HOST, "--disable-eprt"], "PORT", ("EPRT", "PASV", "EPSV")),
}


def curl(account, *args, expect_ok=True):
    require_tool("curl")
    cmd = [
        "curl",
        "-sS",
        "-v",
        "--noproxy",
        "*",
        "--connect-timeout",
        "10",
        "--max-time",
        "50",
        "-u",
        f"{account.user}:{account.password}",
        *args,
    ]
    cp = run(cmd)
    if expect_ok:
        assert cp.returncode == 0, describe(cp, "curl failed")
    return cp


def sent_commands(cp) -> list[str]:
    """FTP commands curl sent, from its -v trace ('> CMD args')."""
    return trace_commands(cp, "> ")


def assert_mode_used(cp, must: str, must_not: tuple[str, ...]) -> None:
    cmds = sent_commands(cp)
    assert must in cmds, describe(cp, f"curl did not send {must}; sent {cmds}")
    bad = [c for c in cmds if c in must_not]
    assert not bad, describe(cp, f"curl fell back to / used {bad} (expected only {must})")


def url_of(account, *parts: str, trailing_slash: bool = False) -> str:
    path = "/".join(quote(p, safe="") for p in parts)
    return f"{account.url}/{path}" + ("/" if trailing_slash else "")


@pytest.mark.parametrize("mode", list(CURL_MODES))
def test_curl_upload_list_download(account, payload, workdir, mode):
    extra, must, must_not = CURL_MODES[mode]
    big, text = payload.big, payload.text

    # 1. upload the big unicode-named file into a unicode directory (created by curl: MKD)
    cp = curl(account, *extra, "--ftp-create-dirs", "-T", str(big), url_of(account, UNICODE_DIR, big.name))
    assert_mode_used(cp, must, must_not)
    assert_same_file(account.root / UNICODE_DIR / big.name, big, "on-disk copy after curl upload")

    # ... and the small plain-named text file at the top level
    cp = curl(account, *extra, "-T", str(text), url_of(account, text.name))
    assert_same_file(account.root / text.name, text, "on-disk copy after curl upload (text)")

    # 2. LIST of the directory and of the root
    cp = curl(account, *extra, url_of(account, UNICODE_DIR, trailing_slash=True))
    assert_mode_used(cp, must, must_not)
    assert_in_list_output(_dec(cp.stdout), big.name, size=big.stat().st_size)
    cp = curl(account, *extra, f"{account.url}/")
    listing = _dec(cp.stdout)
    assert_in_list_output(listing, text.name, size=text.stat().st_size)
    assert_in_list_output(listing, UNICODE_DIR, kind="d")

    # 3. NLST
    cp = curl(account, *extra, "--list-only", url_of(account, UNICODE_DIR, trailing_slash=True))
    assert_mode_used(cp, must, must_not)
    assert_in_nlst_output(_dec(cp.stdout), big.name)
    cp = curl(account, *extra, "--list-only", f"{account.url}/")
    assert_in_nlst_output(_dec(cp.stdout), text.name)
    assert_in_nlst_output(_dec(cp.stdout), UNICODE_DIR)

    # 4. download both and compare byte for byte
    out_big = workdir / ("dl " + big.name)
    cp = curl(account, *extra, "-o", str(out_big), url_of(account, UNICODE_DIR, big.name))
    assert_mode_used(cp, must, must_not)
    assert_same_file(out_big, big, "curl download")
    out_txt = workdir / "dl.txt"
    curl(account, *extra, "-o", str(out_txt), url_of(account, text.name))
    assert_same_file(out_txt, text, "curl download (text)")


@pytest.mark.parametrize("method", ["multicwd", "nocwd", "singlecwd"])
def test_curl_path_methods(anon_account, payload, workdir, method):
    """--ftp-method changes how curl addresses paths (CWD per dir / full path / one CWD)."""
    acct = anon_account
    (acct.root / UNICODE_DIR).mkdir()
    big = payload.big
    url = url_of(acct, UNICODE_DIR, big.name)
    curl(acct, "--ftp-method", method, "-T", str(big), url)
    assert_same_file(acct.root / UNICODE_DIR / big.name, big, f"upload with --ftp-method {method}")
    out = workdir / "out.bin"
    curl(acct, "--ftp-method", method, "-o", str(out), url)
    assert_same_file(out, big, f"download with --ftp-method {method}")


def test_curl_append(anon_account, payload, workdir):
    """curl --append uses APPE: the remote file must become old + new bytes."""
    acct = anon_account
    text = payload.text
    url = url_of(acct, "appended.txt")
    curl(acct, "-T", str(text), url)
    cp = curl(acct, "--append", "-T", str(text), url)
    assert "APPE" in sent_commands(cp), describe(cp, "curl --append did not send APPE")
    expected = text.read_bytes() * 2
    got = (acct.root / "appended.txt").read_bytes()
    assert got == expected, f"APPE result: {len(got)} bytes, expected {len(expected)}"


def test_curl_range_download(anon_account, payload, workdir):
    """curl -r N- uses REST N: the download must be exactly the tail."""
    acct = anon_account
    data = payload.big.read_bytes()
    (acct.root / "r.bin").write_bytes(data)
    offset = 1_000_003
    out = workdir / "tail.bin"
    cp = curl(acct, "-r", f"{offset}-", "-o", str(out), url_of(acct, "r.bin"))
    assert "REST" in sent_commands(cp), describe(cp, "curl -r did not send REST")
    got = out.read_bytes()
    assert len(got) == len(data) - offset and got == data[offset:], (
        f"REST {offset}: got {len(got)} bytes, expected the {len(data) - offset}-byte tail"
    )


def test_curl_wrong_password_refused(user_server, workdir):
    srv, home = user_server
    (home / "secret.txt").write_bytes(b"top secret\n")
    out = workdir / "should-not-exist"
    cp = run(
        [
            "curl", "-sS", "-v", "--noproxy", "*", "--max-time", "30",
            "-u", f"{USER_NAME}:wrong-password", "-o", str(out), f"{srv.url}/secret.txt",
        ]
    )
    assert cp.returncode != 0, describe(cp, "curl with a wrong password succeeded")
    assert cp.returncode == 67, describe(cp, "expected CURLE_LOGIN_DENIED (67) for a wrong password")
    assert not out.exists() or out.read_bytes() == b"", "data was delivered despite a wrong password"


def test_curl_unknown_user_refused(user_server, workdir):
    srv, home = user_server
    cp = run(["curl", "-sS", "-v", "--max-time", "30", "-u", "mallory:whatever", f"{srv.url}/"])
    assert cp.returncode != 0, describe(cp, "curl with an unknown user succeeded")


def test_curl_anonymous_refused_with_no_anonymous(user_server):
    srv, home = user_server
    (home / "f.txt").write_bytes(b"x")
    for user in ("anonymous", "ftp"):
        cp = run(["curl", "-sS", "-v", "--max-time", "30", "-u", f"{user}:guest@", f"{srv.url}/"])
        assert cp.returncode != 0, describe(cp, f"{user} login succeeded on a --no-anonymous server")


def test_curl_correct_password_accepted_and_rooted(user_server, payload, workdir):
    """The virtual user sees exactly its home directory as '/'."""
    srv, home = user_server
    (home / "mine.txt").write_bytes(b"hello alice\n")
    cp = run(["curl", "-sS", "--max-time", "30", "-u", f"{USER_NAME}:{USER_PASSWORD}", f"{srv.url}/mine.txt"])
    assert cp.returncode == 0, describe(cp, "curl download as virtual user failed")
    assert cp.stdout == b"hello alice\n"


def test_curl_readonly_anonymous_cannot_upload(readonly_anon_server, payload, workdir):
    srv = readonly_anon_server
    (srv.root / "existing.txt").write_bytes(b"readable\n")
    before = sorted(p.relative_to(srv.root) for p in srv.root.rglob("*"))

    cp = run(["curl", "-sS", "-v", "--max-time", "30", "-u", "anonymous:x", "-T", str(payload.text),
              f"{srv.url}/{payload.text.name}"])
    assert cp.returncode != 0, describe(cp, "anonymous upload succeeded without --anonymous-write")

    cp = run(["curl", "-sS", "-v", "--max-time", "30", "-u", "anonymous:x", "--ftp-create-dirs",
              "-T", str(payload.text), f"{srv.url}/{quote(UNICODE_DIR)}/{payload.text.name}"])
    assert cp.returncode != 0, describe(cp, "anonymous MKD+upload succeeded without --anonymous-write")

    cp = run(["curl", "-sS", "-v", "--max-time", "30", "-u", "anonymous:x", "--append", "-T",
              str(payload.text), f"{srv.url}/existing.txt"])
    assert cp.returncode != 0, describe(cp, "anonymous APPE succeeded without --anonymous-write")

    cp = run(["curl", "-sS", "-v", "--max-time", "30", "-u", "anonymous:x", "-Q", "DELE existing.txt",
              f"{srv.url}/"])
    assert cp.returncode != 0, describe(cp, "anonymous DELE succeeded without --anonymous-write")

    after = sorted(p.relative_to(srv.root) for p in srv.root.rglob("*"))
    assert after == before, f"server root changed: {before} -> {after}"
    assert (srv.root / "existing.txt").read_bytes() == b"readable\n"

    # reading still works
    cp = run(["curl", "-sS", "--max-time", "30", "-u", "anonymous:x", f"{srv.url}/existing.txt"])
    assert cp.returncode == 0 and cp.stdout == b"readable\n", describe(cp, "anonymous read failed")


def test_worker_threads_setting_runs_sessions_on_that_many_threads(server_factory, tmp_path):
    """worker_threads = 3: the server runs sessions on three runtime
    workers (not the default of half the cores), and curl's round trip is
    whole; 0 is refused naming the key. (Other threads come and go: the
    start-up sweep for orphaned upload files, the release thread.)"""
    from conftest import FERROFTP_BIN, make_random_file

    config = tmp_path / "three.toml"
    config.write_text("worker_threads = 3\n")
    srv = server_factory("--anonymous-write", "--config", str(config))
    names = []
    for thread in Path(f"/proc/{srv.proc.pid}/task").iterdir():
        try:
            names.append((thread / "comm").read_text().strip())
        except FileNotFoundError:  # a thread that ended while listed
            pass
    workers = [n for n in names if n == "tokio-rt-worker"]
    assert len(workers) == 3, f"{len(workers)} runtime workers with worker_threads = 3: {names}"
    src = make_random_file(tmp_path / "w.bin", 3 * 1024 * 1024 + 5)
    up = run(["curl", "-sS", "-T", str(src), f"ftp://{HOST}:{srv.port}/w.bin"])
    assert up.returncode == 0, describe(up, "curl upload")
    back = tmp_path / "back.bin"
    down = run(["curl", "-sS", "-o", str(back), f"ftp://{HOST}:{srv.port}/w.bin"])
    assert down.returncode == 0, describe(down, "curl download")
    assert_same_file(back, src, "worker_threads = 3 round trip")

    bad = tmp_path / "zero.toml"
    bad.write_text("worker_threads = 0\n")
    cp = run([str(FERROFTP_BIN), "serve", "--listen", f"{HOST}:0", "--root", str(tmp_path), "--config", str(bad)])
    assert cp.returncode != 0 and "worker_threads" in _dec(cp.stderr) + _dec(cp.stdout), describe(cp, "bad config")


def _dirty_pages(path) -> tuple[int, int]:
    """(dirty, under writeback) page-cache pages of a file, from the
    cachestat(2) system call (Linux 6.5+)."""
    import ctypes

    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    class Stat(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in
                    ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]

    libc = ctypes.CDLL(None, use_errno=True)
    cachestat = 451  # the same number on every architecture
    rng, st = Range(0, 0), Stat()
    fd = os.open(path, os.O_RDONLY)
    try:
        rc = libc.syscall(cachestat, fd, ctypes.byref(rng), ctypes.byref(st), 0)
        assert rc == 0, f"cachestat failed: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(fd)
    assert st.nr_cache > 0, "the uploaded file is not in the page cache: cannot tell"
    return st.nr_dirty, st.nr_writeback


@pytest.mark.parametrize("atomic", ["true", "false"])
def test_sync_uploads_are_on_disk_when_curl_gets_226(server_factory, tmp_path, atomic):
    """sync_uploads = true: by the time curl has its 226, no page of the
    stored file is dirty or still being written (the kernel would otherwise
    keep them dirty for up to 30 s), atomic or in place, new or replacing."""
    from conftest import make_random_file

    config = tmp_path / "sync.toml"
    config.write_text(f"sync_uploads = true\natomic_uploads = {atomic}\n")
    srv = server_factory("--anonymous-write", "--config", str(config))
    for n, size in enumerate((3 * 1024 * 1024 + 7, 12 * 1024 * 1024 + 1)):
        src = make_random_file(tmp_path / f"s{n}.bin", size)
        up = run(["curl", "-sS", "-T", str(src), f"ftp://{HOST}:{srv.port}/synced.bin"])
        assert up.returncode == 0, describe(up, "curl upload")
        stored = srv.root / "synced.bin"
        assert_same_file(stored, src, "synced upload")
        dirty, writeback = _dirty_pages(stored)
        assert (dirty, writeback) == (0, 0), f"{dirty} dirty and {writeback} writeback pages after the 226"
    # STOU (Python ftplib; curl has no STOU) is flushed too.
    import ftplib

    src = make_random_file(tmp_path / "u.bin", 2 * 1024 * 1024 + 11)
    with ftplib.FTP() as ftp, open(src, "rb") as f:
        ftp.connect(HOST, srv.port, timeout=30)
        ftp.login("anonymous", "x")
        assert ftp.storbinary("STOU unique.bin", f).startswith("226")
    stored = srv.root / "unique.bin"
    assert_same_file(stored, src, "synced STOU")
    dirty, writeback = _dirty_pages(stored)
    assert (dirty, writeback) == (0, 0), f"STOU: {dirty} dirty and {writeback} writeback pages after the 226"
