#!/usr/bin/env python3
"""ferroftp side by side with vsftpd, pure-ftpd, ProFTPD, pyftpdlib and unFTP.

    python3 bench/compare.py [--quick] [--only NAME,...] [--ferroftp PATH]

Installs what is missing (cached under bench/.cache/), starts one server
at a time on 127.0.0.1, runs `ferroftp bench` scenarios against it (plus
curl and Python ftplib as second opinions, and iperf3 for the loopback
ceiling), stops it and its children, and writes bench/results/DATE.md,
DATE.json and DATE.png. Needs root (a system user, /etc/pam.d, apt).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import ftplib
import json
import math
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
CONFIGS = BENCH / "configs"
RESULTS = BENCH / "results"
VENV = CACHE / "venv"
# Scratch space for server roots, rendered configs and logs (not the repo:
# the big files are GiBs).
RUN = Path("/tmp/ftpbench")

HOST = "127.0.0.1"
USER = "ftpbench"
PASSWORD = "ftpbench"
PAM_SERVICE = "ftpbench-vsftpd"
MAX_SESSIONS = 4000
IPERF_PORT = 2409
FLOOR_PORT = 2408
UNFTP_VERSION = "0.16.0"
PIP_PACKAGES = ["pyftpdlib", "matplotlib"]

# Display order: ferroftp first. Ports and passive ranges below 32768
# (Linux's ephemeral range starts there), none overlapping. 2500 passive
# ports each: pure-ftpd caps its sessions at half its passive range, and
# the full run holds 1000 idle sessions.
SERVERS = {
    "ferroftp": {"port": 2401, "pasv": (17000, 19499)},
    "vsftpd": {"port": 2402, "pasv": (19500, 21999)},
    "pure-ftpd": {"port": 2403, "pasv": (22000, 24499)},
    "proftpd": {"port": 2404, "pasv": (24500, 26999)},
    "pyftpdlib": {"port": 2405, "pasv": (27000, 29499)},
    "unftp": {"port": 2406, "pasv": (29500, 31999), "http_port": 2416},
}
SYSTEM_USER_SERVERS = {"vsftpd", "pure-ftpd", "proftpd"}
# Debian package, binary inside it.
DEBS = {
    "vsftpd": ("vsftpd", "usr/sbin/vsftpd"),
    "pure-ftpd": ("pure-ftpd", "usr/sbin/pure-ftpd"),
    "proftpd": ("proftpd-core", "usr/sbin/proftpd"),
}
# How each server handles a session, for the results.
MODELS = {
    "ferroftp": "one process, tokio tasks",
    "vsftpd": "fork per session (plus a privileged helper process)",
    "pure-ftpd": "fork per session (privsep)",
    "proftpd": "fork per session",
    "pyftpdlib": "one process, one thread, event loop (Python)",
    "unftp": "one process, tokio tasks",
}

LIST_ENTRIES = 10_000
SMALL_SIZE = 4096
CONCURRENT_SIZE = 16 << 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def out(cmd, **kw) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, **kw).stdout.strip()


# ---------------------------------------------------------------- installs


class Apt:
    """apt-get with one `apt-get update` at most, and only when needed."""

    updated = False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

    @classmethod
    def update(cls) -> None:
        if not cls.updated:
            log("apt-get update")
            sh(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL, env=cls.env)
            cls.updated = True

    @staticmethod
    def installed(pkg: str) -> bool:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip().endswith("install ok installed")

    @classmethod
    def install(cls, pkgs) -> None:
        missing = [p for p in pkgs if not cls.installed(p)]
        if not missing:
            return
        log(f"apt-get install {' '.join(missing)}")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, env=cls.env).returncode != 0:
            cls.update()
            sh(cmd, stdout=subprocess.DEVNULL, env=cls.env)

    @classmethod
    def download(cls, pkg: str, dest: Path) -> Path:
        found = sorted(dest.glob(f"{pkg}_*.deb"))
        if found:
            return found[-1]
        dest.mkdir(parents=True, exist_ok=True)
        # A directory _apt may write to, so the download is sandboxed.
        tmp = Path(tempfile.mkdtemp(prefix="ftpbench-deb-"))
        os.chmod(tmp, 0o777)
        try:
            cmd = ["apt-get", "download", "-q", pkg]
            if subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL, env=cls.env).returncode != 0:
                cls.update()
                sh(cmd, cwd=tmp, stdout=subprocess.DEVNULL, env=cls.env)
            deb = next(tmp.glob(f"{pkg}_*.deb"))
            target = dest / deb.name
            shutil.move(str(deb), target)
            return target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_deb_server(name: str) -> tuple[Path, str]:
    """Extracts the server's Debian package into its own folder (they
    conflict with one another as installed packages) and installs only its
    library dependencies. The binary and the package version."""
    pkg, rel = DEBS[name]
    deb = Apt.download(pkg, CACHE / "debs")
    root = CACHE / "pkg" / pkg
    binary = root / rel
    if not binary.exists():
        log(f"dpkg -x {deb.name}")
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        sh(["dpkg", "-x", str(deb), str(root)])
    depends = out(["dpkg-deb", "-f", str(deb), "Depends"])
    libs = set()
    for alt in depends.split(","):
        first = alt.split("|")[0].strip()
        dep = re.sub(r"\s*\(.*\)", "", first).split(":")[0].strip()
        if re.match(r"^(lib|zlib)", dep):
            libs.add(dep)
    Apt.install(sorted(libs))
    version = out(["dpkg-deb", "-f", str(deb), "Version"])
    return binary, version


def ensure_unftp() -> tuple[Path, str]:
    binary = CACHE / "unftp" / "bin" / "unftp"
    if not binary.exists():
        logfile = CACHE / "unftp-install.log"
        log(f"cargo install unftp {UNFTP_VERSION} (one job; long: ~20 min on 2 cores; log {logfile})")
        env = dict(os.environ, CARGO_BUILD_JOBS="1", CARGO_TARGET_DIR=str(CACHE / "unftp-target"))
        cmd = [
            "nice", "-n", "10", "cargo", "install", "unftp", "--version", UNFTP_VERSION, "--locked",
            # Only the JSON-file authenticator: the default features add
            # Google Cloud Storage, Azure (opendal) and REST auth, none of
            # which is used here; the filesystem backend is always built in.
            "--no-default-features", "--features", "auth_jsonfile",
            "--root", str(CACHE / "unftp"),
        ]
        with open(logfile, "w") as f:
            sh(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        # The binary is the cache; the build tree is ~800 MB.
        shutil.rmtree(CACHE / "unftp-target", ignore_errors=True)
    version = out([str(binary), "--version"]).splitlines()[0]
    return binary, version


def ensure_ferroftp(path: str | None) -> tuple[Path, str]:
    if path:
        binary = Path(path).resolve()
    else:
        binary = REPO / "target" / "release" / "ferroftp"
        if not binary.exists():
            log("cargo build --release -p ferroftp")
            sh(["cargo", "build", "--release", "-p", "ferroftp"], cwd=REPO)
    if not binary.exists():
        raise SystemExit(f"no ferroftp binary at {binary}")
    version = out([str(binary), "--version"])
    built = datetime.datetime.fromtimestamp(binary.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    note = f"{version}, release binary {binary} built {built}"
    if not path:
        note += f", repo HEAD {out(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'])}"
    return binary, note


def ensure_venv_and_reexec() -> None:
    """Everything runs in bench/.cache/venv (pyftpdlib, matplotlib)."""
    if os.environ.get("FTPBENCH_IN_VENV") == "1":
        return
    py = VENV / "bin" / "python"
    if not py.exists():
        log(f"python3 -m venv {VENV}")
        sh([sys.executable, "-m", "venv", str(VENV)])
    check = subprocess.run([str(py), "-c", "import pyftpdlib, matplotlib"], capture_output=True)
    if check.returncode != 0:
        log(f"pip install {' '.join(PIP_PACKAGES)}")
        sh([str(py), "-m", "pip", "install", "-q", *PIP_PACKAGES])
    env = dict(os.environ, FTPBENCH_IN_VENV="1", FTPBENCH_ARGV0=" ".join(shlex.quote(a) for a in sys.argv))
    os.execve(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]], env)


def pip_versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in PIP_PACKAGES}


# ----------------------------------------------------------- system setup


def ensure_user() -> str:
    """The bench's system user; the password scheme /etc/shadow uses."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        log(f"useradd {USER}")
        sh(["useradd", "--home-dir", str(RUN / "home"), "--no-create-home", "--shell", "/bin/bash",
            "--user-group", USER])
    sh(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True)
    scheme = "?"
    for line in Path("/etc/shadow").read_text().splitlines():
        if line.startswith(USER + ":"):
            h = line.split(":")[1]
            scheme = {"$y$": "yescrypt", "$6$": "sha512crypt", "$5$": "sha256crypt", "$1$": "md5crypt",
                      "$2b$": "bcrypt", "$gy$": "gost-yescrypt"}.get(h[: h.find("$", 1) + 1], h[:4])
    return scheme


