#!/usr/bin/env python3
"""ferroftp's batch_scheduling settings side by side: true (every thread
under SCHED_BATCH), false (SCHED_OTHER throughout) and "transfers"
(streaming threads under SCHED_BATCH while they stream), across the
workloads operators have, runs rotating one after another so every
setting sees the same machine.

    python3 bench/sched.py [--ferroftp target/release/ferroftp] [--runs 3]
                           [--quick] [--out bench/results]

Workloads (each run starts a fresh server on 127.0.0.1 and stops it):
- mixed: 50 sessions, each looping STOR 64 KiB, RETR (length checked),
  LIST, SIZE (checked), RNFR/RNTO, DELE (`ferroftp bench --scenario
  mixed`): the soak's mix; operations a second.
- mixed + busy: the same with two `nice -n 19` busy loops on the machine
  (a nightly backup, a virus scan).
- small-retr: 4 clients downloading 4 KiB files, EPSV; files a second.
- small-retr + busy.
- big-stor / big-retr: one 1 GiB upload and download with curl; MB/s.

Writes DIR/DATE-sched.json (every run) and DIR/DATE-sched.md (medians,
ranges, and each setting's median over the best one's per workload). Binds only 127.0.0.1; the
busy loops and every server stop with the script.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"


SETTINGS = {"true": "true", "false": "false", "transfers": '"transfers"'}


def start_server(binary, root, setting):
    config = root / "sched.toml"
    config.write_text(f"batch_scheduling = {SETTINGS[setting]}\nmax_clients_per_ip = 200\n")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"{HOST}:0", "--root", str(root / "files"), "--anonymous-write",
         "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    match = re.search(r"listening on \S+:(\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, int(match.group(1))


def bench(binary, port, scenario, clients, duration, size):
    out = subprocess.run(
        [binary, "bench", f"ftp://{HOST}:{port}/", "--scenario", scenario, "--clients", str(clients),
         "--duration", str(duration), "--size", str(size), "--json"],
        capture_output=True, text=True, timeout=duration + 120)
    if out.returncode != 0:
        raise SystemExit(f"bench {scenario} failed: {out.stderr}")
    report = json.loads(out.stdout)
    if report.get("errors", 0):
        raise SystemExit(f"bench {scenario}: {report['errors']} errors: {report.get('first_error')}")
    return report["ops_per_sec"]


def curl_rate(args):
    out = subprocess.run(["curl", "-sS", "-w", "%{speed_upload} %{speed_download}", *args],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"curl failed: {out.stderr}")
    up, down = (float(x) for x in out.stdout.split())
    return max(up, down) / 1e6


class Busy:
    """Two nice-19 busy loops, one per core, for the length of a run."""

    def __enter__(self):
        self.procs = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
                      for _ in range(2)]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def run_once(binary, workdir, setting, workload, quick):
    files = workdir / "files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir()
    proc, port = start_server(binary, workdir, setting)
    duration = 4 if quick else 10
    try:
        if workload in ("mixed", "mixed + busy"):
            with Busy() if "busy" in workload else _Null():
                return bench(binary, port, "mixed", 50, duration, 65536)
        if workload in ("small-retr", "small-retr + busy"):
            with Busy() if "busy" in workload else _Null():
                return bench(binary, port, "small-retr", 4, duration, 4096)
        big = workdir / "big.bin"
        if workload == "big-stor":
            return curl_rate(["-T", str(big), f"ftp://{HOST}:{port}/big.bin"])
        if workload == "big-retr":
            shutil.copyfile(big, files / "big.bin")
            return curl_rate(["-o", "/dev/null", f"ftp://{HOST}:{port}/big.bin"])
        raise ValueError(workload)
    finally:
        proc.kill()
        proc.wait()


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


WORKLOADS = ["mixed", "mixed + busy", "small-retr", "small-retr + busy", "big-stor", "big-retr"]
UNITS = {"mixed": "ops/s", "mixed + busy": "ops/s", "small-retr": "files/s", "small-retr + busy": "files/s",
         "big-stor": "MB/s", "big-retr": "MB/s"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ferroftp", default="target/release/ferroftp")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4 s runs and a 256 MiB big file")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    binary = os.path.abspath(args.ferroftp)
    workdir = Path(tempfile.mkdtemp(prefix="ferroftp-sched-"))
    with open(workdir / "big.bin", "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(256 if args.quick else 1024):
            f.write(block)
    names = list(SETTINGS)
    results = {w: {s: [] for s in names} for w in WORKLOADS}
    try:
        for run in range(args.runs):
            for workload in WORKLOADS:
                # Rotate which setting goes first, so none always meets a
                # warmer page cache.
                for setting in names[run % len(names):] + names[:run % len(names)]:
                    figure = run_once(binary, workdir, setting, workload, args.quick)
                    results[workload][setting].append(figure)
                    print(f"run {run + 1} {workload:18} batch_scheduling={setting:9} "
                          f"{figure:10.1f} {UNITS[workload]}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{datetime.date.today().isoformat()}-sched"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1))
    lines = ["# batch_scheduling: true, false and \"transfers\"", "",
             f"{args.runs} runs each, rotating; {'quick' if args.quick else 'full'} runs; "
             f"{os.cpu_count()} cores. Median (min-max), and in brackets the median over the best setting's.", "",
             "| workload | unit | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for w in WORKLOADS:
        best = max(statistics.median(results[w][s]) for s in names)
        cells = []
        for s in names:
            xs = results[w][s]
            m = statistics.median(xs)
            cells.append(f"{m:.0f} ({min(xs):.0f}-{max(xs):.0f}) [{m / best:.2f}]")
        lines.append(f"| {w} | {UNITS[w]} | " + " | ".join(cells) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
