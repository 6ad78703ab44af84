//! `ferroftp probe` against ferroftp with each mode deliberately broken by
//! configuration, and against a scripted server that behaves like one
//! behind a rejecting firewall. Every address is a loopback one; the
//! "wrong" address is 127.0.0.9.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use common::{serve, BIN};
use serde_json::Value;

/// Runs `ferroftp probe --json ARGS`; returns the exit code and the report.
fn probe_json(args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN).arg("probe").arg("--json").args(args).output().unwrap();
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), report)
}

fn mode<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["modes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mode"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn cause(report: &Value, name: &str) -> String {
    mode(report, name)["failure"]["cause"].as_str().unwrap_or("none").to_string()
}

fn root_with_files() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("small.txt"), b"twelve bytes").unwrap();
    std::fs::write(root.path().join("测试 文件.bin"), vec![7u8; 5000]).unwrap();
    root
}

#[test]
fn every_mode_works_against_a_healthy_server() {
    let root = root_with_files();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap(), "--anonymous-write"]);
    let url = format!("ftp://127.0.0.1:{port}/");
    let (code, report) = probe_json(&[&url, "--write"]);
    assert_eq!(code, 0, "{report}");
    for name in ["PASV", "EPSV", "PORT", "EPRT"] {
        let m = mode(&report, name);
        assert_eq!(m["works"], true, "{m}");
        assert_eq!(m["retr_path"], "/small.txt", "the smallest non-empty file: {m}");
        assert_eq!(m["write_ok"], true, "{m}");
        assert!(m["bytes"].as_u64().unwrap() > 12, "{m}");
    }
    // The seed's arithmetic, checked against the 227 reply itself.
    let pasv = mode(&report, "PASV");
    let reply = pasv["setup_reply"].as_str().unwrap();
    let inner = &reply[reply.find('(').unwrap() + 1..reply.find(')').unwrap()];
    let n: Vec<u32> = inner.split(',').map(|x| x.parse().unwrap()).collect();
    let port = n[4] * 256 + n[5];
    assert_eq!(pasv["data_peer"], format!("127.0.0.1:{port}"));
    assert!(pasv["arithmetic"].as_str().unwrap().ends_with(&format!("port {port} = {}*256+{}", n[4], n[5])), "{pasv}");
    // Nothing of the probe is left behind.
    let names: Vec<String> =
        std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_wrong_announced_address_is_named_as_nat_misconfiguration() {
    let root = root_with_files();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap(), "--public-address", "127.0.0.9"]);
    let (code, report) = probe_json(&[&format!("ftp://127.0.0.1:{port}/")]);
    assert_eq!(code, 0, "EPSV still works: {report}");
    let pasv = mode(&report, "PASV");
    assert_eq!(pasv["works"], false);
    assert_eq!(pasv["failure"]["cause"], "nat_address", "{pasv}");
    let detail = pasv["failure"]["detail"].as_str().unwrap();
    assert!(detail.contains("127.0.0.9") && detail.contains("works instead"), "{detail}");
    assert!(pasv["failure"]["fix"].as_str().unwrap().contains("--public-address"));
    assert_eq!(mode(&report, "EPSV")["works"], true);
}

#[test]
fn switched_off_modes_are_named() {
    let root = root_with_files();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "passive_enabled = false\n").unwrap();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap(), "--config", config.to_str().unwrap()]);
    let (code, report) = probe_json(&[&format!("ftp://127.0.0.1:{port}/")]);
    assert_eq!(code, 0);
    assert_eq!(cause(&report, "PASV"), "passive_refused");
    assert_eq!(cause(&report, "EPSV"), "passive_refused");
    assert_eq!(mode(&report, "PORT")["works"], true);

    std::fs::write(&config, "active_enabled = false\n").unwrap();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap(), "--config", config.to_str().unwrap()]);
    let (code, report) = probe_json(&[&format!("ftp://127.0.0.1:{port}/"), "--mode", "port", "--mode", "eprt"]);
    assert_eq!(code, 1, "no mode tried works: {report}");
    assert_eq!(cause(&report, "PORT"), "active_refused");
    assert_eq!(cause(&report, "EPRT"), "active_refused");
    assert_eq!(report["modes"].as_array().unwrap().len(), 2);
}

