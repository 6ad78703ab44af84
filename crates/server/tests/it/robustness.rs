//! Hostile and malformed input: long lines, NUL bytes, invalid UTF-8,
//! Telnet sequences, on both storage backends; symlinks that try to leave
//! the root, on the local backend (attacks.rs has `..` and absolute paths
//! on both).

use crate::helpers::*;

on_both_backends!(overlong_line_gets_500_and_the_session_goes_on, garbage_never_wedges_a_session);

fn overlong_line_gets_500_and_the_session_goes_on(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.login();
    let long = vec![b'A'; 100_000];
    c.send_raw(b"NOOP ");
    c.send_raw(&long);
    c.send_raw(b"\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 500, "{text}");
    c.ok("NOOP", 200);
    // Exactly at the limit is fine.
    let at_limit = format!("NOOP {}", "a".repeat(4096 - 5));
    c.ok(&at_limit, 200);
}

fn garbage_never_wedges_a_session(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.login();
    for (bytes, code) in [
        (&b"RETR a\0b\r\n"[..], 501),
        (b"RETR \xff\xfe\r\n", 501),
        (b"\x00\x01\x02\r\n", 500),
        (b"\r\n", 500),
        (b"   \r\n", 500),
        // A lone IAC before a non-command byte is dropped.
        (b"N\xffOOP\r\n", 200),
        (b"\xff\xfb\x18NOOP\r\n", 200),
        (b"\xff\xffNOOP\r\n", 500),
        (b"\xff\xfa\x18\x01\xff\xf0NOOP\r\n", 200),
        (b"\xff\xf4\xff\xf2NOOP\r\n", 200),
    ] {
        c.send_raw(bytes);
        let (got, text) = c.reply();
        assert_eq!(got, code, "{bytes:?} -> {text}");
    }
    c.ok("PWD", 257);
}

#[test]
fn paths_never_leave_the_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    let server = TestServer::start();
    std::os::unix::fs::symlink(outside.path(), server.path("link-out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", server.path("passwd")).unwrap();
    let mut c = server.login();
    for path in ["../../../../etc/passwd", "/../etc/passwd", "passwd", "link-out/secret"] {
        c.ok("PASV", 227);
        c.ok(&format!("RETR {path}"), 550);
    }
    c.ok("CWD link-out", 550);
    c.ok("CWD ../../..", 250);
    assert_eq!(c.ok("PWD", 257), "257 \"/\" is the current directory\r\n");
    c.ok("PASV", 227);
    c.ok("LIST link-out", 550);
    c.ok("PASV", 227);
    c.ok("STOR link-out/planted", 550);
    c.ok("MKD link-out/newdir", 550);
    c.ok("RNFR link-out/secret", 550);
    c.ok("DELE link-out/secret", 550);
    c.ok("SITE CHMOD 777 link-out/secret", 550);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    assert_eq!(std::fs::read(outside.path().join("secret")).unwrap(), b"secret");
    // The root itself cannot be removed or renamed.
    c.ok("RMD /", 550);
    c.ok("RNFR /", 550);
    c.ok("DELE ..", 550);
}
