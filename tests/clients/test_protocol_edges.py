"""Edge cases driven with ftplib and raw sockets: overwrite semantics, ABOR,
awkward file names, error replies, data-connection security (PORT bounce,
PASV theft) and symlinks leading out of the root.

All traffic stays on 127.0.0.0/8 (127.0.0.2 is used as "another host").
"""

from __future__ import annotations

import ftplib
import io
import socket
import threading

import pytest

from conftest import HOST, assert_in_list_output, assert_in_nlst_output

TIMEOUT = 30

TRICKY_NAMES = [
    "50% off #1 [x] {y}.txt",
    "a%20b+c&d=e;f.txt",
    "two  spaces.txt",
    "-leading-dash.txt",
    "it's (quoted) \"name\".txt",
    "emoji 🦀 ünïcödé ж.txt",
]


def connect(account, pasv=True) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT, encoding="utf-8")
    ftp.connect(HOST, account.port)
    ftp.login(account.user, account.password)
    ftp.set_pasv(pasv)
    return ftp


def retr(ftp, name) -> bytes:
    buf = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", buf.write)
    return buf.getvalue()


@pytest.fixture
def ftp(anon_account):
    f = connect(anon_account)
    yield f
    try:
        f.quit()
    except Exception:  # noqa: BLE001
        pass
    f.close()


def test_stor_overwrite_truncates(anon_account, ftp, payload):
    big = payload.big.read_bytes()
    ftp.storbinary("STOR over.bin", io.BytesIO(big))
    assert (anon_account.root / "over.bin").read_bytes() == big
    ftp.storbinary("STOR over.bin", io.BytesIO(b"short"))
    got = (anon_account.root / "over.bin").read_bytes()
    assert got == b"short", f"STOR over a larger file left {len(got)} bytes (not truncated)"
    assert retr(ftp, "over.bin") == b"short"


def test_empty_file_round_trip(anon_account, ftp):
    ftp.storbinary("STOR empty.bin", io.BytesIO(b""))
    p = anon_account.root / "empty.bin"
    assert p.exists() and p.stat().st_size == 0
    assert retr(ftp, "empty.bin") == b""


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_tricky_names_round_trip(anon_account, ftp, name):
    data = name.encode("utf-8") * 1000
    ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    assert (anon_account.root / name).read_bytes() == data, f"on-disk copy of {name!r} wrong/missing"
    assert_in_nlst_output("\n".join(ftp.nlst()), name)
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    assert_in_list_output("\n".join(lines), name, size=len(data))
    assert retr(ftp, name) == data
    ftp.rename(name, name + ".renamed")
    assert (anon_account.root / (name + ".renamed")).read_bytes() == data
    ftp.delete(name + ".renamed")
    assert list(anon_account.root.iterdir()) == []


def test_abor_during_download_then_session_still_works(anon_account, ftp, payload):
    """ABOR while a RETR is running (sent in-band, data drained like a real
    client does): the replies must be 426+226/225 (or 226 if the transfer had
    already finished), with no stray replies, and the session must stay usable."""
    big = payload.big.read_bytes()
    (anon_account.root / "big.bin").write_bytes(big * 4)  # ~12 MiB, so ABOR arrives mid-transfer
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    first = conn.recv(65536)
    assert first and first == big[: len(first)]

    drained = []

    def drain():
        try:
            while chunk := conn.recv(1 << 16):
                drained.append(len(chunk))
        except OSError:
            pass

    t = threading.Thread(target=drain, daemon=True)
    ftp.sock.sendall(b"ABOR\r\n")
    t.start()
    ftp.sock.sendall(b"NOOP\r\n")
    replies = []
    while True:
        r = ftp.getmultiline()
        if r.startswith("200"):
            break
        replies.append(r[:3])
        assert len(replies) <= 3, f"unexpected replies after ABOR: {replies}"
    t.join(TIMEOUT)
    conn.close()
    assert replies in (["426", "226"], ["426", "225"], ["226", "226"], ["226", "225"], ["226"], ["225"]), (
        f"replies to an ABOR during RETR (before the NOOP's 200): {replies}"
    )
    # the next transfers must be complete and start from 0
    (anon_account.root / "small.txt").write_bytes(b"after abort\n")
    assert retr(ftp, "small.txt") == b"after abort\n"
    assert retr(ftp, "big.bin") == big * 4


