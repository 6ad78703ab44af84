"""tnftp (NetBSD ftp) against ferroftp.

* an interactive session driven through stdin (put / ls / nlist / get) in
  passive and active mode, with and without EPSV/EPRT;
* non-interactive URL mode: `tnftp -u URL file` upload and `tnftp -o out URL`
  fetch, where the exit code is meaningful.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from conftest import (
    UNICODE_DIR,
    _dec,
    assert_in_list_output,
    assert_in_nlst_output,
    assert_same_file,
    describe,
    require_tool,
    run,
)

# mode id -> (session commands, command that must be sent, commands that must NOT be sent)
TNFTP_MODES = {
    "passive-epsv": (["passive on", "epsv4 on"], "EPSV", ("PASV", "PORT", "EPRT")),
    "passive-pasv": (["passive on", "epsv4 off"], "PASV", ("EPSV", "PORT", "EPRT")),
    "active-eprt": (["passive off", "epsv4 on"], "EPRT", ("PORT", "PASV", "EPSV")),
    "active-port": (["passive off", "epsv4 off"], "PORT", ("EPRT", "PASV", "EPSV")),
}


def q(s) -> str:
    s = str(s)
    assert '"' not in s
    return f'"{s}"'


def tnftp_sent(text: str) -> list[str]:
    return [l[5:].split(" ", 1)[0].upper() for l in text.splitlines() if l.startswith("---> ")]


def tnftp_session(account, commands, workdir):
    require_tool("tnftp")
    script = "\n".join([f"user {account.user} {account.password}", "binary", *commands, "bye"]) + "\n"
    # -i: no prompting (ls to a local file asks otherwise), -n: no auto-login,
    # -v: verbose, -d: debug (shows the commands sent)
    cp = run(["tnftp", "-i", "-n", "-v", "-d", "127.0.0.1", str(account.port)], input=script, cwd=workdir)
    assert cp.returncode == 0, describe(cp, "tnftp session failed\nscript:\n" + script)
    return cp


@pytest.mark.parametrize("mode", list(TNFTP_MODES))
def test_tnftp_session_put_list_get(account, payload, workdir, mode):
    settings, must, must_not = TNFTP_MODES[mode]
    big, text = payload.big, payload.text
    list_out = workdir / "list out.txt"
    nlist_out = workdir / "nlist out.txt"
    root_list = workdir / "root list.txt"
    out_big = workdir / ("tnftp got " + big.name)
    out_txt = workdir / "tnftp got.txt"

    cp = tnftp_session(
        account,
        [
            *settings,
            f"put {q(text)} {q(text.name)}",
            f"mkdir {q(UNICODE_DIR)}",
            f"cd {q(UNICODE_DIR)}",
            f"put {q(big)} {q(big.name)}",
            f"ls . {q(list_out)}",
            f"nlist . {q(nlist_out)}",
            f"ls / {q(root_list)}",
            f"get {q(big.name)} {q(out_big)}",
            "cd /",
            f"get {q(text.name)} {q(out_txt)}",
        ],
        workdir,
    )
    out = _dec(cp.stdout)
    cmds = tnftp_sent(out)
    assert must in cmds, describe(cp, f"tnftp never sent {must}; sent {cmds}")
    bad = sorted({c for c in cmds if c in must_not})
    assert not bad, describe(cp, f"tnftp used {bad} in mode {mode}")

    assert_same_file(account.root / UNICODE_DIR / big.name, big, "on-disk copy after tnftp put")
    assert_same_file(account.root / text.name, text, "on-disk copy after tnftp put (text)")

    for f in (list_out, nlist_out, root_list):
        assert f.exists(), describe(cp, f"tnftp did not write the listing {f.name}")
    assert_in_list_output(list_out.read_text("utf-8"), big.name, size=big.stat().st_size)
    assert_in_nlst_output(nlist_out.read_text("utf-8"), big.name)
    assert_in_list_output(root_list.read_text("utf-8"), text.name, size=text.stat().st_size)
    assert_in_list_output(root_list.read_text("utf-8"), UNICODE_DIR, kind="d")

    assert_same_file(out_big, big, "tnftp get")
    assert_same_file(out_txt, text, "tnftp get (text)")


def _url(account, *parts: str, trailing_slash=False) -> str:
    cred = "" if account.kind == "anonymous" else f"{account.user}:{account.password}@"
    path = "/".join(quote(p, safe="") for p in parts)
    return f"ftp://{cred}127.0.0.1:{account.port}/{path}" + ("/" if trailing_slash else "")


@pytest.mark.parametrize("active", [False, True], ids=["passive", "active"])
def test_tnftp_url_upload_and_fetch(account, payload, workdir, active):
    require_tool("tnftp")
    big, text = payload.big, payload.text
    (account.root / UNICODE_DIR).mkdir()
    mode_args = ["-A"] if active else []

    # -u URL/ file: STORs the file argument as given, so run in its directory
    cp = run(
        ["tnftp", "-d", *mode_args, "-u", _url(account, UNICODE_DIR, trailing_slash=True), big.name, text.name],
        cwd=payload.dir,
    )
    assert cp.returncode == 0, describe(cp, "tnftp -u failed")
    cmds = tnftp_sent(_dec(cp.stdout) + _dec(cp.stderr))
    if active:
        assert not {"PASV", "EPSV"} & set(cmds), describe(cp, "tnftp -A used passive mode")
    else:
        assert not {"PORT", "EPRT"} & set(cmds), describe(cp, "tnftp fell back to active mode")
    assert_same_file(account.root / UNICODE_DIR / big.name, big, "on-disk copy after tnftp -u")
    assert_same_file(account.root / UNICODE_DIR / text.name, text, "on-disk copy after tnftp -u (text)")

    out = workdir / "fetched 取.bin"
    cp = run(["tnftp", "-d", *mode_args, "-o", str(out), _url(account, UNICODE_DIR, big.name)], cwd=workdir)
    assert cp.returncode == 0, describe(cp, "tnftp -o fetch failed")
    assert_same_file(out, big, "tnftp -o fetch")

    # a missing file must give a non-zero exit code
    missing = workdir / "missing.bin"
    cp = run(["tnftp", *mode_args, "-o", str(missing), _url(account, UNICODE_DIR, "no such file.bin")],
             cwd=workdir)
    assert cp.returncode != 0, describe(cp, "tnftp fetch of a missing file exited 0")


def test_tnftp_upload_refused_on_readonly_anonymous(readonly_anon_server, payload, workdir):
    require_tool("tnftp")
    srv = readonly_anon_server
    cp = run(["tnftp", "-u", f"ftp://127.0.0.1:{srv.port}/", payload.text.name], cwd=payload.dir)
    assert cp.returncode != 0, describe(cp, "tnftp upload succeeded without --anonymous-write")
    assert list(srv.root.iterdir()) == [], "something landed on disk"
