//! `ferroftp bench` as a smoke test: every scenario runs briefly against a
//! real server and reports operations without errors. No timing is
//! asserted: speed lives in the benchmarks, not in tests.

mod common;

use std::process::Command;

use common::{serve, BIN};
use serde_json::Value;

fn bench(url: &str, args: &[&str]) -> Value {
    let out = Command::new(BIN).arg("bench").arg(url).arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_scenario_runs_and_counts_its_operations() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "max_clients_per_ip = 200\n").unwrap();
    let (server, port) =
        serve(&["--root", root.path().to_str().unwrap(), "--anonymous-write", "--config", config.to_str().unwrap()]);
    let pid = server.0.id().to_string();
    let url = format!("ftp://127.0.0.1:{port}/");
    for (scenario, extra) in [
        ("connect", vec!["--clients", "4", "--count", "40"]),
        ("login", vec!["--clients", "4", "--count", "20"]),
        ("small-retr", vec!["--clients", "4", "--count", "20", "--mode", "pasv"]),
        ("small-stor", vec!["--clients", "4", "--count", "20", "--mode", "port"]),
        ("list", vec!["--clients", "4", "--count", "10"]),
        // 4 clients x 2 rounds of STOR, RETR, LIST, SIZE, RNFR/RNTO, DELE.
        ("mixed", vec!["--clients", "4", "--count", "48", "--size", "5000"]),
        ("big-retr", vec!["--clients", "2", "--size", "3000000"]),
        ("big-stor", vec!["--clients", "2", "--size", "3000000", "--mode", "eprt"]),
    ] {
        let mut args = vec!["--scenario", scenario, "--duration", "30", "--pid", &pid];
        args.extend(extra);
        let report = bench(&url, &args);
        assert_eq!(report["errors"], 0, "{scenario}: {report}");
        let ops = report["ops"].as_u64().unwrap();
        assert!(ops > 0, "{scenario}: {report}");
        assert!(report["server_cpu_us_per_op"].as_f64().is_some(), "{scenario}: {report}");
        // The load generator did work of its own for every operation.
        let own = report["client_cpu_us_per_op"].as_f64().unwrap_or(0.0);
        assert!(own > 0.0, "{scenario}: no load generator CPU: {report}");
        if scenario.starts_with("big") {
            assert_eq!(report["bytes"].as_u64().unwrap(), ops * 3_000_000, "{scenario}: {report}");
            // One rate per transfer: the slowest is no faster than the fastest.
            let f = &report["fairness"];
            let (min, max) = (f["min_mb_per_sec"].as_f64().unwrap(), f["max_mb_per_sec"].as_f64().unwrap());
            assert!(0.0 < min && min <= max, "{scenario}: {report}");
            let jain = f["jain_index"].as_f64().unwrap();
            assert!((0.5..=1.0 + 1e-9).contains(&jain), "two transfers: the index is between 1/2 and 1: {report}");
        }
    }
    // The two big uploads really landed whole (which client took which
    // operation, and so the names, is up to the scheduler).
    let big: Vec<Vec<u8>> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .filter(|bytes| bytes.len() == 3_000_000)
        .collect();
    assert_eq!(big.len(), 2 + 1, "two uploads and the big-retr source file");
    for stored in &big {
        assert!(stored.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    }
    // An existing file instead of an upload, and a transfer longer than
    // the run and its grace is cut off rather than awaited. The file is
    // sparse: 8 GiB of zeros that take no disk.
    let huge = std::fs::File::create(root.path().join("huge.bin")).unwrap();
    huge.set_len(8 << 30).unwrap();
    let cut = bench(
        &url,
        &["--scenario", "big-retr", "--clients", "1", "--file", "huge.bin", "--duration", "0.2", "--grace", "0.3"],
    );
    assert_eq!(
        (cut["ops"].as_u64(), cut["errors"].as_u64(), cut["cut_off"].as_u64()),
        (Some(0), Some(0), Some(1)),
        "{cut}"
    );
    // A given small file is what small-retr downloads (not a 4 KiB upload).
    std::fs::write(root.path().join("given.txt"), b"eleven byte").unwrap();
    let small = bench(&url, &["--scenario", "small-retr", "--clients", "2", "--count", "6", "--file", "/given.txt"]);
    assert_eq!((small["errors"].as_u64(), small["bytes"].as_u64()), (Some(0), Some(6 * 11)), "{small}");
    // Big runs hold every client at the start line until all have tried
    // to log in, failed logins too: a run whose logins all fail still
    // ends, each failure an error, and the exit status says so.
    let refused = Command::new(BIN)
        .args(["bench", &format!("ftp://nobody:wrong@127.0.0.1:{port}/"), "--json"])
        .args(["--scenario", "big-retr", "--clients", "3", "--file", "given.txt", "--duration", "5", "--pid", &pid])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", String::from_utf8_lossy(&refused.stderr));
    let refused: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!((refused["ops"].as_u64(), refused["errors"].as_u64()), (Some(0), Some(3)), "{refused}");
    let idle = bench(&url, &["--scenario", "idle", "--clients", "100", "--pid", &pid]);
    assert_eq!(idle["ops"], 100, "{idle}");
    assert!(idle["pss_kib_per_session"].as_f64().is_some(), "{idle}");
}

/// bench/floor.c, the kernel floor compare.py measures beside the
/// servers, builds and serves the scenarios it stands in for: the bench
/// runs against it without errors and reads its CPU. (Its figures are for
/// bench/compare.py; none is asserted here.)
#[test]
fn the_kernel_floor_serves_connect_and_small_retr() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("floor");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/floor.c");
    let built = Command::new("gcc").args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"]).arg(&exe).arg(source).output();
    let built = built.expect("gcc runs");
    assert!(built.status.success(), "gcc: {}", String::from_utf8_lossy(&built.stderr));
    let mut floor = common::Running(
        Command::new(&exe).arg("0").stdout(std::process::Stdio::piped()).spawn().expect("the floor starts"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(floor.0.stdout.take().unwrap()), &mut line).unwrap();
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    let port = port.unwrap_or_else(|| panic!("no port in {line:?}"));
    let pid = floor.0.id().to_string();
    let url = format!("ftp://u:p@127.0.0.1:{port}/");
    for (scenario, mode) in [("connect", "epsv"), ("small-retr", "epsv"), ("small-retr", "pasv")] {
        let args = ["--scenario", scenario, "--mode", mode, "--clients", "4", "--count", "200", "--pid", &pid];
        let report = bench(&url, &args);
        assert_eq!((report["errors"].as_u64(), report["ops"].as_u64()), (Some(0), Some(200)), "{report}");
        if scenario == "small-retr" {
            // What the setup uploaded comes back whole, 4 KiB a file.
            assert_eq!(report["bytes"].as_u64(), Some(200 * 4096), "{report}");
        }
        assert!(report["server_cpu_us_per_op"].as_f64().is_some(), "{report}");
    }
}