def render(template: str, values: dict) -> str:
    text = (CONFIGS / template).read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SystemExit(f"{template}: unfilled {left}")
    return text


def flags(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def prepare_root(name: str) -> Path:
    """A fresh root for one server: the 10,000-entry directory for LIST."""
    root = RUN / f"root-{name}"
    if root.exists():
        shutil.rmtree(root)
    listing = root / "list10k"
    listing.mkdir(parents=True)
    pw = pwd.getpwnam(USER)
    for i in range(LIST_ENTRIES):
        p = listing / f"file-{i:05d}.txt"
        p.touch()
        os.chown(p, pw.pw_uid, pw.pw_gid)
    for d in (listing, root):
        os.chown(d, pw.pw_uid, pw.pw_gid)
    return root


def upload_file(size: int) -> Path:
    """The local file curl uploads."""
    path = RUN / f"upload-{size}.bin"
    if not path.exists() or path.stat().st_size != size:
        block = bytes(i % 251 for i in range(1 << 20))
        with open(path, "wb") as f:
            left = size
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
    return path


# ----------------------------------------------------------- processes


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id), from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[3]))
    return table


def process_tree(root: int) -> list[int]:
    """root, its descendants, and anything left in its session (it leads a
    session of its own: start_new_session)."""
    table = proc_table()
    tree = [root] if root in table else []
    i = 0
    while i < len(tree):
        tree.extend(p for p, (pp, _) in table.items() if pp == tree[i] and p not in tree)
        i += 1
    tree.extend(p for p, (_, sid) in table.items() if sid == root and p not in tree)
    return tree


def tree_pss_kib(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


POLICIES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE",
            6: "SCHED_DEADLINE"}


def tree_policies(root: int) -> str:
    """The scheduling policies the threads of a server's processes run
    under (field 41 of /proc/PID/task/TID/stat), so a reader can see what
    each server ran as (ferroftp's default is SCHED_BATCH)."""
    seen = set()
    for pid in process_tree(root):
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            policy = int(fields[41 - 3]) & 0xFF  # without SCHED_RESET_ON_FORK
            seen.add(POLICIES.get(policy, str(policy)))
    return ", ".join(sorted(seen)) or "?"


def cpu_cgroup_root() -> tuple[Path | None, str]:
    """Where servers' CPU-accounting cgroups go: the cgroup v1 hierarchy
    with cpuacct, else the cgroup v2 one; with what it is, or None and why
    not."""
    v1 = v2 = None
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup" and "cpuacct" in fields[3].split(","):
            v1 = v1 or Path(fields[1])
        elif fields[2] == "cgroup2":
            v2 = v2 or Path(fields[1])
    for root, what in ((v1, "cgroup v1 cpuacct.usage"), (v2, "cgroup v2 cpu.stat")):
        if root is not None and os.access(root, os.W_OK):
            return root, what
    return None, "no writable cgroup hierarchy with CPU accounting (needs root)"


