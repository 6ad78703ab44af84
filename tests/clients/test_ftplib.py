"""Python ftplib against ferroftp.

Covers passive and active transfers, raw PASV/EPSV/PORT/EPRT data channels,
directory operations, TYPE A line-ending conversion (checked on the wire and
on disk), REST for downloads and resumed uploads, --passive-ports,
--public-address, path confinement and concurrent sessions.
"""

from __future__ import annotations

import ftplib
import io
import socket
import struct
import threading
import traceback

import pytest

from conftest import (
    HOST,
    Account,
    UNICODE_DIR,
    assert_in_list_output,
    assert_in_nlst_output,
    assert_same_file,
    free_port_range,
    sha256_bytes,
    wait_for,
)

TIMEOUT = 30


def wait_for_progress(ftp: ftplib.FTP, sent: int) -> bool:
    """Whether the running transfer reaches `sent` bytes (bounded). Polled:
    the server tells how far a transfer has come only when asked (STAT)."""
    return wait_for(lambda: f", {sent} bytes transferred" in ftp.sendcmd("STAT"), timeout=10, interval=0.005)


def connect(account, pasv: bool = True, user=None, password=None) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT, encoding="utf-8")
    ftp.connect(HOST, account.port)
    ftp.login(user or account.user, password if password is not None else account.password)
    ftp.set_pasv(pasv)
    return ftp


def retr_bytes(ftp: ftplib.FTP, name: str, rest=None) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", buf.write, rest=rest)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# raw data channel in a chosen mode
# ---------------------------------------------------------------------------

DATA_MODES = ["PASV", "EPSV", "PORT", "EPRT"]


class DataChannel:
    """Open a data connection with an explicit PASV/EPSV/PORT/EPRT and run `cmd`.

    Returns the connected data socket after the 1xx preliminary reply.
    """

    def __init__(self, ftp: ftplib.FTP, mode: str):
        self.ftp, self.mode = ftp, mode
        self.listener = None
        self.peer_port = None

    def open(self, cmd: str) -> socket.socket:
        ftp, mode = self.ftp, self.mode
        if mode == "PASV":
            resp = ftp.sendcmd("PASV")
            assert resp.startswith("227"), resp
            host, port = ftplib.parse227(resp)
            assert host == HOST, f"PASV advertised {host}, expected {HOST}: {resp!r}"
            self.peer_port = port
            conn = socket.create_connection((HOST, port), timeout=TIMEOUT)
        elif mode == "EPSV":
            resp = ftp.sendcmd("EPSV")
            assert resp.startswith("229"), resp
            _, port = ftplib.parse229(resp, (HOST, 0))
            self.peer_port = port
            conn = socket.create_connection((HOST, port), timeout=TIMEOUT)
        else:
            self.listener = socket.create_server((HOST, 0))
            self.listener.settimeout(TIMEOUT)
            port = self.listener.getsockname()[1]
            if mode == "PORT":
                resp = ftp.sendport(HOST, port)
            else:
                resp = ftp.sendcmd(f"EPRT |1|{HOST}|{port}|")
            assert resp.startswith("200"), f"{mode} reply: {resp!r}"
            conn = None
        ftp.putcmd(cmd)
        resp = ftp.getresp()  # raises on 4xx/5xx
        assert resp.startswith("1"), f"{cmd}: expected 1xx preliminary reply, got {resp!r}"
        if conn is None:
            conn, addr = self.listener.accept()
            conn.settimeout(TIMEOUT)
            assert addr[0] == HOST, f"active data connection came from {addr}"
            self.listener.close()
        return conn


def raw_retr(ftp, mode, cmd) -> bytes:
    conn = DataChannel(ftp, mode).open(cmd)
    chunks = []
    while True:
        b = conn.recv(1 << 16)
        if not b:
            break
        chunks.append(b)
    conn.close()
    resp = ftp.voidresp()
    assert resp.startswith("226") or resp.startswith("250"), resp
    return b"".join(chunks)


