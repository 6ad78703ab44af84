//! The project's own client over FTPS: get/put round trips in passive and
//! active mode, explicit (ftpes://) and implicit (ftps://), and probe. The
//! server requires TLS session reuse, so these also show the client
//! resumes the control connection's session on every data connection.

mod common;

use std::process::Command;

use common::{serve_tls, BIN};
use serde_json::Value;

fn ferroftp(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn get_and_put_round_trip_over_tls_in_every_mode() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_server, explicit, implicit) = serve_tls(root.path(), work.path());
    let body: Vec<u8> = (0..2_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let src = work.path().join("测试 src.bin");
    std::fs::write(&src, &body).unwrap();
    for base in [format!("ftpes://127.0.0.1:{explicit}/"), format!("ftps://127.0.0.1:{implicit}/")] {
        for mode in ["pasv", "epsv", "port", "eprt"] {
            let put = ferroftp(&["put", "-k", "--mode", mode, src.to_str().unwrap(), &base]);
            assert!(put.status.success(), "{base} {mode}: {}", String::from_utf8_lossy(&put.stderr));
            assert!(std::fs::read(root.path().join("测试 src.bin")).unwrap() == body, "{base} {mode}: stored bytes");
            let back = work.path().join(format!("back-{mode}.bin"));
            let url = format!("{base}%E6%B5%8B%E8%AF%95%20src.bin");
            let get = ferroftp(&["get", "-k", "--mode", mode, &url, "-o", back.to_str().unwrap()]);
            assert!(get.status.success(), "{base} {mode}: {}", String::from_utf8_lossy(&get.stderr));
            assert!(std::fs::read(&back).unwrap() == body, "{base} {mode}: downloaded bytes");
        }
    }
    // Without --insecure the self-signed certificate is refused.
    let refused = ferroftp(&["ls", &format!("ftpes://127.0.0.1:{explicit}/")]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("certificate"));
}

#[test]
fn probe_over_tls() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f.txt"), b"over tls").unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_server, explicit, implicit) = serve_tls(root.path(), work.path());
    for url in [format!("ftpes://127.0.0.1:{explicit}/"), format!("ftps://127.0.0.1:{implicit}/")] {
        let out = ferroftp(&["probe", "-k", "--json", "--write", &url]);
        assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stdout));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        for m in report["modes"].as_array().unwrap() {
            assert_eq!(m["works"], true, "{url}: {m}");
            assert_eq!(m["write_ok"], true, "{url}: {m}");
            assert_eq!(m["retr_path"], "/f.txt", "{url}: {m}");
        }
        let transcript = report["modes"][0]["transcript"].to_string();
        assert!(transcript.contains("PROT P"), "{transcript}");
    }
    let out = ferroftp(&["probe", "--json", &format!("ftpes://127.0.0.1:{explicit}/")]);
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["fatal"]["cause"], "tls_failed", "{report}");
    assert!(report["fatal"]["fix"].as_str().unwrap().contains("--insecure"));
}
