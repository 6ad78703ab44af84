//! Helpers shared by the binary's tests: run `ferroftp serve` on a free
//! port and stop it when dropped. The ports come from its start-up lines
//! on stdout, read in one place ([`start`]).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::BufRead;
use std::io::BufReader;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_ferroftp");

/// What `serve` prints before the control port.
pub const LISTENING: &str = "listening on 127.0.0.1:";
/// What `serve` prints before the implicit-FTPS port.
pub const IMPLICIT_LISTENING: &str = "implicit FTPS listening on 127.0.0.1:";

pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (`ferroftp serve` on 127.0.0.1 port 0, or a shell
/// that execs one) with its stdout piped, and reads what it prints at
/// start until each of `markers` is followed by a port; returns the
/// process and those ports, in the order of `markers`.
pub fn start(mut command: Command, markers: &[&str]) -> (Running, Vec<u16>) {
    let mut child = Running(command.stdout(Stdio::piped()).spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut text = String::new();
    loop {
        let ports: Option<Vec<u16>> = markers.iter().map(|marker| port_after(&text, marker)).collect();
        if let Some(ports) = ports {
            return (child, ports);
        }
        let n = out.read_line(&mut text).unwrap();
        assert!(n > 0, "the server ended before naming its ports {markers:?}: {text:?}");
    }
}

/// The port after the first `marker` in `text`, once its line is whole.
fn port_after(text: &str, marker: &str) -> Option<u16> {
    let rest = text.split(marker).nth(1)?;
    let (port, _) = rest.split_once(|c: char| c.is_whitespace())?;
    Some(port.parse().unwrap_or_else(|_| panic!("no port after {marker:?} in {text:?}")))
}

/// Starts `ferroftp serve ARGS` on a free port; returns it and the port.
pub fn serve(args: &[&str]) -> (Running, u16) {
    let mut command = Command::new(BIN);
    command.arg("serve").args(["--listen", "127.0.0.1:0"]).args(args).stderr(Stdio::null());
    let (server, ports) = start(command, &[LISTENING]);
    (server, ports[0])
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
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--implicit-tls-listen", "127.0.0.1:0", "--anonymous-write"])
        .args([
            "--root",
            root.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .stderr(Stdio::null());
    // The control line comes first, so LISTENING finds its port.
    let (server, ports) = start(command, &[LISTENING, IMPLICIT_LISTENING]);
    (server, ports[0], ports[1])
}