class CpuCgroup:
    """A cgroup of its own for one server: every process it forks stays in
    it, and the kernel accounts their CPU time whether or not anyone waits
    for them (a process tree in /proc loses an orphan's). Made empty,
    removed when the server is gone."""

    def __init__(self, name: str):
        root, self.what = cpu_cgroup_root()
        self.path = None if root is None else root / f"ftpbench-{name}"
        if self.path is not None:
            if self.path.exists():
                self.path.rmdir()  # left by an earlier run; fails (and says so) if not empty
            self.path.mkdir()

    def enter(self) -> None:
        """Moves the calling process in (run in the child before exec)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        if self.path is None:
            return
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # its last processes are still exiting
        log(f"warning: could not remove {self.path}: processes left in it")


class Server:
    def __init__(self, name: str, cmd: list[str], root: Path, logfile: Path, port: int, stdin_log=False):
        self.name, self.cmd, self.root, self.logfile, self.port = name, cmd, root, logfile, port
        self.log = open(logfile, "w+")
        self.cgroup = CpuCgroup(name)
        self.proc = subprocess.Popen(
            cmd, cwd=root, start_new_session=True, preexec_fn=self.cgroup.enter,
            stdin=self.log if stdin_log else subprocess.DEVNULL,  # vsftpd reports start-up errors on fd 0
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.logfile.read_text(errors="replace")[-2000:].strip()

    def wait_greeting(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    s.settimeout(5)
                    data = b""
                    while b"\n" not in data:
                        chunk = s.recv(1024)
                        if not chunk:
                            break
                        data += chunk
                    line = data.decode(errors="replace").strip()
                    if line.startswith("220"):
                        try:
                            s.sendall(b"QUIT\r\n")
                        except OSError:
                            pass
                        return line.splitlines()[-1]
                    last = line or "closed"
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not greet on port {self.port} within {timeout:.0f} s ({last}): "
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server and every process of its tree, by pid;
        SIGKILL to what is left after 5 s."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            pids = process_tree(self.pid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                self.proc.poll()
                if not [p for p in process_tree(self.pid) if p != self.pid] and self.proc.returncode is not None:
                    break
                time.sleep(0.1)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
        left = process_tree(self.pid)
        if left:
            log(f"warning: {self.name}: processes left: {left}")
        self.cgroup.remove()


# ------------------------------------------------------------ measuring


def ferroftp_bench(ff: Path, url: str, scenario: str, clients: int, duration: float, pid: int,
                   cgroup: CpuCgroup, size: int | None = None, mode: str | None = None,
                   timeout: float = 120) -> dict:
    cmd = [str(ff), "bench", url, "--scenario", scenario, "--clients", str(clients),
           "--duration", f"{duration:g}", "--pid", str(pid), "--json"]
    if cgroup.path is not None:
        cmd += ["--cgroup", str(cgroup.path)]
    if size is not None:
        cmd += ["--size", str(size)]
    if mode is not None:
        cmd += ["--mode", mode]
    shown = " ".join(shlex.quote(c) for c in cmd).replace(f":{PASSWORD}@", ":***@")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "cmd": shown}
    try:
        rep = json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stderr.strip() or r.stdout.strip() or f"exit status {r.returncode}")[-500:],
                "cmd": shown}
    rep["cmd"] = shown
    rep["exit_status"] = r.returncode
    return rep


def curl_transfer(port: int, upload: Path | None, size: int, timeout: float) -> dict:
    """curl as a second opinion on big-file throughput: RETR of the file
    big-retr left, or STOR of a local file."""
    base = f"ftp://{USER}:{PASSWORD}@{HOST}:{port}/"
    if upload is None:
        cmd = ["curl", "-sS", "--max-time", f"{timeout:g}", "-o", "/dev/null",
               "-w", "%{speed_download} %{size_download}", base + "ferroftp-bench.bin"]
    else:
        cmd = ["curl", "-sS", "--max-time", f"{timeout:g}", "-T", str(upload),
               "-w", "%{speed_upload} %{size_upload}", base + "curl-upload.bin"]
    shown = " ".join(shlex.quote(c) for c in cmd).replace(f":{PASSWORD}@", ":***@")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return {"error": "timed out", "cmd": shown}
    parts = r.stdout.split()
    if r.returncode != 0 or len(parts) != 2:
        return {"error": (r.stderr.strip() or f"curl exit {r.returncode}")[-300:], "cmd": shown}
    speed, moved = float(parts[0]), int(float(parts[1]))
    if moved != size:
        return {"error": f"moved {moved} bytes, expected {size}", "cmd": shown}
    return {"mb_per_sec": speed / 1e6, "bytes": moved, "cmd": shown}


def ftplib_rate(port: int, what: str, duration: float) -> dict:
    """Python ftplib, one client, PASV, as a second opinion: it closes the
    data connection as soon as it has read it to the end, then reads the
    226 reply."""
    ops, entries = 0, 0
    try:
        f = ftplib.FTP()
        f.connect(HOST, port, timeout=30)
        f.login(USER, PASSWORD)
        f.set_pasv(True)
        start = time.perf_counter()
        while time.perf_counter() - start < duration:
            if what == "retr":
                f.retrbinary("RETR /ferroftp-bench.bin", lambda b: None, blocksize=65536)
            else:
                lines = []
                f.retrlines("LIST /list10k", lines.append)
                entries = len(lines)
            ops += 1
        seconds = time.perf_counter() - start
        try:
            f.quit()
        except (OSError, ftplib.Error):
            f.close()
    except (OSError, ftplib.Error, EOFError) as e:
        return {"error": f"{type(e).__name__}: {e}", "ops": ops}
    rep = {"ops": ops, "seconds": seconds, "ops_per_sec": ops / seconds}
    if what == "list":
        rep["entries"] = entries
    return rep


def iperf3(seconds: int) -> dict:
    """One TCP stream on loopback, bounded by -t."""
    logfile = RUN / "logs" / "iperf3-server.log"
    with open(logfile, "w") as lf:
        srv = subprocess.Popen(["iperf3", "-s", "-1", "--forceflush", "-B", HOST, "-p", str(IPERF_PORT)],
                               stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while "listening" not in logfile.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        cmd = ["iperf3", "-c", HOST, "-B", HOST, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        data = json.loads(r.stdout)
        if "error" in data:
            return {"error": data["error"], "cmd": " ".join(cmd)}
        bps = data["end"]["sum_received"]["bits_per_second"]
        return {"mb_per_sec": bps / 8 / 1e6, "seconds": seconds, "cmd": " ".join(cmd),
                "version": out(["iperf3", "--version"]).splitlines()[0]}
    except (ValueError, KeyError, subprocess.TimeoutExpired) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def measure_ceiling(plan: dict, when: str) -> dict:
    log(f"iperf3 loopback ceiling, {when} ({plan['iperf_seconds']} s)")
    r = iperf3(plan["iperf_seconds"])
    r["when"] = when
    log(f"  {r['mb_per_sec']:,.0f} MB/s" if "error" not in r else f"  error: {r['error']}")
    return r


# The scenarios bench/floor.c is measured under: the key (as in a
# server's runs), what `ferroftp bench` is given, and what one operation is.
FLOOR_SCENARIOS = [
    ("connect", dict(scenario="connect", clients=16), "connection"),
    ("small-retr-epsv", dict(scenario="small-retr", clients=4, size=SMALL_SIZE, mode="epsv"), "small RETR (EPSV)"),
    ("small-retr-pasv", dict(scenario="small-retr", clients=4, size=SMALL_SIZE, mode="pasv"), "small RETR (PASV)"),
]


def measure_floor(ff: Path, plan: dict) -> dict:
    """The kernel floor: bench/floor.c, an epoll loop in C that does the
    least an FTP server must (greet, answer QUIT; for small RETR log in,
    answer EPSV/PASV and send the file), measured like a server under the
    connect and small RETR loads. No FTP server can spend less CPU per
    operation on this machine, and none can show a much higher rate: its
    rate is the ceiling of what a server can show against the same load
    generator on these cores. Returns {"runs": {key: bench report}}."""
    log("kernel floor: bench/floor.c")
    exe, src = CACHE / "floor", BENCH / "floor.c"
    try:
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            sh(["gcc", "-O2", "-o", str(exe), str(src)], capture_output=True)
        cgroup = CpuCgroup("floor")
        proc = subprocess.Popen([str(exe), str(FLOOR_PORT)], stdout=subprocess.PIPE, text=True,
                                preexec_fn=cgroup.enter)
    except (subprocess.CalledProcessError, OSError) as e:
        return {"error": f"could not build or start bench/floor.c: {e}"}
    runs = {}
    try:
        if "listening" not in (proc.stdout.readline() if proc.stdout else ""):
            return {"error": f"bench/floor.c did not start (exit {proc.poll()})"}
        url = f"ftp://{USER}:{PASSWORD}@{HOST}:{FLOOR_PORT}/"
        for key, kw, _ in FLOOR_SCENARIOS:
            kw = dict(kw)
            r = ferroftp_bench(ff, url, kw.pop("scenario"), kw.pop("clients"), plan["duration"], proc.pid,
                               cgroup, timeout=plan["duration"] + 90, **kw)
            runs[key] = r
            if "error" in r:
                log(f"  {key}: error: {r['error']}")
            else:
                log(f"  {key}: {r.get('server_cpu_us_per_op', 0):.1f} us per op, {r.get('ops_per_sec', 0):,.0f}/s")
    finally:
        proc.kill()
        proc.wait()
        cgroup.remove()
    return {"runs": runs}


# --------------------------------------------------------- one server


def launch(name: str, info: dict, root: Path, ff: Path, binaries: dict) -> tuple[Server, dict]:
    """Renders the server's config, starts it. The server and the config
    texts used."""
    port, (lo, hi) = info["port"], info["pasv"]
    confdir = RUN / "conf"
    confdir.mkdir(parents=True, exist_ok=True)
    logfile = RUN / "logs" / f"{name}.log"
    values = {"PORT": port, "PASV_MIN": lo, "PASV_MAX": hi, "ROOT": root, "RUN_DIR": RUN,
              "MAX_SESSIONS": MAX_SESSIONS, "USER": USER, "PASSWORD": PASSWORD}
    configs = {}
    stdin_log = False
    if name in SYSTEM_USER_SERVERS:
        # The user's home is this server's root; each confines it there.
        sh(["usermod", "-d", str(root), USER], capture_output=True)
    if name == "ferroftp":
        users = confdir / "ferroftp-users.toml"
        users.unlink(missing_ok=True)
        sh([str(ff), "user", "add", "--file", str(users), USER, "--home", str(root), "--write",
            "--password-stdin"], input=PASSWORD + "\n", text=True, stdout=subprocess.DEVNULL)
        values["USERS_FILE"] = users
        conf = confdir / "ferroftp.toml"
        conf.write_text(render("ferroftp.toml", values))
        configs["ferroftp.toml"] = conf.read_text()
        configs["users file"] = f"{users}, written by `ferroftp user add --file {users.name} {USER} " \
                                f"--home {root} --write --password-stdin` (argon2id hash)"
        cmd = [str(ff), "serve", "--config", str(conf)]
    elif name == "vsftpd":
        empty = RUN / "vsftpd-empty"
        empty.mkdir(exist_ok=True)
        os.chmod(empty, 0o555)
        values.update(PAM_SERVICE=PAM_SERVICE, EMPTY_DIR=empty)
        conf = confdir / "vsftpd.conf"
        conf.write_text(render("vsftpd.conf", values))
        configs["vsftpd.conf"] = conf.read_text()
        configs[f"/etc/pam.d/{PAM_SERVICE}"] = (CONFIGS / "vsftpd.pam").read_text()
        cmd = [str(binaries[name]), str(conf)]
        stdin_log = True
    elif name == "pure-ftpd":
        text = render("pure-ftpd.flags", values)
        configs["pure-ftpd flags"] = text
        cmd = [str(binaries[name]), *flags(text)]
    elif name == "proftpd":
        conf = confdir / "proftpd.conf"
        conf.write_text(render("proftpd.conf", values))
        configs["proftpd.conf"] = conf.read_text()
        cmd = [str(binaries[name]), "--nodaemon", "--config", str(conf)]
    elif name == "pyftpdlib":
        cmd = [str(VENV / "bin" / "python"), str(CONFIGS / "pyftpdlib_server.py"), "--port", str(port),
               "--root", str(root), "--passive", f"{lo}-{hi}", "--user", USER, "--password", PASSWORD,
               "--max-sessions", str(MAX_SESSIONS)]
        configs["command"] = " ".join(shlex.quote(c) for c in cmd).replace(PASSWORD + " ", "*** ")
    elif name == "unftp":
        users = confdir / "unftp-users.json"
        users.write_text(render("unftp-users.json", values))
        values.update(USERS_FILE=users, HTTP_PORT=info["http_port"])
        text = render("unftp.flags", values)
        configs["unftp flags"] = text
        configs["unftp-users.json"] = "(plain-text password)\n" + users.read_text().replace(PASSWORD, "***", 1)
        cmd = [str(binaries[name]), *flags(text)]
    else:
        raise ValueError(name)
    return Server(name, cmd, root, logfile, port, stdin_log=stdin_log), configs


def median_run(tries: list[dict]) -> dict:
    """The try with the median rate (MB/s), with every try's rate under
    `tries_mb_per_sec`; the last try if none has a rate."""
    rated = sorted((t for t in tries if t.get("mb_per_sec")), key=lambda t: t["mb_per_sec"])
    if not rated:
        return tries[-1]
    chosen = dict(rated[(len(rated) - 1) // 2])
    chosen["tries_mb_per_sec"] = [round(t["mb_per_sec"]) if t.get("mb_per_sec") else None for t in tries]
    return chosen


def settle_page_cache() -> None:
    """Writes dirty pages out and drops the clean page cache (needs root),
    so each big upload starts from the same state."""
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as e:
        log(f"    cannot drop the page cache ({e}); big STOR figures will depend on run order")


PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/page_reporting_order")


def available_gib() -> int:
    """MemAvailable, in whole GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) >> 20
    return 0


