"""curl and lftp against ferroftp with ``--storage memory``.

With memory storage the files live in an in-memory tree inside the server
process, so there is nothing to look at on disk: every result is checked
through FTP itself, with Python's ftplib (RETR bytes, SIZE, HASH SHA-256,
MDTM, NLST/MLSD) and by downloading with the client under test, and always
compared byte for byte with the source files.

The servers are started with ``--root`` pointing at a path that does not
exist, and the virtual user's home directory is removed before the server
starts: memory storage must need no directory at all, and must not create
one. With memory storage every configured path names a directory of the
one in-memory tree: the anonymous root at ``--root`` (the tree's ``/`` for
``/`` or the default ``.``), a user's home at its home path.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import os
from pathlib import Path
from typing import Callable, Iterable

import pytest

from conftest import (
    HOST,
    UNICODE_DIR,
    USER_NAME,
    USER_PASSWORD,
    Account,
    FtpServer,
    _dec,
    assert_in_list_output,
    assert_in_nlst_output,
    assert_same_file,
    describe,
    ferroftp_user_add,
    sha256_bytes,
)
from test_curl import CURL_MODES, assert_mode_used, curl, sent_commands, url_of
from test_lftp import LFTP_MODES, lftp, lftp_sent, q, section

# ---------------------------------------------------------------------------
# memory servers
# ---------------------------------------------------------------------------


@pytest.fixture
def mem_server_factory(server_factory, tmp_path) -> Callable[..., FtpServer]:
    """Start ferroftp with --storage memory (conftest's server_factory),
    --root naming a path that does not exist unless one is given."""
    count = iter(range(1000))

    def start(*args: str, root: Path | None = None) -> FtpServer:
        if root is None:
            root = tmp_path / f"no such root {next(count)}"
            assert not root.exists()
        return server_factory("--storage", "memory", *args, root=root, make_root=False)

    return start


def make_users_file(tmp_path: Path) -> tuple[Path, Path]:
    """A users file with alice (write access) whose home names a subtree of
    the memory tree. `ferroftp user add` insists on an existing directory,
    so one is made for it and removed again before any server starts."""
    home = tmp_path / "home alice 家"
    home.mkdir()
    users = tmp_path / "users.toml"
    ferroftp_user_add(users, USER_NAME, home, USER_PASSWORD, write=True)
    home.rmdir()
    return users, home


def mem_anon_account(factory) -> Account:
    srv = factory("--anonymous-write")
    listening = next(l for l in srv.log if "listening on" in l)
    assert "in memory" in listening, f"server does not say its root is in memory: {listening!r}"
    return Account("anonymous", srv, "anonymous", "guest@example.com", srv.root)


def mem_user_account(factory, tmp_path) -> Account:
    users, home = make_users_file(tmp_path)
    srv = factory("--users", str(users), "--no-anonymous")
    return Account("user", srv, USER_NAME, USER_PASSWORD, home)


@pytest.fixture(params=["anonymous", "user"])
def mem_account(request, mem_server_factory, tmp_path) -> Iterable[Account]:
    """Parametrized: anonymous on an --anonymous-write memory server, or a
    virtual user (anonymous off) whose home exists only in memory.

    After the test, nothing may have appeared on disk at --root or at the
    user's home path."""
    if request.param == "anonymous":
        acct = mem_anon_account(mem_server_factory)
    else:
        acct = mem_user_account(mem_server_factory, tmp_path)
    yield acct
    assert_nothing_on_disk(acct)


def assert_nothing_on_disk(acct: Account) -> None:
    assert not acct.server.root.exists(), f"memory server created --root {acct.server.root} on disk"
    assert not acct.root.exists(), f"memory server created the home {acct.root} on disk"


# ---------------------------------------------------------------------------
# checking through FTP (Python ftplib)
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def ftp_session(acct: Account, user: str | None = None, password: str | None = None):
    ftp = ftplib.FTP()
    ftp.connect(HOST, acct.port, timeout=30)
    try:
        ftp.login(user or acct.user, password or acct.password)
        ftp.voidcmd("TYPE I")
        yield ftp
    finally:
        ftp.close()


def ftp_read(ftp: ftplib.FTP, path: str) -> bytes:
    buf = bytearray()
    ftp.retrbinary(f"RETR {path}", buf.extend)
    return bytes(buf)


def assert_remote_file(ftp: ftplib.FTP, path: str, expected: bytes, what: str) -> None:
    """SIZE, HASH SHA-256 and a RETR of `path` all match `expected`."""
    size = ftp.size(path)
    assert size == len(expected), f"{what}: SIZE {path!r} = {size}, expected {len(expected)}"
    reply = ftp.sendcmd(f"HASH {path}")
    # 213 SHA-256 0-<last> <hex> <path>
    fields = reply.split(" ", 4)
    assert fields[0] == "213" and fields[1] == "SHA-256", f"{what}: HASH {path!r} -> {reply!r}"
    assert fields[3] == sha256_bytes(expected), f"{what}: server's SHA-256 of {path!r} differs: {reply!r}"
    got = ftp_read(ftp, path)
    assert len(got) == len(expected), f"{what}: RETR {path!r} gave {len(got)} bytes, expected {len(expected)}"
    assert sha256_bytes(got) == sha256_bytes(expected), f"{what}: RETR {path!r}: sha256 differs"


def mlsd_types(ftp: ftplib.FTP, path: str) -> dict[str, str]:
    """name -> MLSD type fact (file/dir), without . and .."""
    return {
        name: facts.get("type", "").lower()
        for name, facts in ftp.mlsd(path)
        if facts.get("type", "").lower() in ("file", "dir")
    }


def ftp_missing(ftp: ftplib.FTP, path: str) -> bool:
    """SIZE of a path that does not exist must be refused with 550."""
    try:
        ftp.size(path)
    except ftplib.error_perm as e:
        assert str(e).startswith("550"), f"SIZE {path!r}: {e}"
        return True
    return False


# ---------------------------------------------------------------------------
# the server itself
# ---------------------------------------------------------------------------


def test_memory_server_needs_no_directory_and_forgets_on_stop(mem_server_factory, payload):
    """A missing --root is fine; the tree is empty at start; uploads are
    visible to a second session; a restarted server starts empty again."""
    srv = mem_server_factory("--anonymous-write")
    acct = Account("anonymous", srv, "anonymous", "x@example.com", srv.root)
    data = payload.text.read_bytes()
    with ftp_session(acct) as ftp:
        assert ftp.pwd() == "/"
        assert ftp.nlst() == [], "a fresh memory tree is not empty"
        ftp.storbinary("STOR kept.txt", io.BytesIO(data))
    with ftp_session(acct) as ftp:
        assert_remote_file(ftp, "kept.txt", data, "second session")
    srv.stop()
    assert not srv.root.exists()

    srv2 = mem_server_factory("--anonymous-write")
    acct2 = Account("anonymous", srv2, "anonymous", "x@example.com", srv2.root)
    with ftp_session(acct2) as ftp:
        assert ftp.nlst() == [], "a new memory server still has files"
        assert ftp_missing(ftp, "kept.txt")


def test_memory_site_chmod_refused_and_not_advertised(mem_account):
    with ftp_session(mem_account) as ftp:
        ftp.storbinary("STOR f.txt", io.BytesIO(b"x"))
        with pytest.raises(ftplib.error_perm) as e:
            ftp.sendcmd("SITE CHMOD 600 f.txt")
        assert str(e.value) == "502 SITE CHMOD is not supported by this storage."
        assert "CHMOD" not in ftp.sendcmd("SITE HELP").upper()
        assert "CHMOD" not in ftp.sendcmd("FEAT").upper()


def test_memory_avbl_counts_stored_bytes(mem_account, payload):
    """AVBL works and goes down by exactly what was stored (and the name's
    entry: 64 bytes plus its length), up again on DELE."""
    data = payload.big.read_bytes()
    with ftp_session(mem_account) as ftp:
        before = int(ftp.sendcmd("AVBL").split()[1])
        ftp.storbinary("STOR big.bin", io.BytesIO(data))
        during = int(ftp.sendcmd("AVBL").split()[1])
        ftp.delete("big.bin")
        after = int(ftp.sendcmd("AVBL").split()[1])
    entry = 64 + len("big.bin")
    assert before - during == len(data) + entry, f"AVBL {before} -> {during} after storing {len(data)} bytes"
    assert after == before, f"AVBL {before} -> {after} after storing and deleting"


def test_memory_user_home_is_a_subtree_of_the_shared_tree(mem_server_factory, tmp_path, payload, workdir):
    """With anonymous at the tree's root (--root /) and a virtual user on
    one memory server, the user's home path names a subtree of the
    anonymous tree: what alice stores with curl is at <home>/... for
    anonymous, and alice cannot get above it."""
    users, home = make_users_file(tmp_path)
    srv = mem_server_factory("--users", str(users), "--anonymous-write", root=Path("/"))
    # The server says at start that alice's home is within anonymous reach.
    warned = [line for line in srv.log if "inside the anonymous root" in line]
    assert warned and USER_NAME in warned[0], "no warning that a home lies inside the anonymous root:\n" + srv.dump_log()
    alice = Account("user", srv, USER_NAME, USER_PASSWORD, home)
    anon = Account("anonymous", srv, "anonymous", "x@example.com", srv.root)
    text = payload.text

    with ftp_session(anon) as ftp:
        ftp.storbinary("STOR top.txt", io.BytesIO(b"anonymous only\n"))

    curl(alice, "-T", str(text), url_of(alice, text.name))
    with ftp_session(anon) as ftp:
        top = ftp.nlst("/")
        assert not ftp_missing(ftp, f"{home}/{text.name}"), (
            f"alice stored {text.name!r} in her home {home}, but anonymous (whose root should be the "
            f"memory tree's '/') has no {home}/{text.name}; anonymous sees only {top} at '/'"
        )
        assert_remote_file(ftp, f"{home}/{text.name}", text.read_bytes(), "alice's upload seen by anonymous")
        ftp.storbinary(f"STOR {home}/from anon.txt", io.BytesIO(b"hello alice\n"))

    cp = curl(alice, url_of(alice, "from anon.txt"))
    assert cp.stdout == b"hello alice\n"
    with ftp_session(alice) as ftp:
        ftp.cwd("..")
        assert ftp.pwd() == "/"
        assert sorted(ftp.nlst()) == sorted(["from anon.txt", text.name]), ftp.nlst()
        assert ftp_missing(ftp, "/top.txt")
        assert ftp_missing(ftp, "../top.txt")
    assert not home.exists(), "memory server wrote to disk"


# ---------------------------------------------------------------------------
# curl
# ---------------------------------------------------------------------------

MEM_CURL_MODES = ["epsv-default", "pasv-disable-epsv", "active-eprt", "active-port"]


@pytest.mark.parametrize("mode", MEM_CURL_MODES)
def test_mem_curl_upload_list_download(mem_account, payload, workdir, mode):
    acct = mem_account
    extra, must, must_not = CURL_MODES[mode]
    big, text = payload.big, payload.text

    # upload the big file (spaces + CJK in its name) into a new directory
    # of the same kind (curl: MKD), and the text file at the top
    cp = curl(acct, *extra, "--ftp-create-dirs", "-T", str(big), url_of(acct, UNICODE_DIR, big.name))
    assert_mode_used(cp, must, must_not)
    cp = curl(acct, *extra, "-T", str(text), url_of(acct, text.name))
    assert_mode_used(cp, must, must_not)

    with ftp_session(acct) as ftp:
        assert_remote_file(ftp, f"{UNICODE_DIR}/{big.name}", big.read_bytes(), "curl upload (big)")
        assert_remote_file(ftp, text.name, text.read_bytes(), "curl upload (text)")
        assert mlsd_types(ftp, "/") == {UNICODE_DIR: "dir", text.name: "file"}
        assert mlsd_types(ftp, UNICODE_DIR) == {big.name: "file"}
        assert ftp.nlst(UNICODE_DIR) in ([big.name], [f"{UNICODE_DIR}/{big.name}"]), ftp.nlst(UNICODE_DIR)

    # LIST through curl: directory and root
    cp = curl(acct, *extra, url_of(acct, UNICODE_DIR, trailing_slash=True))
    assert_mode_used(cp, must, must_not)
    assert_in_list_output(_dec(cp.stdout), big.name, size=big.stat().st_size)
    cp = curl(acct, *extra, f"{acct.url}/")
    assert_in_list_output(_dec(cp.stdout), text.name, size=text.stat().st_size)
    assert_in_list_output(_dec(cp.stdout), UNICODE_DIR, kind="d")
    # NLST through curl
    cp = curl(acct, *extra, "--list-only", url_of(acct, UNICODE_DIR, trailing_slash=True))
    assert_in_nlst_output(_dec(cp.stdout), big.name)

    # download both with curl and compare
    out_big = workdir / ("dl " + big.name)
    cp = curl(acct, *extra, "-o", str(out_big), url_of(acct, UNICODE_DIR, big.name))
    assert_mode_used(cp, must, must_not)
    assert_same_file(out_big, big, "curl download from memory (big)")
    out_txt = workdir / "dl.txt"
    curl(acct, *extra, "-o", str(out_txt), url_of(acct, text.name))
    assert_same_file(out_txt, text, "curl download from memory (text)")


@pytest.mark.parametrize("mode", ["epsv-default", "active-eprt"])
def test_mem_curl_resume_download(mem_account, payload, workdir, mode):
    """curl -C - continues a partial download with SIZE + REST."""
    acct = mem_account
    extra = CURL_MODES[mode][0]
    data = payload.big.read_bytes()
    with ftp_session(acct) as ftp:
        ftp.storbinary(f"STOR {payload.big.name}", io.BytesIO(data))
    out = workdir / "partial.bin"
    have = 1_234_567
    out.write_bytes(data[:have])
    cp = curl(acct, *extra, "-C", "-", "-o", str(out), url_of(acct, payload.big.name))
    sent = sent_commands(cp)
    assert "REST" in sent, describe(cp, f"curl -C - did not send REST; sent {sent}")
    assert f"> REST {have}" in _dec(cp.stderr), describe(cp, f"curl did not REST at {have}")
    assert_same_file(out, payload.big, "resumed download")


@pytest.mark.parametrize("mode", ["epsv-default", "active-port"])
def test_mem_curl_resume_upload(mem_account, payload, workdir, mode):
    """curl -C - -T finishes a partial upload (SIZE, then APPE of the rest)."""
    acct = mem_account
    extra = CURL_MODES[mode][0]
    data = payload.big.read_bytes()
    have = 2_000_001
    with ftp_session(acct) as ftp:
        ftp.storbinary("STOR up.bin", io.BytesIO(data[:have]))
    cp = curl(acct, *extra, "-C", "-", "-T", str(payload.big), url_of(acct, "up.bin"))
    sent = sent_commands(cp)
    assert "SIZE" in sent and "APPE" in sent, describe(cp, f"curl -C - -T sent {sent}")
    with ftp_session(acct) as ftp:
        assert_remote_file(ftp, "up.bin", data, "resumed upload")


@pytest.mark.parametrize("mode", ["pasv-disable-epsv", "active-eprt"])
def test_mem_curl_append(mem_account, payload, workdir, mode):
    """curl --append (APPE): the file becomes old + new; APPE of a new name
    creates it."""
    acct = mem_account
    extra = CURL_MODES[mode][0]
    text, big = payload.text.read_bytes(), payload.big.read_bytes()
    url = url_of(acct, "appended 追加.bin")
    curl(acct, *extra, "-T", str(payload.text), url)
    cp = curl(acct, *extra, "--append", "-T", str(payload.big), url)
    assert "APPE" in sent_commands(cp), describe(cp, "curl --append did not send APPE")
    cp = curl(acct, *extra, "--append", "-T", str(payload.text), url)
    cp = curl(acct, *extra, "--append", "-T", str(payload.text), url_of(acct, "new by appe.txt"))
    assert "APPE" in sent_commands(cp), describe(cp, "curl --append did not send APPE")
    with ftp_session(acct) as ftp:
        assert_remote_file(ftp, "appended 追加.bin", text + big + text, "APPE x2")
        assert_remote_file(ftp, "new by appe.txt", text, "APPE of a new file")
    out = workdir / "appended.bin"
    curl(acct, *extra, "-o", str(out), url)
    assert out.read_bytes() == text + big + text, "curl download of the appended file differs"


def test_mem_curl_unicode_names_round_trip(mem_account, payload, workdir):
    """Names with spaces and CJK characters come back exactly, in listings
    (LIST, NLST, MLSD) and as paths."""
    acct = mem_account
    names = ["测试 文件 1.bin", "  leading and trailing  ", "日本語 テスト ファイル.txt", "한국어 이름"]
    for n in names:
        curl(acct, "--ftp-create-dirs", "-T", str(payload.text), url_of(acct, "目录 dir", "子 sub", n))
    cp = curl(acct, "--list-only", url_of(acct, "目录 dir", "子 sub", trailing_slash=True))
    for n in names:
        assert_in_nlst_output(_dec(cp.stdout), n)
    with ftp_session(acct) as ftp:
        assert set(mlsd_types(ftp, "目录 dir/子 sub")) == set(names)
        for n in names:
            assert_remote_file(ftp, f"目录 dir/子 sub/{n}", payload.text.read_bytes(), f"name {n!r}")
    for i, n in enumerate(names):
        out = workdir / f"u{i}"
        curl(acct, "-o", str(out), url_of(acct, "目录 dir", "子 sub", n))
        assert_same_file(out, payload.text, f"curl download of {n!r}")


# ---------------------------------------------------------------------------
# lftp
# ---------------------------------------------------------------------------


def assert_lftp_mode(cp, mode: str) -> None:
    _, must, must_not = LFTP_MODES[mode]
    cmds = lftp_sent(cp)
    assert must in cmds, describe(cp, f"lftp never sent {must}; sent {cmds}")
    bad = sorted({c for c in cmds if c in must_not})
    assert not bad, describe(cp, f"lftp used {bad} in mode {mode}")


def cls_names(text: str) -> list[str]:
    return [l for l in text.split("\n") if l]


@pytest.mark.parametrize("mode", list(LFTP_MODES))
def test_mem_lftp_put_ls_get(mem_account, payload, workdir, mode):
    acct = mem_account
    settings = LFTP_MODES[mode][0]
    big, text = payload.big, payload.text
    out_big = workdir / ("lftp got " + big.name)
    out_txt = workdir / "lftp got.txt"

    cp = lftp(
        acct,
        settings,
        [
            f"put {q(text)} -o {q(text.name)}",
            f"mkdir {q(UNICODE_DIR)}",
            f"cd {q(UNICODE_DIR)}",
            f"put {q(big)} -o {q(big.name)}",
            "echo ===LS===",
            "ls",
            "echo ===NLIST===",
            "nlist",
            "echo ===CLS===",
            "cls -1",
            "echo ===CLSROOT===",
            "cls -1BF /",
            "echo ===LSROOT===",
            "ls /",
            "echo ===END===",
            f"get {q(big.name)} -o {q(out_big)}",
            f"get /{text.name} -o {q(out_txt)}",
        ],
        workdir,
    )
    assert_lftp_mode(cp, mode)
    out = _dec(cp.stdout)
    assert_in_list_output(section(out, "LS"), big.name, size=big.stat().st_size)
    assert_in_nlst_output(section(out, "NLIST"), big.name)
    assert cls_names(section(out, "CLS")) == [big.name], section(out, "CLS")
    assert sorted(cls_names(section(out, "CLSROOT"))) == sorted([f"{UNICODE_DIR}/", text.name])
    assert_in_list_output(section(out, "LSROOT"), text.name, size=text.stat().st_size)
    assert_in_list_output(section(out, "LSROOT"), UNICODE_DIR, kind="d")

    assert_same_file(out_big, big, "lftp get from memory (big)")
    assert_same_file(out_txt, text, "lftp get from memory (text)")
    with ftp_session(acct) as ftp:
        assert_remote_file(ftp, f"{UNICODE_DIR}/{big.name}", big.read_bytes(), "lftp put (big)")
        assert_remote_file(ftp, text.name, text.read_bytes(), "lftp put (text)")


MTIME = 981173106  # 2001-02-03 04:05:06 UTC


@pytest.mark.parametrize("mode", ["passive-epsv", "passive-pasv", "active-port"])
def test_mem_lftp_mirror_round_trip(mem_account, payload, workdir, mode):
    """mirror -R a small tree into memory, mirror it back, compare every
    file (bytes, and the modification times lftp sets with MFMT)."""
    acct = mem_account
    settings = LFTP_MODES[mode][0]
    src = workdir / "src tree"
    (src / UNICODE_DIR / "子目录 sub").mkdir(parents=True)
    (src / "empty dir").mkdir()
    files = {
        src / "a.txt": payload.text.read_bytes(),
        src / UNICODE_DIR / payload.big.name: payload.big.read_bytes(),
        src / UNICODE_DIR / "子目录 sub" / "小 文件.dat": b"\x00\r\n\n\r\xff" * 1000,
        src / UNICODE_DIR / "子目录 sub" / "zero.bin": b"",
    }
    for i, (p, data) in enumerate(files.items()):
        p.write_bytes(data)
        os.utime(p, (MTIME + i, MTIME + i))
    back = workdir / "back tree"

    # Plain mirror -R (with permissions): lftp may try SITE CHMOD, which
    # memory storage refuses with 502; the mirror must still succeed.
    cp = lftp(
        acct,
        settings,
        [
            f"mirror -R {q(src)} /uploaded",
            f"mirror /uploaded {q(back)}",
            "echo ===CLS===",
            "cls -1BF /uploaded",
            "echo ===END===",
        ],
        workdir,
    )
    assert_lftp_mode(cp, mode)
    assert "MLSD" in lftp_sent(cp), describe(cp, "lftp did not read the tree with MLSD")
    assert sorted(cls_names(section(_dec(cp.stdout), "CLS"))) == sorted(
        ["a.txt", f"{UNICODE_DIR}/", "empty dir/"]
    )
    for i, p in enumerate(files):
        rel = p.relative_to(src)
        assert_same_file(back / rel, p, f"mirror back {rel}")
        assert int((back / rel).stat().st_mtime) == MTIME + i, f"{rel}: mtime not preserved"
    assert (back / "empty dir").is_dir() and not any((back / "empty dir").iterdir())

    with ftp_session(acct) as ftp:
        for i, (p, data) in enumerate(files.items()):
            rel = p.relative_to(src).as_posix()
            assert_remote_file(ftp, f"/uploaded/{rel}", data, f"mirror -R {rel}")
            mdtm = ftp.sendcmd(f"MDTM /uploaded/{rel}")
            assert mdtm == "213 " + _utc(MTIME + i), f"MDTM {rel}: {mdtm}"
        assert mlsd_types(ftp, "/uploaded/empty dir") == {}
        assert mlsd_types(ftp, f"/uploaded/{UNICODE_DIR}") == {payload.big.name: "file", "子目录 sub": "dir"}


def _utc(t: int) -> str:
    import time

    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


@pytest.mark.parametrize("mode", list(LFTP_MODES))
def test_mem_lftp_mkdir_rm_mv(mem_account, payload, workdir, mode):
    acct = mem_account
    settings = LFTP_MODES[mode][0]
    text = payload.text
    cp = lftp(
        acct,
        settings,
        [
            f"put {q(text)} -o {q('old name.txt')}",
            f"put {q(text)} -o gone.bin",
            f"mkdir -p {q('a/b 子')}",
            f"mkdir {q('dir to remove')}",
            f"mv {q('old name.txt')} {q('a/b 子/新 名字.txt')}",
            "rm gone.bin",
            f"rmdir {q('dir to remove')}",
            "echo ===ROOT1===",
            "cls -1F",
            "echo ===SUB===",
            f"cls -1B {q('a/b 子')}",
            "echo ===END===",
            f"mv a {q('renamed a')}",
            "echo ===ROOT2===",
            "cls -1F",
            "echo ===LS2===",
            f"ls {q('renamed a/b 子')}",
            "echo ===END===",
            f"get {q('renamed a/b 子/新 名字.txt')} -o {q(workdir / 'got.txt')}",
        ],
        workdir,
    )
    assert_lftp_mode(cp, mode)
    out = _dec(cp.stdout)
    assert cls_names(section(out, "ROOT1")) == ["a/"], section(out, "ROOT1")
    assert cls_names(section(out, "SUB")) == ["新 名字.txt"], section(out, "SUB")
    assert cls_names(section(out, "ROOT2")) == ["renamed a/"], section(out, "ROOT2")
    assert_in_list_output(section(out, "LS2"), "新 名字.txt", size=text.stat().st_size)
    assert_same_file(workdir / "got.txt", text, "lftp get after mv")

    with ftp_session(acct) as ftp:
        assert mlsd_types(ftp, "/") == {"renamed a": "dir"}
        assert mlsd_types(ftp, "/renamed a") == {"b 子": "dir"}
        assert_remote_file(ftp, "renamed a/b 子/新 名字.txt", text.read_bytes(), "moved file")
        for gone in ("old name.txt", "gone.bin", "a/b 子/新 名字.txt"):
            assert ftp_missing(ftp, gone), f"{gone!r} still exists"
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("/dir to remove")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("/a")