def raw_stor(ftp, mode, cmd, chunks) -> None:
    conn = DataChannel(ftp, mode).open(cmd)
    for c in chunks:
        conn.sendall(c)
    conn.close()
    resp = ftp.voidresp()
    assert resp.startswith("226") or resp.startswith("250"), resp


@pytest.mark.parametrize("mode", DATA_MODES)
def test_ftplib_raw_data_modes(account, payload, mode):
    """STOR, RETR, LIST and NLST through an explicitly chosen data-connection command."""
    big = payload.big
    data = big.read_bytes()
    ftp = connect(account)
    try:
        ftp.voidcmd("TYPE I")
        raw_stor(ftp, mode, f"STOR {big.name}", [data[i : i + 65536] for i in range(0, len(data), 65536)])
        assert_same_file(account.root / big.name, big, f"on-disk copy after STOR via {mode}")
        got = raw_retr(ftp, mode, f"RETR {big.name}")
        assert len(got) == len(data) and sha256_bytes(got) == sha256_bytes(data), (
            f"RETR via {mode}: {len(got)} bytes, sha mismatch"
        )
        ftp.voidcmd("TYPE A")
        listing = raw_retr(ftp, mode, "LIST").decode("utf-8")
        assert_in_list_output(listing, big.name, size=len(data))
        names = raw_retr(ftp, mode, "NLST").decode("utf-8")
        assert_in_nlst_output(names, big.name)
        ftp.quit()
    finally:
        ftp.close()


@pytest.mark.parametrize("pasv", [True, False], ids=["passive", "active"])
def test_ftplib_store_list_retrieve_and_manage(account, payload, workdir, pasv):
    big, text = payload.big, payload.text
    ftp = connect(account, pasv)
    try:
        assert ftp.pwd() == "/", "login directory should be the virtual root"
        ftp.mkd(UNICODE_DIR)
        assert (account.root / UNICODE_DIR).is_dir(), "MKD did not create the directory on disk"
        ftp.cwd(UNICODE_DIR)
        assert ftp.pwd() == "/" + UNICODE_DIR

        with open(big, "rb") as f:
            ftp.storbinary(f"STOR {big.name}", f)
        assert_same_file(account.root / UNICODE_DIR / big.name, big, "on-disk after storbinary")
        with open(text, "rb") as f:
            ftp.storbinary(f"STOR /{text.name}", f)  # absolute path from a subdirectory
        assert_same_file(account.root / text.name, text, "on-disk after storbinary (absolute path)")

        assert_in_nlst_output("\n".join(ftp.nlst()), big.name)
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert_in_list_output("\n".join(lines), big.name, size=big.stat().st_size)
        lines = []
        ftp.retrlines("LIST /", lines.append)
        assert_in_list_output("\n".join(lines), UNICODE_DIR, kind="d")
        assert_in_list_output("\n".join(lines), text.name, size=text.stat().st_size)

        got = retr_bytes(ftp, big.name)
        assert sha256_bytes(got) == sha256_bytes(big.read_bytes()), "retrbinary bytes differ"
        assert retr_bytes(ftp, "/" + text.name) == text.read_bytes()

        # rename within the directory and across directories
        ftp.rename(big.name, "改名 renamed.bin")
        assert not (account.root / UNICODE_DIR / big.name).exists()
        assert_same_file(account.root / UNICODE_DIR / "改名 renamed.bin", big, "after RNFR/RNTO")
        names = ftp.nlst()
        assert_in_nlst_output("\n".join(names), "改名 renamed.bin")
        assert big.name not in [n.rsplit("/", 1)[-1] for n in names]
        ftp.rename("/" + text.name, "/" + UNICODE_DIR + "/moved.txt")
        assert_same_file(account.root / UNICODE_DIR / "moved.txt", text, "after cross-dir rename")
        assert not (account.root / text.name).exists()

        # deleting
        ftp.delete("改名 renamed.bin")
        ftp.delete("moved.txt")
        try:
            remaining = [n for n in ftp.nlst() if n.strip()]
        except (ftplib.error_perm, ftplib.error_temp):  # some servers answer 450/550 for "empty"
            remaining = []
        assert remaining == [], f"NLST after deleting everything: {remaining!r}"
        assert list((account.root / UNICODE_DIR).iterdir()) == []
        ftp.cwd("..")
        assert ftp.pwd() == "/"
        ftp.rmd(UNICODE_DIR)
        assert not (account.root / UNICODE_DIR).exists(), "RMD did not remove the directory"

        # errors are reported as 5xx, not success
        with pytest.raises(ftplib.error_perm):
            retr_bytes(ftp, "does-not-exist.bin")
        with pytest.raises(ftplib.error_perm):
            ftp.cwd("no such dir")
        with pytest.raises(ftplib.error_perm):
            ftp.delete("no-such-file")
        ftp.quit()
    finally:
        ftp.close()