class GuestMemory:
    """Keeps a virtual machine's free memory backed by the host while the
    servers run.

    With free page reporting (virtio-balloon), the guest tells the host
    which free 2 MiB blocks it may take back; the next write to such a page
    faults in the hypervisor, and copying into it is several times slower.
    The page cache dropped before each big upload is reported within
    seconds, so a 1 GiB STOR ran at 0.3 or at 1.4 s of CPU depending on
    whether the reporting thread had got there first (measured on this
    project's machine, every server alike). Reporting is paused for the
    run (an order above the largest block the allocator has) and enough
    memory is written once to be backed again; the setting is restored on
    the way out. Nothing happens where reporting is absent (bare metal).
    """

    def __init__(self, warm_gib: int):
        self.saved: str | None = None
        self.warm_gib = warm_gib

    def __enter__(self):
        try:
            self.saved = PAGE_REPORTING.read_text().strip()
            PAGE_REPORTING.write_text("11\n")
        except OSError:
            self.saved = None
            return self
        log(f"free page reporting paused (order {self.saved} -> 11); writing {self.warm_gib} GiB once")
        block = b"\x01" * (1 << 30)
        held = [bytearray(block) for _ in range(self.warm_gib)]
        del held, block
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            try:
                PAGE_REPORTING.write_text(self.saved + "\n")
            except OSError as e:
                log(f"could not restore {PAGE_REPORTING}: {e}")
        return False


def read_through(path: Path) -> None:
    """Reads a file once so it sits in the page cache."""
    with path.open("rb") as f:
        while f.read(1 << 20):
            pass


def run_server(name: str, ff: Path, binaries: dict, plan: dict) -> dict:
    info = SERVERS[name]
    port = info["port"]
    result: dict = {"port": port, "passive_ports": "%d-%d" % info["pasv"], "model": MODELS[name]}
    root = prepare_root(name)
    try:
        server, configs = launch(name, info, root, ff, binaries)
    except (subprocess.CalledProcessError, OSError, SystemExit) as e:
        result["error"] = f"could not configure: {e}"
        shutil.rmtree(root, ignore_errors=True)
        return result
    result["configs"] = configs
    result["command"] = " ".join(shlex.quote(c) for c in server.cmd).replace(f" {PASSWORD} ", " *** ")
    runs: dict = {}
    result["runs"] = runs
    try:
        result["greeting"] = server.wait_greeting()
        time.sleep(0.3)
        result["pss_kib_at_start"] = tree_pss_kib(server.pid)
        result["scheduling"] = tree_policies(server.pid)
        result["cpu_source"] = server.cgroup.what
        url = f"ftp://{USER}:{PASSWORD}@{HOST}:{port}/"
        d, big = plan["duration"], plan["big"]

        def bench(key, scenario, clients, **kw):
            log(f"  {name}: {key}")
            runs[key] = ferroftp_bench(ff, kw.pop("url", url), scenario, clients, kw.pop("duration", d),
                                       server.pid, server.cgroup, **kw)
            r = runs[key]
            if "error" in r:
                log(f"    error: {r['error']}")
            elif r.get("errors"):
                log(f"    {r['errors']} errors, first: {r.get('first_error')}")

        rate_timeout = d + 90
        bench("connect", "connect", 16, timeout=rate_timeout)
        bench("login", "login", 16, timeout=rate_timeout)
        bench("small-retr-epsv", "small-retr", 4, size=SMALL_SIZE, mode="epsv", timeout=rate_timeout)
        bench("small-retr-pasv", "small-retr", 4, size=SMALL_SIZE, mode="pasv", timeout=rate_timeout)
        log(f"  {name}: ftplib small RETR")
        runs["ftplib-retr"] = ftplib_rate(port, "retr", d)
        bench("small-stor", "small-stor", 4, size=SMALL_SIZE, mode="epsv", timeout=rate_timeout)
        bench("list", "list", 4, url=url + "list10k/", timeout=rate_timeout)
        log(f"  {name}: ftplib LIST")
        runs["ftplib-list"] = ftplib_rate(port, "list", d)
        # One transfer each; --duration only bounds it (bench then waits
        # at most 60 s more).
        # Big transfers vary most from run to run on a VM (where the
        # threads land, what the hypervisor does): the median of
        # plan["repeat"] runs is kept, and every rate in the JSON.
        def repeated(key, measure):
            tries = []
            for _ in range(plan["repeat"]):
                measure()
                tries.append(runs[key])
            runs[key] = median_run(tries)

        repeated("big-retr", lambda: bench("big-retr", "big-retr", 1, size=big, duration=60, timeout=600))
        # curl's download while the big file is still in the page cache.
        log(f"  {name}: curl RETR")
        def curl_retr():
            runs["curl-retr"] = curl_transfer(port, None, big, timeout=300)

        repeated("curl-retr", curl_retr)
        # Every big upload starts from the same page cache: written out and
        # dropped, then one untimed upload of the same size. Otherwise the
        # figure depends on what ran before: gigabytes still dirty from the
        # big-RETR file, or pages the guest has not used before (they fault
        # in the hypervisor). Measured for one build: 295-1,460 MB/s
        # without this, 884-996 MB/s with it.
        settle_page_cache()
        bench("big-stor-warmup", "big-stor", 1, size=big, duration=60, timeout=600)

        def timed_stor():
            settle_page_cache()
            bench("big-stor", "big-stor", 1, size=big, duration=60, timeout=600)

        repeated("big-stor", timed_stor)
        log(f"  {name}: curl STOR")
        source = upload_file(big)

        def curl_stor():
            settle_page_cache()
            read_through(source)  # curl's source from memory, not the disk
            runs["curl-stor"] = curl_transfer(port, source, big, timeout=300)

        repeated("curl-stor", curl_stor)
        # Many downloads at once, every session logged in first (bench
        # starts the clock and reads the CPU after the logins).
        bench("concurrent-retr", "big-retr", plan["concurrent"], size=CONCURRENT_SIZE, duration=60,
              timeout=600)
        for f in root.glob("*.bin"):
            f.unlink()
        bench("idle", "idle", plan["idle"], timeout=300)
    except RuntimeError as e:
        result["error"] = str(e)
        log(f"  {name}: {e}")
    finally:
        server.stop()
        result["log_tail"] = server.log_tail()
    shutil.rmtree(root, ignore_errors=True)
    return result


