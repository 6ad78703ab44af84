"""lftp against ferroftp: put / ls / nlist / get, in passive (EPSV and PASV)
and active (PORT) mode, plus a recursive mirror round trip (which makes lftp
parse the server's LIST output)."""

from __future__ import annotations

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
    trace_commands,
)

# mode id -> (lftp settings, command that must be sent, commands that must NOT be sent)
LFTP_MODES = {
    "passive-epsv": (
        ["set ftp:passive-mode on", "set ftp:prefer-epsv yes"],
        "EPSV",
        ("PASV", "PORT", "EPRT"),
    ),
    "passive-pasv": (
        ["set ftp:passive-mode on", "set ftp:prefer-epsv no"],
        "PASV",
        ("EPSV", "PORT", "EPRT"),
    ),
    "active-port": (
        ["set ftp:passive-mode off", "set ftp:prefer-epsv no"],
        "PORT",
        ("PASV", "EPSV"),
    ),
}

COMMON_SETTINGS = [
    "set cmd:fail-exit yes",
    "set net:max-retries 1",
    "set net:timeout 10",
    "set net:reconnect-interval-base 1",
    "set ftp:ssl-allow no",
    "set cache:enable no",
    "set xfer:clobber yes",
    "set cmd:interactive no",
]


def q(s) -> str:
    """Quote an argument for an lftp script."""
    s = str(s)
    assert '"' not in s and "\\" not in s
    return f'"{s}"'


def lftp(account, settings, commands, workdir):
    require_tool("lftp")
    lines = [
        *COMMON_SETTINGS,
        *settings,
        f"open -u {account.user},{account.password} ftp://127.0.0.1:{account.port}",
        *commands,
        "bye",
    ]
    script = workdir / "script.lftp"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cp = run(["lftp", "-d", "-f", str(script)], cwd=workdir)
    assert cp.returncode == 0, describe(cp, "lftp failed\nscript:\n" + "\n".join(lines))
    return cp


def lftp_sent(cp) -> list[str]:
    return trace_commands(cp, "---> ")


def section(out: str, name: str) -> str:
    start = out.index(f"==={name}===\n") + len(f"==={name}===\n")
    end = out.index("===", start)
    return out[start:end]


@pytest.mark.parametrize("mode", list(LFTP_MODES))
def test_lftp_put_list_get(account, payload, workdir, mode):
    settings, must, must_not = LFTP_MODES[mode]
    big, text = payload.big, payload.text
    out_big = workdir / ("lftp got " + big.name)
    out_txt = workdir / "lftp got.txt"

    cp = lftp(
        account,
        settings,
        [
            f"put {q(text)} -o {q(text.name)}",
            f"mkdir {q(UNICODE_DIR)}",
            f"cd {q(UNICODE_DIR)}",
            f"put {q(big)} -o {q(big.name)}",
            "echo ===LIST===",
            "ls",
            "echo ===NLST===",
            "nlist",
            "echo ===ROOTLIST===",
            "ls /",
            "echo ===END===",
            f"get {q(big.name)} -o {q(out_big)}",
            f"get /{text.name} -o {q(out_txt)}",
        ],
        workdir,
    )
    cmds = lftp_sent(cp)
    assert must in cmds, describe(cp, f"lftp never sent {must}; sent {cmds}")
    bad = sorted({c for c in cmds if c in must_not})
    assert not bad, describe(cp, f"lftp used {bad} in mode {mode}")

    # on-disk copies
    assert_same_file(account.root / UNICODE_DIR / big.name, big, "on-disk copy after lftp put")
    assert_same_file(account.root / text.name, text, "on-disk copy after lftp put (text)")

    # listings
    out = _dec(cp.stdout)
    assert_in_list_output(section(out, "LIST"), big.name, size=big.stat().st_size)
    assert_in_nlst_output(section(out, "NLST"), big.name)
    root_list = section(out, "ROOTLIST")
    assert_in_list_output(root_list, text.name, size=text.stat().st_size)
    assert_in_list_output(root_list, UNICODE_DIR, kind="d")

    # downloads
    assert_same_file(out_big, big, "lftp get")
    assert_same_file(out_txt, text, "lftp get (text)")


@pytest.mark.parametrize("mode", ["passive-epsv", "active-port"])
def test_lftp_mirror_round_trip(account, payload, workdir, mode):
    """mirror -R a small tree up, mirror it back down, compare every file.

    lftp has to parse the server's directory listings to do this."""
    settings, _, _ = LFTP_MODES[mode]
    src = workdir / "src tree"
    (src / UNICODE_DIR / "子目录 sub").mkdir(parents=True)
    (src / "empty dir").mkdir()
    files = {
        src / "a.txt": payload.text.read_bytes(),
        src / UNICODE_DIR / payload.big.name: payload.big.read_bytes(),
        src / UNICODE_DIR / "子目录 sub" / "小 文件.dat": b"\x00\r\n\n\r\xff" * 1000,
        src / UNICODE_DIR / "子目录 sub" / "zero.bin": b"",
    }
    for p, data in files.items():
        p.write_bytes(data)
    back = workdir / "back tree"

    cp = lftp(
        account,
        settings,
        [
            f"mirror -R --no-perms {q(src)} /uploaded",
            f"mirror --no-perms /uploaded {q(back)}",
        ],
        workdir,
    )
    # FEAT announces MLST, so lftp reads the tree with MLSD, not LIST.
    sent = lftp_sent(cp)
    assert "MLSD" in sent, describe(cp, f"lftp did not use MLSD; sent {sorted(set(sent))}")
    for p in files:
        rel = p.relative_to(src)
        assert_same_file(account.root / "uploaded" / rel, p, f"mirror -R on-disk {rel}")
        assert_same_file(back / rel, p, f"mirror back {rel}")
    assert (account.root / "uploaded" / "empty dir").is_dir(), "empty dir not mirrored up"
    assert (back / "empty dir").is_dir(), "empty dir not mirrored back"


def test_lftp_rename_and_delete(anon_account, payload, workdir):
    acct = anon_account
    (acct.root / "old name.txt").write_bytes(payload.text.read_bytes())
    (acct.root / "gone.bin").write_bytes(b"bye")
    (acct.root / "dir to remove").mkdir()
    cp = lftp(
        acct,
        LFTP_MODES["passive-epsv"][0],
        [
            f"mv {q('old name.txt')} {q('新 名字.txt')}",
            "rm gone.bin",
            f"rmdir {q('dir to remove')}",
            "echo ===NLST===",
            "nlist",
            "echo ===END===",
        ],
        workdir,
    )
    assert not (acct.root / "old name.txt").exists()
    assert_same_file(acct.root / "新 名字.txt", payload.text, "renamed file")
    assert not (acct.root / "gone.bin").exists(), "rm did not delete the file"
    assert not (acct.root / "dir to remove").exists(), "rmdir did not remove the directory"
    names = section(_dec(cp.stdout), "NLST")
    assert_in_nlst_output(names, "新 名字.txt")
    assert "old name.txt" not in names and "gone.bin" not in names