# ---------------------------------------------------------------------------
# TYPE A line-ending conversion
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pasv", [True, False], ids=["passive", "active"])
def test_ftplib_type_a_upload_stores_lf(anon_account, pasv):
    acct = anon_account
    ftp = connect(acct, pasv)
    try:
        ftp.storlines("STOR lines.txt", io.BytesIO(b"a\r\nb\r\n"))
        assert (acct.root / "lines.txt").read_bytes() == b"a\nb\n"

        # the same bytes raw on the wire, with CR and LF split across TCP segments
        ftp.voidcmd("TYPE A")
        conn = ftp.transfercmd("STOR split.txt")
        sent = 0
        for piece in (b"a\r", b"\nb", b"\r", b"\n", b"c\r\n"):
            conn.sendall(piece)
            sent += len(piece)
            # The next piece goes once the server has taken this one, so
            # each comes to it apart.
            assert wait_for_progress(ftp, sent), f"the server never took {sent} bytes"
        conn.close()
        ftp.voidresp()
        assert (acct.root / "split.txt").read_bytes() == b"a\nb\nc\n"

        # TYPE I must store the bytes untouched
        ftp.storbinary("STOR binary.txt", io.BytesIO(b"a\r\nb\r\n"))
        assert (acct.root / "binary.txt").read_bytes() == b"a\r\nb\r\n"
        ftp.quit()
    finally:
        ftp.close()


@pytest.mark.parametrize("pasv", [True, False], ids=["passive", "active"])
def test_ftplib_type_a_download_sends_crlf(anon_account, payload, pasv):
    acct = anon_account
    (acct.root / "xy.txt").write_bytes(b"x\ny\n")
    text = payload.text.read_bytes()
    assert b"\r" not in text
    (acct.root / "big.txt").write_bytes(text)
    ftp = connect(acct, pasv)
    try:
        def raw(cmd, type_):
            ftp.sendcmd(f"TYPE {type_}")
            conn = ftp.transfercmd(cmd)
            chunks = []
            while True:
                b = conn.recv(65536)
                if not b:
                    break
                chunks.append(b)
            conn.close()
            ftp.voidresp()
            return b"".join(chunks)

        assert raw("RETR xy.txt", "A") == b"x\r\ny\r\n"
        assert raw("RETR xy.txt", "I") == b"x\ny\n"
        # larger text: every LF must become CRLF, including across buffer boundaries
        assert raw("RETR big.txt", "A") == text.replace(b"\n", b"\r\n")
        assert raw("RETR big.txt", "I") == text

        lines: list[str] = []
        ftp.retrlines("RETR xy.txt", lines.append)
        assert lines == ["x", "y"]
        ftp.quit()
    finally:
        ftp.close()


# ---------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pasv", [True, False], ids=["passive", "active"])
def test_ftplib_rest_download_returns_tail(anon_account, payload, pasv):
    acct = anon_account
    data = payload.big.read_bytes()
    (acct.root / payload.big.name).write_bytes(data)
    ftp = connect(acct, pasv)
    try:
        for offset in (1, 65536, 1_000_003, len(data) - 1):
            got = retr_bytes(ftp, payload.big.name, rest=offset)
            assert len(got) == len(data) - offset, f"REST {offset}: got {len(got)} bytes"
            assert got == data[offset:], f"REST {offset}: wrong bytes"
        # REST does not stick: the next plain RETR is the whole file again
        got = retr_bytes(ftp, payload.big.name)
        assert got == data, "RETR after REST transfers should start at 0 again"
        ftp.quit()
    finally:
        ftp.close()