# ------------------------------------------------------------- figures


def _val(runs, key, field):
    r = runs.get(key) or {}
    if "error" in r:
        return None
    if not r.get("ops") and r.get("errors"):
        return None
    return r.get(field)


def _latency_p50(runs, key):
    r = runs.get(key) or {}
    lat = r.get("latency_ms") or {}
    return lat.get("p50")


def _cpu_per_gib(runs, key, big):
    v = _val(runs, key, "server_cpu_us_per_op")
    return None if v is None else v * 1e-6 * (1 << 30) / big


def figures(plan: dict, iperf: dict) -> list[dict]:
    """What the table and the chart show: key, label, unit, which way is
    better, how to read it from one server's runs."""
    big = plan["big"]
    ceiling = iperf.get("mb_per_sec")
    pct = (lambda v: None if v is None or not ceiling else 100.0 * v / ceiling)
    big_label = f"{big >> 20} MiB" if big < (1 << 30) else f"{big >> 30} GiB"
    F = []

    def fig(key, label, unit, better, get, fmt, source="bench", peers=None):
        F.append({"key": key, "label": label, "unit": unit, "better": better, "get": get, "fmt": fmt,
                  "source": source, "peers": peers})

    def rate_rows(key, label, short, rate_fmt="int", peers=None, p50=False):
        """A scenario's rate, the server's CPU per operation and, with
        `p50`, the median latency."""
        fig(key, label, "/s", "higher", lambda r: _val(r, key, "ops_per_sec"), rate_fmt, peers=peers)
        fig(f"{key}-cpu", f"{short}: server CPU per op", "us", "lower",
            lambda r: _val(r, key, "server_cpu_us_per_op"), "int", peers=peers)
        if p50:
            fig(f"{key}-p50", f"{short}: latency p50", "ms", "lower", lambda r: _latency_p50(r, key), "ms")

    rate_rows("connect", "connect, 16 clients", "connect")
    # Ratios for login against the peers that hash passwords (the others
    # compare plain text).
    rate_rows("login", "login, 16 clients", "login", peers=sorted(SYSTEM_USER_SERVERS))
    rate_rows("small-retr-epsv", "small RETR 4 KiB, EPSV, 4 clients", "small RETR EPSV", p50=True)
    rate_rows("small-retr-pasv", "small RETR 4 KiB, PASV, 4 clients", "small RETR PASV")
    fig("ftplib-retr", "small RETR 4 KiB, 1 client, Python ftplib (PASV)", "/s", "higher",
        lambda r: _val(r, "ftplib-retr", "ops_per_sec"), "int", "ftplib")
    rate_rows("small-stor", "small STOR 4 KiB, EPSV, 4 clients", "small STOR", p50=True)
    rate_rows("list", f"LIST of {LIST_ENTRIES:,} entries, 4 clients", "LIST", rate_fmt="dec")
    fig("ftplib-list", f"LIST of {LIST_ENTRIES:,} entries, 1 client, Python ftplib", "/s", "higher",
        lambda r: _val(r, "ftplib-list", "ops_per_sec"), "dec", "ftplib")
    fig("big-retr", f"big RETR {big_label}, 1 client", "MB/s", "higher",
        lambda r: _val(r, "big-retr", "mb_per_sec"), "int")
    fig("big-retr-cpu", "big RETR: server CPU per GiB", "s", "lower", lambda r: _cpu_per_gib(r, "big-retr", big),
        "sec")
    fig("big-retr-iperf", "big RETR as % of iperf3", "%", "higher",
        lambda r: pct(_val(r, "big-retr", "mb_per_sec")), "pct")
    fig("curl-retr", f"big RETR {big_label}, curl", "MB/s", "higher", lambda r: _val(r, "curl-retr", "mb_per_sec"),
        "int", "curl")
    fig("curl-retr-iperf", "curl RETR as % of iperf3", "%", "higher",
        lambda r: pct(_val(r, "curl-retr", "mb_per_sec")), "pct", "curl")
    fig("big-stor", f"big STOR {big_label}, 1 client", "MB/s", "higher",
        lambda r: _val(r, "big-stor", "mb_per_sec"), "int")
    fig("big-stor-cpu", "big STOR: server CPU per GiB", "s", "lower", lambda r: _cpu_per_gib(r, "big-stor", big),
        "sec")
    fig("curl-stor", f"big STOR {big_label}, curl", "MB/s", "higher", lambda r: _val(r, "curl-stor", "mb_per_sec"),
        "int", "curl")
    n = f"{plan['concurrent']:,}"
    fig("concurrent-retr", f"{n} concurrent RETR of {CONCURRENT_SIZE >> 20} MiB, aggregate", "MB/s", "higher",
        lambda r: _val(r, "concurrent-retr", "mb_per_sec"), "int")
    fig("concurrent-retr-iperf", f"{n} concurrent RETR as % of iperf3", "%", "higher",
        lambda r: pct(_val(r, "concurrent-retr", "mb_per_sec")), "pct")
    fig("concurrent-retr-fair", f"{n} concurrent RETR: fairness (Jain's index, 1 = equal)", "", "higher",
        lambda r: (_val(r, "concurrent-retr", "fairness") or {}).get("jain_index"), "index")
    fig("idle-pss", f"idle: PSS per session ({plan['idle']} sessions)", "KiB", "lower",
        lambda r: _val(r, "idle", "pss_kib_per_session"), "dec")
    fig("idle-held", f"idle: sessions held (of {plan['idle']})", "", "higher",
        lambda r: _val(r, "idle", "ops"), "int")
    fig("pss-start", "server PSS at start", "KiB", "lower", lambda r: r.get("__pss_start"), "int")
    return F


