"""FTPS (RFC 4217, explicit AUTH TLS) with real clients: curl --ssl-reqd,
lftp with ftp:ssl-force, and Python ftplib FTP_TLS with PROT P, in passive
and active mode, comparing bytes; data connections must resume the control
connection's TLS session, so a client that does not is refused."""

from __future__ import annotations

import ftplib
import io
import socket
import ssl

import pytest

from conftest import (
    FERROFTP_BIN,
    HOST,
    assert_same_file,
    describe,
    make_random_file,
    run,
    sha256_bytes,
    trace_commands,
)


@pytest.fixture
def certs(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cp = run([str(FERROFTP_BIN), "cert", "--cert", str(cert), "--key", str(key)])
    assert cp.returncode == 0, describe(cp, "ferroftp cert failed")
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    return cert, key


@pytest.fixture
def tls_server(server_factory, certs):
    cert, key = certs
    return server_factory("--anonymous-write", "--tls-cert", str(cert), "--tls-key", str(key))


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """ftplib never reuses the control connection's TLS session on data
    connections (python/cpython#63699); this is the one-line fix."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            # After CCC the control socket has no TLS session left; use the
            # one saved before it.
            session = getattr(self, "saved_session", None) or self.sock.session
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def ftplib_session(server, cls=ReusingFTP_TLS):
    f = cls(context=insecure_context(), timeout=30)
    f.connect(HOST, server.port)
    f.login()
    f.prot_p()
    return f


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftplib_prot_p_round_trip(tls_server, tmp_path, passive):
    body = make_random_file(tmp_path / "src.bin", 2 * 1024 * 1024 + 7).read_bytes()
    f = ftplib_session(tls_server)
    f.set_pasv(passive)
    f.storbinary("STOR 测试 文件.bin", io.BytesIO(body))
    assert sha256_bytes((tls_server.root / "测试 文件.bin").read_bytes()) == sha256_bytes(body)
    got = io.BytesIO()
    f.retrbinary("RETR 测试 文件.bin", got.write)
    assert got.getvalue() == body
    assert "测试 文件.bin" in f.nlst()
    stat = f.sendcmd("STAT")
    assert "Control connection is encrypted" in stat and "Data connections will be encrypted" in stat, stat
    f.quit()


def test_a_client_that_does_not_resume_the_session_is_refused(tls_server):
    (tls_server.root / "f.txt").write_bytes(b"secret")
    f = ftplib_session(tls_server, cls=ftplib.FTP_TLS)
    with pytest.raises((ssl.SSLError, OSError, ftplib.Error)):
        f.retrbinary("RETR f.txt", lambda b: None)
    # The control connection says why.
    with pytest.raises(ftplib.error_temp, match="425.*not resumed"):
        f.voidresp()


def test_session_reuse_can_be_turned_off(server_factory, certs, tmp_path):
    cert, key = certs
    config = tmp_path / "tls.toml"
    config.write_text("tls_require_session_reuse = false\n")
    srv = server_factory("--tls-cert", str(cert), "--tls-key", str(key), "--config", str(config))
    (srv.root / "f.txt").write_bytes(b"plain old ftplib")
    f = ftplib_session(srv, cls=ftplib.FTP_TLS)
    got = io.BytesIO()
    f.retrbinary("RETR f.txt", got.write)
    assert got.getvalue() == b"plain old ftplib"


def test_rfc_4217_reply_codes(tls_server, server_factory):
    f = ftplib.FTP_TLS(context=insecure_context(), timeout=30)
    f.connect(HOST, tls_server.port)
    for cmd, code in [("PBSZ 0", "503"), ("PROT P", "503"), ("CCC", "533")]:
        with pytest.raises(ftplib.error_perm, match=code):
            f.sendcmd(cmd)
    assert " AUTH TLS" in f.sendcmd("FEAT")
    f.auth()
    with pytest.raises(ftplib.error_perm, match="503"):
        f.sendcmd("AUTH TLS")
    with pytest.raises(ftplib.error_perm, match="503"):
        f.sendcmd("PROT P")
    assert f.sendcmd("PBSZ 0").startswith("200")
    for cmd, code in [("PROT S", "536"), ("PROT X", "504")]:
        with pytest.raises(ftplib.error_perm, match=code):
            f.sendcmd(cmd)
    assert f.sendcmd("PROT C").startswith("200")
    f.login()
    with pytest.raises(ftplib.error_perm, match="502"):
        f.sendcmd("REIN")
    # PROT C: plain data connections on a TLS control connection.
    assert f.nlst() == []
    # A server without a certificate does not offer TLS.
    plain = server_factory()
    g = ftplib.FTP(timeout=30)
    g.connect(HOST, plain.port)
    with pytest.raises(ftplib.error_perm, match="502"):
        g.sendcmd("AUTH TLS")
    assert "AUTH TLS" not in g.sendcmd("FEAT")


def test_plain_text_after_auth_is_not_executed(tls_server):
    s = socket.create_connection((HOST, tls_server.port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    # An attacker on the path appends a command to the AUTH packet.
    s.sendall(b"AUTH TLS\r\nDELE victim\r\n")
    assert f.readline().startswith(b"234")
    assert f.read() == b"", "the server must close instead of starting TLS"
    s.close()


def test_curl_ssl_reqd(tls_server, tmp_path):
    # Passive only: Debian 12's curl 7.88 fails active-mode FTPS before any
    # data moves ("sa_addr inet_ntop() failed with errno 97", exit 18/55),
    # against any server. Active FTPS is covered with lftp and ftplib.
    src = make_random_file(tmp_path / "up load.bin", 3 * 1024 * 1024)
    mode: list[str] = []
    base = f"ftp://{HOST}:{tls_server.port}"
    up = run(["curl", "-sS", "--ssl-reqd", "-k", *mode, "-T", str(src), f"{base}/"])
    assert up.returncode == 0, describe(up, "curl upload")
    assert_same_file(tls_server.root / src.name, src, "curl upload over TLS")
    out = tmp_path / "down.bin"
    down = run(["curl", "-sS", "--ssl-reqd", "-k", *mode, "-o", str(out), f"{base}/up%20load.bin"])
    assert down.returncode == 0, describe(down, "curl download")
    assert_same_file(out, src, "curl download over TLS")
    listing = run(["curl", "-sS", "--ssl-reqd", "-k", *mode, f"{base}/"])
    assert listing.returncode == 0 and b"up load.bin" in listing.stdout, describe(listing, "curl list")


@pytest.mark.parametrize("passive", ["on", "off"])
def test_lftp_ssl_force_with_mirror(tls_server, tmp_path, passive):
    tree = tmp_path / "tree"
    (tree / "子目录 sub").mkdir(parents=True)
    make_random_file(tree / "子目录 sub" / "a b.bin", 500_000)
    make_random_file(tree / "top.bin", 100_000)
    back = tmp_path / "back"
    script = tmp_path / "s.lftp"
    script.write_text(
        "\n".join(
            [
                "set ftp:ssl-force true",
                "set ftp:ssl-allow-anonymous true",
                "set ftp:ssl-protect-data true",
                "set ssl:verify-certificate no",
                f"set ftp:passive-mode {passive}",
                "set net:max-retries 1",
                "set net:timeout 10",
                "set cmd:fail-exit yes",
                f"open ftp://{HOST}:{tls_server.port}",
                f"mirror -R --no-perms {tree} /up",
                f"mirror --no-perms /up {back}",
                "bye",
            ]
        )
        + "\n"
    )
    cp = run(["lftp", "-d", "-f", str(script)])
    assert cp.returncode == 0, describe(cp, "lftp over TLS")
    sent = trace_commands(cp, "---> ")
    assert "AUTH" in sent and "PROT" in sent and "MLSD" in sent, sent
    for rel in ["子目录 sub/a b.bin", "top.bin"]:
        assert_same_file(tls_server.root / "up" / rel, tree / rel, f"lftp mirror -R {rel}")
        assert_same_file(back / rel, tree / rel, f"lftp mirror back {rel}")


def test_implicit_ftps_with_curl(server_factory, certs, tmp_path):
    cert, key = certs
    lo = socket.socket()
    lo.bind((HOST, 0))
    port = lo.getsockname()[1]
    lo.close()
    srv = server_factory(
        "--anonymous-write", "--tls-cert", str(cert), "--tls-key", str(key), "--implicit-tls-listen", f"{HOST}:{port}"
    )
    # The implicit listener's line may follow the main one by a moment.
    srv.log.wait_for(f"implicit FTPS listening on {HOST}:{port}")
    src = make_random_file(tmp_path / "implicit.bin", 1024 * 1024)
    up = run(["curl", "-sS", "-k", "-T", str(src), f"ftps://{HOST}:{port}/"])
    assert up.returncode == 0, describe(up, "curl ftps:// upload")
    assert_same_file(srv.root / src.name, src, "implicit FTPS upload")
    out = tmp_path / "back.bin"
    down = run(["curl", "-sS", "-k", "-o", str(out), f"ftps://{HOST}:{port}/implicit.bin"])
    assert down.returncode == 0, describe(down, "curl ftps:// download")
    assert_same_file(out, src, "implicit FTPS download")
    # Plain text on the implicit port gets no FTP greeting.
    s = socket.create_connection((HOST, port), timeout=10)
    s.sendall(b"USER ftp\r\n")
    s.settimeout(10)
    try:
        data = s.recv(100)
    except OSError:
        data = b""
    assert not data.startswith(b"220"), data


def test_tls_policies_534_and_521(server_factory, certs, tmp_path):
    cert, key = certs
    config = tmp_path / "policy.toml"
    config.write_text("tls_required_control_anonymous = true\ntls_required_data_anonymous = true\n")
    srv = server_factory("--anonymous-write", "--tls-cert", str(cert), "--tls-key", str(key), "--config", str(config))
    plain = ftplib.FTP(timeout=30)
    plain.connect(HOST, srv.port)
    with pytest.raises(ftplib.error_perm, match="534"):
        plain.sendcmd("USER anonymous")
    f = ReusingFTP_TLS(context=insecure_context(), timeout=30)
    f.connect(HOST, srv.port)
    f.login()
    f.prot_p()  # PBSZ 0 + PROT P (RFC 4217 wants PBSZ before PROT)
    f.prot_c()
    with pytest.raises(ftplib.error_perm, match="521"):
        f.nlst()
    with pytest.raises(ftplib.error_perm, match="521"):
        f.storbinary("STOR x.bin", io.BytesIO(b"x"))
    assert not (srv.root / "x.bin").exists()
    f.prot_p()
    f.storbinary("STOR x.bin", io.BytesIO(b"protected"))
    assert (srv.root / "x.bin").read_bytes() == b"protected"


def test_sighup_reloads_the_certificate(tls_server, certs):
    import signal

    cert, key = certs

    def served_cert() -> bytes:
        f = ftplib.FTP_TLS(context=insecure_context(), timeout=30)
        f.connect(HOST, tls_server.port)
        f.auth()
        der = f.sock.getpeercert(binary_form=True)
        f.close()
        return der

    before = served_cert()
    cp = run([str(FERROFTP_BIN), "cert", "--cert", str(cert), "--key", str(key), "renewed.example"])
    assert cp.returncode == 0, describe(cp, "ferroftp cert")
    seen = len(tls_server.log)
    tls_server.proc.send_signal(signal.SIGHUP)
    # The server says when the renewed certificate is in force.
    tls_server.log.wait_for("TLS certificate reloaded", start=seen)
    assert served_cert() != before, "the renewed certificate was not loaded"


def test_ccc_clears_the_control_connection(tls_server):
    """CCC (RFC 4217 12.3): the control connection goes on in plain text, so
    a NAT or firewall can read PORT/PASV again; data stays protected."""
    (tls_server.root / "f.txt").write_bytes(b"after ccc")
    f = ReusingFTP_TLS(context=insecure_context(), timeout=30)
    f.connect(HOST, tls_server.port)
    f.login()
    f.prot_p()
    assert " CCC" in f.sendcmd("FEAT")
    f.saved_session = f.sock.session
    assert f.ccc().startswith("200")
    # ftplib's ccc() keeps reading replies through the old TLS file object.
    f.file = f.sock.makefile("r", encoding=f.encoding)
    assert f.sendcmd("NOOP").startswith("200")
    stat = f.sendcmd("STAT")
    assert "Control connection is plain text" in stat and "Data connections will be encrypted" in stat, stat
    got = io.BytesIO()
    f.retrbinary("RETR f.txt", got.write)
    assert got.getvalue() == b"after ccc"
    with pytest.raises(ftplib.error_perm, match="503"):
        f.sendcmd("AUTH TLS")
    f.quit()


def test_curl_ccc(tls_server, tmp_path):
    (tls_server.root / "c.txt").write_bytes(b"curl after ccc")
    out = tmp_path / "c.txt"
    # curl's default CCC mode does not answer our close_notify and then
    # stops resuming the TLS session, which this server requires; its
    # active mode closes TLS both ways and keeps the session.
    cp = run(
        [
            "curl", "-sS", "--ssl-reqd", "-k", "--ftp-ssl-ccc", "--ftp-ssl-ccc-mode", "active",
            "-o", str(out), f"ftp://{HOST}:{tls_server.port}/c.txt",
        ]
    )
    assert cp.returncode == 0, describe(cp, "curl --ftp-ssl-ccc")
    assert out.read_bytes() == b"curl after ccc"


def test_ccc_can_be_refused_by_policy(server_factory, certs, tmp_path):
    cert, key = certs
    config = tmp_path / "noccc.toml"
    config.write_text("tls_allow_ccc = false\n")
    srv = server_factory("--tls-cert", str(cert), "--tls-key", str(key), "--config", str(config))
    f = ftplib.FTP_TLS(context=insecure_context(), timeout=30)
    f.connect(HOST, srv.port)
    assert " CCC" not in f.sendcmd("FEAT")
    f.auth()
    with pytest.raises(ftplib.error_perm, match="534"):
        f.sendcmd("CCC")
    assert f.sendcmd("NOOP").startswith("200")