#[test]
fn bounce_protection_is_explained() {
    let root = root_with_files();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap()]);
    let (code, report) =
        probe_json(&[&format!("ftp://127.0.0.1:{port}/"), "--mode", "port", "--active-address", "127.0.0.9"]);
    assert_eq!(code, 1);
    let port_mode = mode(&report, "PORT");
    assert_eq!(port_mode["failure"]["cause"], "active_refused");
    assert!(port_mode["failure"]["detail"].as_str().unwrap().contains("bounce"), "{port_mode}");
    assert!(port_mode["failure"]["fix"].as_str().unwrap().contains("you announced 127.0.0.9"), "{port_mode}");
}

#[test]
fn login_and_connection_failures_are_fatal() {
    let root = root_with_files();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap(), "--no-anonymous"]);
    let (code, report) = probe_json(&[&format!("ftp://127.0.0.1:{port}/")]);
    assert_eq!(code, 2);
    assert_eq!(report["fatal"]["cause"], "login_refused", "{report}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, report) = probe_json(&[&format!("ftp://127.0.0.1:{closed_port}/")]);
    assert_eq!(code, 2);
    assert_eq!(report["fatal"]["cause"], "connect_failed", "{report}");
    assert!(report["fatal"]["detail"].as_str().unwrap().contains("refused"));
}

/// A scripted server: answers login with `login_reply`, and announces a
/// passive port where nothing listens, as a server behind a firewall that
/// rejects its passive range would.
fn scripted_server(login_reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || converse(stream, login_reply, dead));
        }
    });
    port
}

fn converse(stream: TcpStream, login_reply: &str, dead: u16) {
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let _ = w.write_all(b"220 scripted server\r\n");
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let answer = match verb.as_str() {
            "USER" => "331 password please".to_string(),
            "PASS" => login_reply.to_string(),
            "TYPE" => "200 ok".to_string(),
            "PASV" => format!("227 Entering Passive Mode (127,0,0,1,{},{})", dead >> 8, dead & 0xff),
            "EPSV" => format!("229 Entering Extended Passive Mode (|||{dead}|)"),
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n");
                return;
            }
            _ => "502 not here".to_string(),
        };
        let _ = w.write_all(format!("{answer}\r\n").as_bytes());
        line.clear();
    }
}

#[test]
fn a_passive_port_that_refuses_is_a_firewall_or_range_problem() {
    let port = scripted_server("230 welcome");
    let (code, report) = probe_json(&[&format!("ftp://127.0.0.1:{port}/"), "--mode", "pasv", "--mode", "epsv"]);
    assert_eq!(code, 1, "{report}");
    for name in ["PASV", "EPSV"] {
        let m = mode(&report, name);
        assert_eq!(m["failure"]["cause"], "passive_port_refused", "{m}");
        assert!(m["failure"]["fix"].as_str().unwrap().contains("passive port range"), "{m}");
    }
}

#[test]
fn a_server_demanding_tls_is_recognised() {
    let port = scripted_server("530 Non-anonymous sessions must use encryption.");
    let (code, report) = probe_json(&[&format!("ftp://bob:pw@127.0.0.1:{port}/")]);
    assert_eq!(code, 2);
    assert_eq!(report["fatal"]["cause"], "tls_required", "{report}");
}

#[test]
fn text_output_shows_the_arithmetic_and_the_transcript() {
    let root = root_with_files();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap()]);
    let out = Command::new(BIN).args(["probe", "-v", &format!("ftp://127.0.0.1:{port}/")]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("> USER anonymous") && text.contains("< 230 "), "{text}");
    assert!(text.contains("> PASS ****") && !text.contains("ferroftp@"), "passwords stay hidden: {text}");
    assert!(text.contains("*256+"), "{text}");
    assert!(text.trim_end().ends_with("4 of 4 modes work."), "{text}");
}