def floor_section(floor: dict, vals: dict, own_runs: dict) -> list[str]:
    """The report's kernel floor: per scenario, the floor's CPU per
    operation and rate beside ferroftp's and the best peer's, and the
    highest ratio to the best peer that any server could show here."""
    L = ["## Kernel floor", ""]
    runs = floor.get("runs") or {}
    if "error" in floor or not runs:
        L.append(f"bench/floor.c could not be measured: {floor.get('error', 'no figure')}")
        L.append("")
        return L
    L.append("bench/floor.c is one epoll loop in C that does the least an FTP server must: it greets and "
             "answers QUIT; for small RETR it also logs any user in, answers EPSV or PASV from one listener "
             "kept per session, and sends the file from memory. Its CPU per operation is the kernel's share "
             "(the handshakes, the sends and receives, epoll, the closes), which no server can go below. Its "
             "rate, under the same load generator on the same cores, is about the most any server can show "
             "here: the load generator's own CPU per operation takes the rest of the machine. So the last "
             "column, the floor's rate divided by the best peer's, is about the highest lead any server "
             "could show against that peer on this machine.")
    L.append("")
    L.append("| scenario | floor: CPU per op | floor: rate | ferroftp: CPU per op | ferroftp: rate | "
             "load generator: CPU per op (ferroftp's run) | best peer: rate | floor rate ÷ best peer's |")
    L.append("|---|---|---|---|---|---|---|---|")
    for key, _, what in FLOOR_SCENARIOS:
        r = runs.get(key) or {}
        if "error" in r or not r.get("ops"):
            L.append(f"| {what} | - | - | - | - | - | - | - |")
            continue
        fcpu, frate = r.get("server_cpu_us_per_op"), r.get("ops_per_sec")
        own_cpu, own_rate = vals.get(f"{key}-cpu", {}).get("ferroftp"), vals.get(key, {}).get("ferroftp")
        client = _val(own_runs, key, "client_cpu_us_per_op")
        peer, prate = best_peer(vals.get(key, {}), "higher")
        own_cpu_txt = f"{own_cpu:.1f} us ({own_cpu / fcpu:.2f}x)" if own_cpu and fcpu else "-"
        L.append(f"| {what} | {fcpu:.1f} us | {frate:,.0f}/s | {own_cpu_txt} | "
                 f"{fmt(own_rate, 'int')}/s | {fmt(client, 'dec')} us | "
                 f"{f'{prate:,.0f}/s ({peer})' if prate else '-'} | {f'{frate / prate:.2f}' if prate else '-'} |")
    L.append("")
    return L


def fmt_ratio(r: float) -> str:
    if r >= 100:
        return f"{r:,.0f}"
    if r >= 0.1:
        return f"{r:.2f}"
    return f"{r:.2g}"


def fmt(v, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "int":
        return f"{v:,.0f}" if v >= 10 or v == 0 else f"{v:.1f}"
    if kind == "dec":
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.2f}"
    if kind == "sec":
        return f"{v:.2f}"
    if kind == "pct":
        return f"{v:.0f}%"
    if kind == "index":
        return f"{v:.2f}"
    return str(v)


def table_values(servers: list[str], results: dict, F: list[dict]) -> dict:
    vals = {}
    for f in F:
        row = {}
        for s in servers:
            res = results.get(s, {})
            runs = dict(res.get("runs", {}))
            runs["__pss_start"] = res.get("pss_kib_at_start")
            try:
                row[s] = f["get"](runs)
            except (TypeError, KeyError):
                row[s] = None
        vals[f["key"]] = row
    return vals


def best_peer(row: dict, better: str, among=None):
    peers = {s: v for s, v in row.items()
             if s != "ferroftp" and v is not None and v > 0 and (among is None or s in among)}
    if not peers:
        return None, None
    pick = max if better == "higher" else min
    name = pick(peers, key=peers.get)
    return name, peers[name]


# --------------------------------------------------------------- report


