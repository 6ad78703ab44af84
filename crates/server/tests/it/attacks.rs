//! The attack suite: hostile input and abuse. Every case checks the
//! reply, that the server still serves a second client, and that nothing
//! outside the root was read or written.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::*;

/// A directory beside the root that must stay untouched, holding a secret
/// the client must never read, and a symlink to it inside the root.
struct Outside {
    dir: tempfile::TempDir,
    before: Vec<(PathBuf, Vec<u8>)>,
}

impl Outside {
    fn new(server: &TestServer) -> Outside {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), b"TOP SECRET").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/other"), b"other").unwrap();
        std::os::unix::fs::symlink(dir.path(), server.path("escape")).unwrap();
        let before = snapshot(dir.path());
        Outside { dir, before }
    }

    fn assert_untouched(&self) {
        assert_eq!(snapshot(self.dir.path()), self.before, "something outside the root changed");
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
                out.push((p, Vec::new()));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A second client logs in and lists: the server still serves.
fn assert_still_serves(server: &TestServer) {
    let mut c = server.login();
    c.ok("NOOP", 200);
    let names = String::from_utf8(c.fetch(Mode::Pasv, "NLST")).unwrap();
    assert!(names.contains("escape"), "{names}");
}

/// No reply ever carries the secret.
fn assert_not_leaked(text: &str) {
    assert!(!text.contains("TOP SECRET"), "the secret leaked: {text}");
}

#[test]
fn traversal_and_symlink_escapes() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    let mut c = server.login();
    let secret = format!("{}/secret", outside.dir.path().display());
    for path in [
        "escape/secret",
        "../escape/secret",
        secret.as_str(),
        "escape/../escape/secret",
        "..\\..\\etc\\passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "./escape/./secret",
    ] {
        c.ok("PASV", 227);
        assert_not_leaked(&c.ok(&format!("RETR {path}"), 550));
        c.ok("PASV", 227);
        c.ok(&format!("STOR {path}/planted"), 550);
        c.ok(&format!("SIZE {path}"), 550);
        assert_not_leaked(&c.ok(&format!("STAT {path}"), 550));
    }
    // Climbing above the root stops at the root, as in a chroot.
    c.ok("CWD /../../../../../..", 250);
    assert_eq!(c.ok("PWD", 257), "257 \"/\" is the current directory\r\n");
    c.ok("CWD escape", 550);
    c.ok("CWD escape/sub", 550);
    c.ok("MKD escape/new", 550);
    c.ok("RMD escape/sub", 550);
    c.ok("DELE escape/secret", 550);
    c.ok("RNFR escape/secret", 550);
    std::fs::write(server.path("inside"), b"inside").unwrap();
    c.ok("RNFR inside", 350);
    c.ok("RNTO escape/moved", 550);
    c.ok("SITE CHMOD 777 escape/secret", 550);
    c.ok("SMNT ../..", 550);
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn a_directory_swapped_for_a_symlink_mid_transfer_leads_nowhere() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    std::fs::create_dir(server.path("box")).unwrap();
    let body = random_bytes(8_000_000, 1);
    std::fs::write(server.path("box/file"), &body).unwrap();
    let mut c = server.login();
    c.ok("TYPE I", 200);
    let pending = c.data(Mode::Pasv);
    c.send("RETR box/file");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let mut head = vec![0u8; 1000];
    data.read_exact(&mut head).unwrap();
    // Swap the directory for a symlink pointing out of the root.
    std::fs::rename(server.path("box"), server.path("box.old")).unwrap();
    std::os::unix::fs::symlink(outside.dir.path(), server.path("box")).unwrap();
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).unwrap();
    assert_eq!(c.reply().0, 226);
    head.extend(rest);
    assert!(head == body, "the open transfer keeps reading the file it opened");
    // New requests through the swapped name are refused.
    c.ok("PASV", 227);
    c.ok("RETR box/secret", 550);
    c.ok("PASV", 227);
    c.ok("STOR box/planted", 550);
    c.ok("CWD box", 550);
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn globbing_is_not_interpreted() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    for i in 0..20 {
        std::fs::create_dir(server.path(&format!("d{i}"))).unwrap();
    }
    let mut c = server.login();
    // The denial-of-service pattern of other servers' CVEs: with no
    // globbing it names a file that does not exist.
    for pattern in ["*/../*/../*/../*/../*/../*/../*", "{a,b}*[0-9]?", "*"] {
        c.ok("PASV", 227);
        c.ok(&format!("LIST {pattern}"), 550);
        c.ok("PASV", 227);
        c.ok(&format!("NLST {pattern}"), 550);
    }
    // A name that really has a star in it works.
    std::fs::write(server.path("a*b"), b"star").unwrap();
    assert_eq!(c.fetch(Mode::Pasv, "NLST a*b"), b"a*b\r\n");
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn recursive_listing_is_not_done() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    std::fs::create_dir_all(server.path("a/b/c/d")).unwrap();
    std::fs::write(server.path("a/b/c/d/deep"), b"x").unwrap();
    let mut c = server.login();
    let listing = String::from_utf8(c.fetch(Mode::Pasv, "LIST -R")).unwrap();
    assert!(!listing.contains("deep") && !listing.contains(" b\r\n"), "{listing}");
    assert!(listing.contains(" a\r\n"), "{listing}");
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn slowloris_is_cut_at_the_timeout() {
    let server = TestServer::start_with(|f| f.idle_timeout = Some(1));
    let outside = Outside::new(&server);
    let mut c = server.login();
    // A line dribbled a byte at a time never completes: bytes that are not
    // a command do not count as activity.
    let mut got_421 = false;
    for b in b"NOOPNOOPNOOPNOOPNOOPNOOP".iter().cycle().take(200) {
        if c.stream.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        c.stream.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 3];
        let n = c.stream.peek(&mut peek).unwrap_or(0);
        c.stream.set_nonblocking(false).unwrap();
        if n == 3 {
            got_421 = &peek == b"421";
            break;
        }
    }
    assert!(got_421, "the dribbling client was never cut off");
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn pasv_floods_never_exhaust_the_port_range() {
    let server = TestServer::start_with(|f| f.passive_ports = Some("31200-31204".into()));
    let outside = Outside::new(&server);
    let mut c = server.login();
    // 2,000 PASV in one burst, never connecting: each drops the listener
    // of the one before.
    c.send_raw("PASV\r\n".repeat(2000).as_bytes());
    for _ in 0..2000 {
        assert_eq!(c.reply().0, 227);
    }
    // Other clients still get passive ports from the five.
    let mut others: Vec<Ctl> = (0..3).map(|_| server.login()).collect();
    for o in &mut others {
        assert_eq!(o.fetch(Mode::Pasv, "NLST"), b"escape\r\n");
    }
    assert_eq!(c.fetch(Mode::Pasv, "NLST"), b"escape\r\n");
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn port_floods_open_nothing_until_a_transfer() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let mut c = server.login();
    let line = format!("PORT 127,0,0,1,{},{}\r\n", port >> 8, port & 0xff);
    c.send_raw(line.repeat(1000).as_bytes());
    for _ in 0..1000 {
        assert_eq!(c.reply().0, 200);
    }
    assert!(listener.accept().is_err(), "PORT alone must not connect");
    listener.set_nonblocking(false).unwrap();
    c.send("NLST");
    assert_eq!(c.reply().0, 150);
    let (mut s, _) = listener.accept().unwrap();
    let mut names = String::new();
    s.read_to_string(&mut names).unwrap();
    assert_eq!(names, "escape\r\n");
    assert_eq!(c.reply().0, 226);
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn commands_piled_up_behind_a_transfer_are_bounded_and_answered_in_order() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    std::fs::write(server.path("big"), random_bytes(32 * 1024 * 1024, 2)).unwrap();
    let mut c = server.login();
    c.ok("TYPE I", 200);
    let pending = c.data(Mode::Pasv);
    c.send("RETR big");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    // 5,000 commands while the transfer is stalled: the server stops
    // reading past its small queue instead of buffering them all.
    let mut writer = c.stream.try_clone().unwrap();
    let flood = std::thread::spawn(move || writer.write_all("NOOP\r\n".repeat(5000).as_bytes()));
    let mut all = Vec::new();
    data.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 32 * 1024 * 1024);
    assert_eq!(c.reply().0, 226);
    for _ in 0..5000 {
        assert_eq!(c.reply().0, 200);
    }
    flood.join().unwrap().unwrap();
    outside.assert_untouched();
    assert_still_serves(&server);
}