def test_client_closing_data_connection_mid_download(anon_account, ftp, payload):
    """Client closes the data connection early: one 426 (or 226/451) for the
    RETR, then the session keeps working with replies in sync."""
    big = payload.big.read_bytes()
    (anon_account.root / "big.bin").write_bytes(big * 4)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(65536)
    conn.close()
    r = ftp.getmultiline()
    assert r[:3] in ("426", "451", "226"), f"reply after the client dropped the data connection: {r!r}"
    assert ftp.sendcmd("NOOP").startswith("200")
    assert retr(ftp, "big.bin") == big * 4


def test_error_replies(anon_account, ftp):
    root = anon_account.root
    (root / "d").mkdir()
    (root / "d" / "f.txt").write_bytes(b"x")
    # RETR of a directory
    with pytest.raises(ftplib.error_perm):
        retr(ftp, "d")
    # STOR into a directory that does not exist
    with pytest.raises(ftplib.error_perm):
        ftp.storbinary("STOR no/such/dir/file.bin", io.BytesIO(b"data"))
    assert not (root / "no").exists()
    # RMD of a non-empty directory
    with pytest.raises(ftplib.error_perm):
        ftp.rmd("d")
    assert (root / "d" / "f.txt").exists()
    # DELE of a directory
    with pytest.raises(ftplib.error_perm):
        ftp.delete("d")
    assert (root / "d").is_dir()
    # RNFR of a missing file; RNTO without RNFR
    with pytest.raises(ftplib.error_perm):
        ftp.sendcmd("RNFR missing.txt")
    with pytest.raises(ftplib.error_perm) as e:
        ftp.sendcmd("RNTO whatever.txt")
    assert str(e.value).startswith("503"), f"RNTO without RNFR: {e.value}"
    # MKD of an existing directory
    with pytest.raises(ftplib.error_perm):
        ftp.mkd("d")
    # unknown command
    with pytest.raises(ftplib.error_perm) as e:
        ftp.sendcmd("XYZZY")
    assert str(e.value)[:3] in ("500", "502"), str(e.value)
    # the session is still usable
    assert retr(ftp, "d/f.txt") == b"x"


def test_commands_before_login_refused(anon_account):
    (anon_account.root / "f.txt").write_bytes(b"secret")
    ftp = ftplib.FTP(timeout=TIMEOUT, encoding="utf-8")
    ftp.connect(HOST, anon_account.port)
    try:
        for cmd in ("PASV", "CWD /", "LIST", "RETR f.txt", "STOR x", "MKD x", "DELE f.txt"):
            with pytest.raises(ftplib.error_perm) as e:
                ftp.sendcmd(cmd)
            assert str(e.value).startswith("530"), f"{cmd} before login: {e.value}"
        assert (anon_account.root / "f.txt").read_bytes() == b"secret"
    finally:
        ftp.close()


def test_list_with_options_and_file_argument(anon_account, ftp):
    (anon_account.root / "file one.txt").write_bytes(b"12345")
    (anon_account.root / "sub dir").mkdir()
    for cmd in ("LIST -la", "LIST -l", "LIST -a"):
        lines: list[str] = []
        ftp.retrlines(cmd, lines.append)
        assert_in_list_output("\n".join(lines), "file one.txt", size=5)
        assert_in_list_output("\n".join(lines), "sub dir", kind="d")
    lines = []
    ftp.retrlines("LIST file one.txt", lines.append)
    assert_in_list_output("\n".join(lines), "file one.txt", size=5)
    lines = []
    ftp.retrlines("LIST sub dir", lines.append)
    assert [l for l in lines if l.strip() and not l.startswith("total")] == [], lines


def test_symlink_leading_out_of_root_is_not_followed(anon_account, ftp, tmp_path):
    outside = tmp_path / "outside secret"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"TOP SECRET outside the root\n")
    (anon_account.root / "escape").symlink_to(outside)
    (anon_account.root / "escape-file").symlink_to(outside / "secret.txt")
    for path in ("escape/secret.txt", "escape-file"):
        try:
            got = retr(ftp, path)
        except ftplib.error_perm:
            continue
        assert b"TOP SECRET" not in got, f"RETR {path!r} followed a symlink out of the root"
    try:
        ftp.storbinary("STOR escape/planted.txt", io.BytesIO(b"planted"))
    except ftplib.error_perm:
        pass
    assert not (outside / "planted.txt").exists(), "STOR through a symlink wrote outside the root"


