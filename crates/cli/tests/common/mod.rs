//! Helpers shared by the binary's tests: run `ferroftp serve` on a free
//! port and stop it when dropped.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::BufRead;
use std::io::BufReader;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_ferroftp");

pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ferroftp serve ARGS` on a free port; returns it and the port.
pub fn serve(args: &[&str]) -> (Running, u16) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (Running(child), port)
}

/// Starts an FTPS server (explicit and implicit) with a fresh self-signed
/// certificate; returns it, the explicit port and the implicit port.
pub fn serve_tls(root: &std::path::Path, certs: &std::path::Path) -> (Running, u16, u16) {
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let out = Command::new(BIN)
        .args(["cert", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--implicit-tls-listen", "127.0.0.1:0", "--anonymous-write"])
        .args([
            "--root",
            root.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    for _ in 0..3 {
        out.read_line(&mut text).unwrap();
    }
    let port_after = |marker: &str| -> u16 {
        text.split(marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no {marker:?} in {text:?}"))
    };
    let explicit = port_after("listening on 127.0.0.1:");
    let implicit = port_after("implicit FTPS listening on 127.0.0.1:");
    (Running(child), explicit, implicit)
}