def machine_facts() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    osname = "?"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            osname = line.split("=", 1)[1].strip('"')
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": os.uname().release,
        "os": osname,
        "memory": mem,
        "python": sys.version.split()[0],
        "curl": out(["curl", "--version"]).splitlines()[0] if shutil.which("curl") else "?",
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def chart(path: Path, servers: list[str], vals: dict, F: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    cols = 5
    rows = math.ceil(len(F) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.6, rows * 2.9))
    palette = {"ferroftp": "#d9480f", "vsftpd": "#1c7ed6", "pure-ftpd": "#2f9e44", "proftpd": "#7048e8",
               "pyftpdlib": "#e8b100", "unftp": "#0c8599"}
    short = {"ferroftp": "ferro", "vsftpd": "vsftpd", "pure-ftpd": "pure", "proftpd": "proftpd",
             "pyftpdlib": "pyftpd", "unftp": "unftp"}
    for ax, f in zip(axes.flat, F):
        row = vals[f["key"]]
        xs = list(range(len(servers)))
        ys = [row.get(s) for s in servers]
        positive = [y for y in ys if y is not None and y > 0]
        log_scale = bool(positive) and max(positive) / min(positive) >= 10
        heights = [y if (y is not None and y > 0) else 0 for y in ys]
        ax.bar(xs, heights, color=[palette.get(s, "#888") for s in servers])
        if log_scale:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        for x, y in zip(xs, ys):
            if y is None:
                ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=7, color="#c00",
                        transform=ax.get_xaxis_transform())
            else:
                ax.text(x, y if y > 0 else 0, fmt(y, f["fmt"]), ha="center", va="bottom", fontsize=6.5)
        ax.set_xticks(xs)
        ax.set_xticklabels([short.get(s, s) for s in servers], fontsize=7, rotation=30)
        ax.tick_params(axis="y", labelsize=7)
        arrow = "higher is better" if f["better"] == "higher" else "lower is better"
        unit = f" [{f['unit']}]" if f["unit"] else ""
        ax.set_title(f"{f['label']}{unit}\n{arrow}{', log scale' if log_scale else ''}", fontsize=7.5)
        ax.margins(y=0.18)
    for ax in list(axes.flat)[len(F):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(path: Path, ctx: dict, servers: list[str], results: dict, vals: dict, F: list[dict]) -> None:
    plan, iperf = ctx["plan"], ctx["iperf3"]
    L = []
    L.append(f"# FTP servers side by side, {ctx['date']}")
    L.append("")
    L.append(f"Written by `{ctx['command']}` ({ctx['mode']} run, {ctx['elapsed_min']:.1f} min). "
             f"Raw figures: [{ctx['date']}.json]({ctx['date']}.json); chart: [{ctx['date']}.png]({ctx['date']}.png). "
             "How to read this: [bench/README.md](../README.md).")
    L.append("")
    m = ctx["machine"]
    L.append("## Machine")
    L.append("")
    L.append(f"- CPU: {m['cpu']}, nproc {m['nproc']}, memory {m['memory']}")
    L.append(f"- kernel {m['kernel']}, {m['os']}, open-files limit {m['nofile_limit']}")
    L.append(f"- load generator on the same {m['nproc']} cores: `ferroftp bench` (the ferroftp binary below), "
             f"{m['curl'].split(' (')[0]}, Python {m['python']} ftplib")
    L.append(f"- plan: {plan['duration']:g} s per rate scenario, big file {plan['big'] >> 20} MiB, "
             f"{plan['idle']} idle sessions, {plan['concurrent']:,} concurrent downloads of "
             f"{CONCURRENT_SIZE >> 20} MiB, iperf3 {plan['iperf_seconds']} s; big transfers "
             f"{'once' if plan['repeat'] == 1 else 'the median of %d runs' % plan['repeat']}")
    if m.get("page_reporting"):
        L.append(f"- {m['page_reporting']}")
    L.append("")
    L.append("## Servers")
    L.append("")
    L.append("| server | version | sessions | password check | scheduling | port, passive ports |")
    L.append("|---|---|---|---|---|---|")
    for s in servers:
        r = results.get(s, {})
        L.append(f"| {s} | {ctx['versions'].get(s, '?')} | {MODELS[s]} | {ctx['auth'].get(s, '?')} | "
                 f"{r.get('scheduling', '?')} | {r.get('port', '?')}, {r.get('passive_ports', '?')} |")
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("One row per figure, one column per server. The last column is ferroftp's figure divided by the "
             "best peer's (named): above 1 is ahead where higher is better, below 1 is ahead where lower is "
             "better. `-` is a figure the run could not get (see Errors).")
    L.append("")
    L.append("| figure | unit | better | " + " | ".join(servers) + " | ferroftp ÷ best peer |")
    L.append("|---|---|---|" + "---|" * len(servers) + "---|")
    for f in F:
        row = vals[f["key"]]
        cells = [fmt(row.get(s), f["fmt"]) for s in servers]
        peer, pv = best_peer(row, f["better"], f["peers"])
        fv = row.get("ferroftp")
        if peer and fv is not None and pv:
            ratio = fv / pv
            ahead = ratio > 1 if f["better"] == "higher" else ratio < 1
            ratio_txt = f"{fmt_ratio(ratio)} ({peer}{', hashing peers' if f['peers'] else ''}){' ✔' if ahead else ''}"
        else:
            ratio_txt = "-"
        L.append(f"| {f['label']} | {f['unit']} | {f['better']} | " + " | ".join(cells) + f" | {ratio_txt} |")
    L.append("")
    L.append("✔: ferroftp ahead of every peer on that figure.")
    L.append("")
    L.append("## Loopback ceiling")
    L.append("")
    if "error" in iperf:
        L.append(f"iperf3 failed: {iperf['error']}")
    else:
        each = ", ".join(f"{r['mb_per_sec']:,.0f} MB/s {r['when']}" if "error" not in r else
                         f"failed {r['when']} ({r['error']})" for r in iperf.get("runs", []))
        L.append(f"iperf3 ({iperf.get('version', '')}), one TCP stream on 127.0.0.1 for {iperf['seconds']} s: "
                 f"{each}. The ceiling is the better one, **{iperf['mb_per_sec']:,.0f} MB/s**; the rows "
                 f"\"as % of iperf3\" divide each big RETR by it.")
    L.append("")
    L.extend(floor_section(ctx.get("floor") or {}, vals, results.get("ferroftp", {}).get("runs", {})))
    L.append("## Errors and oddities")
    L.append("")
    any_err = False
    for s in servers:
        r = results.get(s, {})
        if r.get("error"):
            any_err = True
            L.append(f"- **{s}**: {r['error']}")
        for key, run in r.get("runs", {}).items():
            if "error" in run:
                any_err = True
                L.append(f"- **{s}**, {key}: {run['error']}")
            elif run.get("errors"):
                any_err = True
                L.append(f"- **{s}**, {key}: {run['errors']} failed operations of {run['errors'] + run.get('ops', 0)}; "
                         f"first: {run.get('first_error')}")
    if not any_err:
        L.append("None.")
    L.append("")
    notes = oddities(servers, results)
    if notes:
        L.append("### Read with care")
        L.append("")
        L.extend(notes)
        L.append("")
    L.extend(CAVEATS)
    L.append(cpu_caveat({r.get("cpu_source", "?") for r in results.values() if "runs" in r}))
    L.append("")
    L.append("## Configs used")
    L.append("")
    L.append("Templates in [bench/configs/](../configs/); the rendered texts:")
    L.append("")
    for s in servers:
        r = results.get(s, {})
        L.append(f"### {s}")
        L.append("")
        if r.get("command"):
            L.append(f"Started as `{r['command']}`.")
            L.append("")
        for title, text in r.get("configs", {}).items():
            if title == "command":
                continue
            if "\n" in text.strip():
                L.append(f"{title}:")
                L.append("")
                L.append("```")
                L.append(text.rstrip())
                L.append("```")
            else:
                L.append(f"{title}: {text}")
            L.append("")
    path.write_text("\n".join(L) + "\n")


CAVEATS = [
    "## Caveats",
    "",
    "- The load generator (ferroftp bench, curl, ftplib) and the server share the machine's cores; a server "
    "that burns less CPU leaves more to the client. Compare ratios within one run, not absolute figures "
    "across runs or machines.",
    "- `login` mostly measures the password check: the system-user servers check /etc/shadow's hash, "
    "ferroftp an argon2id hash, pyftpdlib and unFTP a plain-text password (see Servers).",
    "- Python ftplib rows are one client in the harness's own Python process: slower than ferroftp bench by "
    "nature, there to catch client artefacts, not to rank servers.",
]


def cpu_caveat(sources: set[str]) -> str:
    """The caveat line on where CPU per op was read, for the sources used."""
    if sources and all(src.startswith("cgroup") for src in sources):
        return ("- CPU per op is the kernel's CPU accounting of a cgroup made for each server (" +
                ", ".join(sorted(sources)) + "): every process the server forks, exited or not, waited for "
                "or not, in nanoseconds. It includes the server's share of the kernel's work for its sockets "
                "and files.")
    return ("- CPU per op is utime+stime of the server's whole process tree (forked children through the "
            "parent's reaped-children counters), read from /proc in 10 ms ticks: coarse for short runs, and "
            "blind to a forked process that ends unwaited-for (" + "; ".join(sorted(sources)) + ").")


# Below this, a LIST of LIST_ENTRIES entries cannot have been counted in
# full: ferroftp spends about 6 ms of its 13 in the kernel's statx and
# getdents alone.
LIST_CPU_PLAUSIBLE_US = 2000
# Below this, a big transfer's CPU cannot have been counted in full: the
# cheapest here (sendfile) takes 0.2 s per GiB.
BIG_CPU_PLAUSIBLE_S_PER_GIB = 0.08


def oddities(servers: list[str], results: dict) -> list[str]:
    """Notes the figures call for, found in the figures themselves."""
    notes = []

    def rate(s, key):
        r = results.get(s, {}).get("runs", {}).get(key) or {}
        return None if "error" in r else r.get("ops_per_sec")

    for s in servers:
        runs = results.get(s, {}).get("runs", {})
        for bench_key, lib_key, what in (("small-retr-pasv", "ftplib-retr", "small RETR"),
                                         ("list", "ftplib-list", "LIST")):
            b, lib = rate(s, bench_key), rate(s, lib_key)
            clients = (runs.get(bench_key) or {}).get("clients") or 1
            if b is not None and lib and lib > 3 * b:
                notes.append(
                    f"- {s}, {what}: ferroftp bench gets {b:,.1f}/s with {clients} clients, Python ftplib "
                    f"{lib:,.1f}/s with one. ferroftp bench closes the data connection only after reading "
                    f"the final reply; a server that waits for the client's close before sending that reply "
                    f"stalls it. Trust the ftplib (and curl) rows for {s}.")
        lib = rate(s, "ftplib-retr")
        if lib is not None and lib < 50:
            notes.append(f"- {s}: {lib:,.1f} small RETRs per second with Python ftplib as well: a stall of "
                         f"~{1000 / lib:,.0f} ms per transfer on the server's side (see README).")
        b = (runs.get("big-retr") or {}).get("mb_per_sec")
        c = (runs.get("curl-retr") or {}).get("mb_per_sec")
        if b and c and c > 2 * b:
            notes.append(f"- {s}: big RETR {b:,.0f} MB/s with ferroftp bench but {c:,.0f} MB/s with curl; "
                         "see the data-connection note above.")
        list_cpu = (runs.get("list") or {}).get("server_cpu_us_per_op")
        if list_cpu is not None and list_cpu < LIST_CPU_PLAUSIBLE_US:
            notes.append(
                f"- {s}: {list_cpu:,.0f} us of server CPU per LIST of {LIST_ENTRIES:,} entries, less than "
                f"the kernel alone needs to read and stat them (several ms): the CPU of the processes that "
                f"did the listing was not all counted. A process that ends without being waited for by one "
                f"still in the tree (say, re-parented to init) takes its CPU time with it. Its LIST CPU "
                f"figure is a lower bound; compare with the others'.")
        for key, what in (("big-stor", "big STOR"), ("big-retr", "big RETR")):
            per_op = (runs.get(key) or {}).get("server_cpu_us_per_op")
            size = (runs.get(key) or {}).get("bytes")
            if per_op is not None and size:
                per_gib = per_op / 1e6 / (size / (1 << 30))
                if per_gib < BIG_CPU_PLAUSIBLE_S_PER_GIB:
                    notes.append(
                        f"- {s}: {per_gib:.2f} s of server CPU per GiB of {what}, less than copying a GiB "
                        f"once takes: the CPU of the process that moved the data was not all counted (a "
                        f"process that ends without being waited for by one in the tree takes its CPU time "
                        f"with it). A lower bound.")
        conc = runs.get("concurrent-retr") or {}
        if conc.get("errors") and conc.get("clients"):
            notes.append(
                f"- {s}: {conc['errors']:,} logins or downloads failed among the {conc['clients']:,} "
                f"concurrent clients (first: {conc.get('first_error')}). A client that could not log in "
                f"downloads nothing, so the {conc.get('ops', 0):,} downloads done ran fewer at once than "
                f"planned, and its concurrent figures are not for {conc['clients']:,} at once.")
        entries = (runs.get("ftplib-list") or {}).get("entries")
        if entries is not None and entries < LIST_ENTRIES:
            notes.append(f"- {s}: LIST returned {entries:,} of {LIST_ENTRIES:,} entries: a listing cap.")
        idle = runs.get("idle") or {}
        if idle and "error" not in idle and idle.get("errors"):
            notes.append(f"- {s}: held {idle.get('ops')} of {idle.get('clients')} idle sessions; first "
                         f"refusal: {idle.get('first_error')}")
        c = rate(s, "connect")
        if s == "proftpd" and c is not None and c < 100:
            notes.append(f"- proftpd: {c:,.1f} connections per second: its standalone daemon sleeps 200 ms "
                         "whenever select() is interrupted by SIGCHLD, so it accepts slowly while sessions "
                         "end (see README).")
    return notes


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s per scenario, 256 MiB big file, 500 idle sessions")
    ap.add_argument("--only", help="comma-separated servers: " + ",".join(SERVERS))
    ap.add_argument("--ferroftp", help="the ferroftp binary (default: target/release/ferroftp, built if missing)")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="where DATE.md, .json and .png go (default: bench/results; an ad-hoc run elsewhere "
                         "leaves the published results alone)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        raise SystemExit("compare.py needs root: it adds a system user, a PAM service file and Debian packages")
    servers = list(SERVERS)
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [s for s in wanted if s not in SERVERS]
        if bad:
            raise SystemExit(f"unknown server(s) {bad}; known: {', '.join(SERVERS)}")
        servers = [s for s in SERVERS if s in wanted]

    ensure_venv_and_reexec()
    started = time.monotonic()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    plan = {
        "duration": 2.0 if args.quick else 5.0,
        "big": (256 << 20) if args.quick else (1 << 30),
        "idle": 500 if args.quick else 1000,
        "concurrent": 200 if args.quick else 1000,
        "iperf_seconds": 3 if args.quick else 5,
        "repeat": 1 if args.quick else 3,
    }
    for d in (RUN, RUN / "logs", RUN / "conf", CACHE, args.out):
        d.mkdir(parents=True, exist_ok=True)

    # Installs.
    Apt.install(["curl", "iperf3", "gcc"])
    ff, ff_version = ensure_ferroftp(args.ferroftp)
    versions = {"ferroftp": ff_version}
    binaries = {}
    install_errors = {}
    pips = pip_versions()
    for s in servers:
        try:
            if s in DEBS:
                binaries[s], v = ensure_deb_server(s)
                versions[s] = f"{v} (Debian {DEBS[s][0]})"
            elif s == "unftp":
                binaries[s], versions[s] = ensure_unftp()
                versions[s] += " (cargo install --locked, features auth_jsonfile)"
            elif s == "pyftpdlib":
                versions[s] = f"{pips['pyftpdlib']} (pip, Python {sys.version.split()[0]})"
        except (subprocess.CalledProcessError, OSError, StopIteration) as e:
            install_errors[s] = f"install failed: {e}"
            log(f"{s}: install failed: {e}")

    scheme = ensure_user()
    pam = Path("/etc/pam.d") / PAM_SERVICE
    pam_text = (CONFIGS / "vsftpd.pam").read_text()
    if not pam.exists() or pam.read_text() != pam_text:
        pam.write_text(pam_text)
    auth = {"ferroftp": "argon2id (users file)", "pyftpdlib": "plain text (DummyAuthorizer)",
            "unftp": "plain text (JSON users file)"}
    for s in SYSTEM_USER_SERVERS:
        auth[s] = f"/etc/shadow ({scheme})" + (" via PAM" if s == "vsftpd" else "")

    machine = machine_facts()
    iperf_runs = [measure_ceiling(plan, "before the servers")]

    results: dict = {}

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Memory written once: the big file's page cache twice over, the
    # clients' buffers, and room to spare.
    memory = GuestMemory(warm_gib=min(8, max(1, available_gib() - 4)))
    # curl's upload source, written and on the disk before the first
    # server: made during the first server's turn, its write-out (the sync
    # before each big upload) fell on that server's first curl STOR alone
    # (ferroftp's: 2,153 MB/s, then 3,664 and 3,563 over the same file).
    upload_file(plan["big"])
    subprocess.run(["sync"], check=False)
    try:
        with memory:
            for s in servers:
                if s in install_errors:
                    results[s] = {"error": install_errors[s], "port": SERVERS[s]["port"],
                                  "passive_ports": "%d-%d" % SERVERS[s]["pasv"]}
                    continue
                log(f"{s} on {HOST}:{SERVERS[s]['port']}")
                results[s] = run_server(s, ff, binaries, plan)
    except KeyboardInterrupt:
        # run_server has stopped its server on the way out.
        log("interrupted")
        return 130
    if memory.saved is not None:
        machine["page_reporting"] = (f"free page reporting (virtio-balloon) paused during the run, "
                                     f"{memory.warm_gib} GiB written once first (see bench/README.md)")

    for f in RUN.glob("upload-*.bin"):
        f.unlink()
    iperf_runs.append(measure_ceiling(plan, "after the servers"))
    floor = measure_floor(ff, plan)
    good = [r for r in iperf_runs if "error" not in r]
    iperf = dict(max(good, key=lambda r: r["mb_per_sec"])) if good else dict(iperf_runs[0])
    iperf["runs"] = iperf_runs
    elapsed = (time.monotonic() - started) / 60
    date = datetime.date.today().isoformat()
    command = os.environ.get("FTPBENCH_ARGV0", "python3 bench/compare.py")
    if not command.startswith("python"):
        command = "python3 " + command
    ctx = {
        "date": date,
        "command": command,
        "mode": "quick" if args.quick else "full",
        "elapsed_min": elapsed,
        "machine": machine,
        "plan": plan,
        "iperf3": iperf,
        "floor": floor,
        "versions": versions,
        "pip": pips,
        "auth": auth,
    }
    F = figures(plan, iperf)
    vals = table_values(servers, results, F)
    args.out.mkdir(parents=True, exist_ok=True)
    md, js, png = args.out / f"{date}.md", args.out / f"{date}.json", args.out / f"{date}.png"
    raw = dict(ctx)
    raw["servers"] = results
    raw["figures"] = {f["key"]: {"label": f["label"], "unit": f["unit"], "better": f["better"],
                                 "values": vals[f["key"]]} for f in F}
    js.write_text(json.dumps(raw, indent=2, default=str) + "\n")
    write_markdown(md, ctx, servers, results, vals, F)
    try:
        chart(png, servers, vals, F, f"ferroftp and peers on loopback, {date} ({ctx['mode']} run, "
                                      f"{machine['nproc']} cores shared with the load generator)")
    except Exception as e:  # the report matters more than the picture
        log(f"chart failed: {e}")
    log(f"wrote {md}, {js}, {png} in {elapsed:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