@pytest.mark.parametrize("how", ["rest-stor", "appe"])
@pytest.mark.parametrize("pasv", [True, False], ids=["passive", "active"])
def test_ftplib_resume_partial_upload(account, payload, pasv, how):
    """Upload the first K bytes, then complete with REST K + STOR (or APPE)."""
    data = payload.big.read_bytes()
    k = 1_234_567
    name = payload.big.name
    target = account.root / name
    ftp = connect(account, pasv)
    try:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd(f"STOR {name}")
        conn.sendall(data[:k])
        conn.close()
        ftp.voidresp()
        assert target.read_bytes() == data[:k], "partial upload not stored exactly"

        f = io.BytesIO(data)
        f.seek(k)
        if how == "rest-stor":
            ftp.storbinary(f"STOR {name}", f, rest=k)
        else:
            ftp.storbinary(f"APPE {name}", f)
        ftp.quit()
    finally:
        ftp.close()
    got = target.read_bytes()
    assert len(got) == len(data), f"resumed file has {len(got)} bytes, expected {len(data)}"
    assert got == data, "resumed file differs from the original"


def test_ftplib_resume_after_aborted_connection(anon_account, payload):
    """Break the upload off mid-way (RST on data, then drop control), then
    resume from whatever prefix the server kept using REST + STOR."""
    acct = anon_account
    data = payload.big.read_bytes()
    target = acct.root / "aborted.bin"
    ftp = connect(acct, True)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR aborted.bin")
    conn.sendall(data[:2_000_000])
    assert wait_for_progress(ftp, 2_000_000), "the server never took the bytes sent"
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    # The server has settled what it keeps when it answers the broken
    # transfer.
    with pytest.raises(ftplib.error_temp, match=r"^426"):
        ftp.getresp()
    ftp.sock.close()
    ftp.close()
    kept = target.read_bytes() if target.exists() else b""
    assert data.startswith(kept), "bytes kept after an aborted upload are not a prefix of what was sent"

    ftp = connect(acct, True)
    try:
        f = io.BytesIO(data)
        f.seek(len(kept))
        ftp.storbinary("STOR aborted.bin", f, rest=len(kept) or None)
        ftp.quit()
    finally:
        ftp.close()
    assert target.read_bytes() == data, "resumed upload differs from the original"


# ---------------------------------------------------------------------------
# server options and confinement
# ---------------------------------------------------------------------------


def test_ftplib_passive_ports_range(server_factory, payload):
    lo, hi = free_port_range(20)
    srv = server_factory("--anonymous-write", "--passive-ports", f"{lo}-{hi}")
    acct = Account("anonymous", srv, "anonymous", "x", srv.root)
    data = payload.text.read_bytes()
    (srv.root / "t.txt").write_bytes(data)
    ftp = connect(acct)
    try:
        ftp.voidcmd("TYPE I")
        for mode in ("PASV", "EPSV") * 4:
            dc = DataChannel(ftp, mode)
            conn = dc.open("RETR t.txt")
            got = b""
            while chunk := conn.recv(65536):
                got += chunk
            conn.close()
            ftp.voidresp()
            assert got == data
            assert lo <= dc.peer_port <= hi, f"{mode} port {dc.peer_port} outside --passive-ports {lo}-{hi}"
        ftp.quit()
    finally:
        ftp.close()