@pytest.mark.parametrize("cmd", ["PORT 127,0,0,2,{hi},{lo}", "EPRT |1|127.0.0.2|{port}|"])
def test_active_mode_to_a_third_party_address_is_refused(ftp, cmd, anon_account):
    """FTP bounce protection (RFC 2577): the server must not open a data
    connection to an address other than the client's. 127.0.0.2 stands in
    for 'another host'. Refusing the PORT/EPRT itself or the following RETR
    are both fine; connecting to 127.0.0.2 is not."""
    (anon_account.root / "f.txt").write_bytes(b"bounce payload\n")
    victim = socket.create_server(("127.0.0.2", 0))
    victim.settimeout(2)
    port = victim.getsockname()[1]
    try:
        line = cmd.format(hi=port >> 8, lo=port & 0xFF, port=port)
        try:
            resp = ftp.sendcmd(line)
        except ftplib.error_perm:
            return  # refused outright
        try:
            ftp.sendcmd("RETR f.txt")
        except (ftplib.error_perm, ftplib.error_temp):
            pass
        try:
            c, addr = victim.accept()
        except socket.timeout:
            return  # accepted the command but did not connect
        c.close()
        pytest.fail(f"{line!r} was accepted ({resp!r}) and the server connected to {addr} (FTP bounce)")
    finally:
        victim.close()


@pytest.mark.parametrize("cmd", ["PASV", "EPSV"])
def test_passive_connection_from_another_address_gets_no_data(anon_account, ftp, cmd):
    """Passive port theft: a connection to the passive port made from another
    address (127.0.0.2), before the real client connects, must not receive
    the file. The server may either serve the real client or refuse the
    transfer with 425."""
    data = b"only for the logged-in client\n" * 1000
    (anon_account.root / "f.txt").write_bytes(data)
    ftp.voidcmd("TYPE I")
    resp = ftp.sendcmd(cmd)
    if cmd == "PASV":
        _, port = ftplib.parse227(resp)
    else:
        _, port = ftplib.parse229(resp, (HOST, 0))
    thief = socket.socket()
    thief.settimeout(2)
    thief.bind(("127.0.0.2", 0))
    legit = None
    try:
        try:
            thief.connect((HOST, port))
        except OSError:
            pass  # refused at TCP level: fine
        legit = socket.create_connection((HOST, port), timeout=5)
        ftp.putcmd("RETR f.txt")
        stolen = b""
        try:
            while chunk := thief.recv(65536):
                stolen += chunk
        except OSError:  # timeout, reset, not connected
            pass
        assert not stolen, f"{len(stolen)} bytes of the file were sent to a connection from 127.0.0.2"
        try:
            reply = ftp.getresp()
        except ftplib.error_temp as e:
            # refusing the whole transfer (e.g. 425) is also safe
            assert str(e).startswith("425"), str(e)
            return
        assert reply.startswith("1"), reply
        got = b""
        try:
            while chunk := legit.recv(65536):
                got += chunk
        except socket.timeout:
            pytest.fail(f"the client's own data connection got no data ({len(got)} bytes) after {cmd}")
        assert got == data, f"legitimate data connection got {len(got)} bytes"
        legit.close()
        legit = None
        ftp.voidresp()
    finally:
        thief.close()
        if legit is not None:
            legit.close()


def test_many_urgent_aborts_in_a_row_are_all_answered(anon_account):
    """ABOR as clients send it while a download waits on them, 100 times in
    a row: half as ftplib does (the whole ABOR line as TCP urgent data),
    half as RFC 959 says (Telnet IP, the Synch with DM as urgent data, then
    ABOR). Each is answered (426 then 226) and the session goes on; the
    server reads no control connection on a timer during transfers, so a
    lost wake-up would show here as a reply that never comes."""
    (anon_account.root / "big.bin").write_bytes(b"\x5a" * (16 << 20))
    for i in range(100):
        ftp = connect(anon_account)
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR big.bin")
        assert conn.recv(65536), "no data before ABOR"
        if i % 2 == 0:
            reply = ftp.abort()
        else:
            ftp.sock.sendall(b"\xff\xf4\xff")
            ftp.sock.send(b"\xf2", socket.MSG_OOB)
            ftp.sock.sendall(b"ABOR\r\n")
            reply = ftp.getmultiline()
        if reply.startswith("426"):
            reply = ftp.getmultiline()
        assert reply[:3] in ("225", "226"), f"abort {i}: {reply}"
        conn.close()
        ftp.voidcmd("NOOP")
        ftp.quit()