#[test]
fn renames_and_deletes_that_would_destroy_directories_are_refused() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    std::fs::create_dir(server.path("dir")).unwrap();
    std::fs::write(server.path("dir/keep"), b"keep").unwrap();
    std::fs::write(server.path("file"), b"file").unwrap();
    let mut c = server.login();
    c.ok("RNFR file", 350);
    c.ok("RNTO dir", 550);
    c.ok("DELE dir", 550);
    c.ok("RMD dir", 550);
    c.ok("RMD file", 550);
    c.ok("PASV", 227);
    c.ok("STOR dir", 550);
    c.ok("REST 100", 350);
    c.ok("PASV", 227);
    c.ok("RETR file", 550);
    assert_eq!(read(&server.path("dir/keep")), b"keep");
    assert_eq!(read(&server.path("file")), b"file");
    // An over-long name is refused with 553, not an I/O error.
    let long = "n".repeat(300);
    c.ok(&format!("MKD {long}"), 553);
    outside.assert_untouched();
    assert_still_serves(&server);
}

/// A 256 KiB tmpfs mounted for one test; unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount(8) is needed to test a full disk");
        assert!(status.success(), "mounting a tmpfs needs root (the tests run as root)");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_answers_452_and_the_session_goes_on() {
    let disk = SmallDisk::mount();
    let root = disk.0.path().to_path_buf();
    let server = TestServer::start_with(|f| f.root = Some(root.clone()));
    std::fs::write(root.join("keep"), b"keep").unwrap();
    let mut c = server.login();
    c.ok("TYPE I", 200);
    let pending = c.data(Mode::Pasv);
    c.send("STOR keep");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let _ = data.write_all(&random_bytes(1_000_000, 3));
    drop(data);
    let (code, text) = c.reply();
    assert_eq!(code, 452, "{text}");
    assert_eq!(read(&root.join("keep")), b"keep", "the old file survives a full disk");
    c.ok("NOOP", 200);
    c.upload(Mode::Pasv, "STOR small", b"fits");
    assert_eq!(read(&root.join("small")), b"fits");
}