def test_ftplib_public_address_in_pasv_reply(server_factory, payload):
    srv = server_factory("--anonymous-write", "--public-address", "127.0.0.2")
    acct = Account("anonymous", srv, "anonymous", "x", srv.root)
    data = payload.text.read_bytes()
    (srv.root / "t.txt").write_bytes(data)
    ftp = connect(acct)
    try:
        ftp.voidcmd("TYPE I")
        resp = ftp.sendcmd("PASV")
        host, port = ftplib.parse227(resp)
        assert host == "127.0.0.2", f"PASV reply should advertise --public-address: {resp!r}"
        conn = socket.create_connection((HOST, port), timeout=TIMEOUT)
        ftp.putcmd("RETR t.txt")
        assert ftp.getresp().startswith("1")
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
        conn.close()
        ftp.voidresp()
        assert got == data
        ftp.quit()
    finally:
        ftp.close()


def test_ftplib_ftp_is_anonymous_alias(anon_account):
    (anon_account.root / "hello.txt").write_bytes(b"hello\n")
    ftp = connect(anon_account, user="ftp", password="guest@")
    try:
        assert retr_bytes(ftp, "hello.txt") == b"hello\n"
        ftp.quit()
    finally:
        ftp.close()


def test_ftplib_cannot_escape_root(account, tmp_path):
    outside = account.root.parent / "outside-secret.txt"
    outside.write_bytes(b"secret outside the root\n")
    ftp = connect(account)
    try:
        ftp.cwd("/")
        try:
            ftp.cwd("..")
        except ftplib.error_perm:
            pass
        assert ftp.pwd() == "/", "CWD .. from the root must stay at /"
        for path in ("../outside-secret.txt", "/../outside-secret.txt", "/../../outside-secret.txt",
                     "/./../" + account.root.name + "/../outside-secret.txt"):
            try:
                got = retr_bytes(ftp, path)
            except ftplib.error_perm:
                continue
            assert b"secret" not in got, f"RETR {path!r} escaped the root"
        # writing outside must not work either
        try:
            ftp.storbinary("STOR ../escaped.txt", io.BytesIO(b"escape"))
        except ftplib.error_perm:
            pass
        assert not (account.root.parent / "escaped.txt").exists(), "STOR ../ wrote outside the root"
        ftp.quit()
    finally:
        ftp.close()


def test_ftplib_readonly_anonymous_refuses_writes(readonly_anon_server):
    srv = readonly_anon_server
    acct = Account("anonymous", srv, "anonymous", "x", srv.root)
    (srv.root / "keep.txt").write_bytes(b"keep\n")
    (srv.root / "keep dir").mkdir()
    ftp = connect(acct)
    try:
        for op in (
            lambda: ftp.storbinary("STOR new.bin", io.BytesIO(b"data")),
            lambda: ftp.storbinary("APPE keep.txt", io.BytesIO(b"more")),
            lambda: ftp.mkd("newdir"),
            lambda: ftp.delete("keep.txt"),
            lambda: ftp.rename("keep.txt", "moved.txt"),
            lambda: ftp.rmd("keep dir"),
        ):
            with pytest.raises(ftplib.error_perm):
                op()
        assert retr_bytes(ftp, "keep.txt") == b"keep\n"
        ftp.quit()
    finally:
        ftp.close()
    assert sorted(p.name for p in srv.root.iterdir()) == ["keep dir", "keep.txt"]
    assert (srv.root / "keep.txt").read_bytes() == b"keep\n"


def test_ftplib_concurrent_sessions(account, payload):
    """Several sessions uploading and downloading at the same time."""
    data = payload.big.read_bytes()
    errors: list[str] = []

    def worker(i: int):
        try:
            ftp = connect(account, pasv=(i % 2 == 0))
            try:
                name = f"并发 {i}.bin"
                blob = data[i * 1000 :] + bytes([i]) * 1000
                ftp.storbinary(f"STOR {name}", io.BytesIO(blob))
                got = retr_bytes(ftp, name)
                if got != blob:
                    errors.append(f"session {i}: downloaded {len(got)} bytes, differs from upload")
                if (account.root / name).read_bytes() != blob:
                    errors.append(f"session {i}: on-disk copy differs")
                ftp.quit()
            finally:
                ftp.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"session {i}: {type(e).__name__}: {e}\n{traceback.format_exc()}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a session hung"
    assert not errors, "\n".join(errors)
