//! Faults an operator's soak found (issue 22): a restart offset past the
//! end, a full disk, a client that hangs up while its commands queue.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};

use crate::helpers::*;

/// REST past the end of a file, then STOR, made a sparse file of any size
/// (1 TiB for 100 bytes) that no quota counted: refused with 554 naming
/// the file's size, and nothing written.
#[test]
fn a_restart_offset_past_the_end_is_refused_for_stor() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"0123456789").unwrap();
    let mut c = server.login();
    c.ok("TYPE I", 200);
    c.pasv();
    c.ok("REST 1099511627776", 350);
    let (code, text) = c.cmd("STOR f");
    assert_eq!(code, 554, "{text}");
    assert!(text.contains("10 bytes"), "the reply does not name the size: {text}");
    c.ok("REST 11", 350);
    assert_eq!(c.cmd("STOR f").0, 554);
    // A name that does not exist yet has nothing to resume.
    c.ok("REST 1", 350);
    assert_eq!(c.cmd("STOR new").0, 554);
    assert_eq!(read(&server.path("f")), b"0123456789");
    assert!(!server.path("new").exists());
    // Resuming at the end still works.
    c.ok("REST 10", 350);
    c.upload(Mode::Pasv, "STOR f", b"abc");
    assert_eq!(read(&server.path("f")), b"0123456789abc");
}

/// A client that sent PASV, then RETR without connecting, then 100 NOOPs
/// in one write (more than the queue takes), then closed, kept its session
/// and passive listener until the data timeout; with 20 NOOPs it was let
/// go at once. Now the hang-up ends the session either way: the server
/// closes the control connection (seen as EOF, well within the 60 s data
/// timeout the server keeps here).
#[test]
fn a_client_that_hangs_up_with_its_queue_full_is_let_go() {
    for noops in [20, 100, 5000] {
        let server = TestServer::start_with(|f| f.data_timeout = Some(60));
        std::fs::write(server.path("f"), b"data").unwrap();
        let mut c = server.login();
        c.pasv();
        c.ok("RETR f", 150);
        c.send_raw("NOOP\r\n".repeat(noops).as_bytes());
        c.stream.shutdown(Shutdown::Write).unwrap();
        // The server's end closes; reading stops at EOF (the helper's read
        // timeout is the bound). A read that timed out is an error.
        let mut rest = Vec::new();
        let read = c.stream.read_to_end(&mut rest);
        assert!(read.is_ok(), "{noops} NOOPs: the session was not ended: {read:?}");
    }
}

/// A mounted 20 MiB filesystem, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap().keep();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=20m", "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount(8) could not be run");
        assert!(status.success(), "mounting a 20 MiB tmpfs failed (the test suite runs as root)");
        SmallDisk(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Uploads `bytes` and returns the final reply's code; the server may
/// close the data connection before every byte is sent.
fn upload_until_refused(c: &mut Ctl, command: &str, bytes: &[u8]) -> u16 {
    let pending = c.data(Mode::Pasv);
    let (code, text) = c.cmd(command);
    assert_eq!(code, 150, "{command} -> {text}");
    let mut data = pending.open();
    let _ = data.write_all(bytes);
    drop(data);
    c.reply().0
}

/// On a full disk a broken upload left what fitted (14 MiB of 40) under
/// its name with `partial_uploads = "keep"`, so the next upload failed
/// too. A part that failed for lack of space is removed whatever the
/// setting says; atomic and in place alike.
#[test]
fn an_upload_that_fills_the_disk_leaves_nothing_behind() {
    let disk = SmallDisk::mount();
    for atomic in [true, false] {
        let root = disk.path().to_path_buf();
        let server = TestServer::start_with(|f| {
            f.root = Some(root);
            f.partial_uploads = Some("keep".into());
            f.atomic_uploads = Some(atomic);
        });
        let mut c = server.login();
        c.ok("TYPE I", 200);
        let big = random_bytes(40 << 20, 7);
        assert_eq!(upload_until_refused(&mut c, "STOR big", &big), 452, "atomic: {atomic}");
        let left: Vec<_> = std::fs::read_dir(disk.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "atomic {atomic}: left behind: {left:?}");
        // The space is free again: the next upload fits.
        let small = random_bytes(5 << 20, 8);
        c.upload(Mode::Pasv, "STOR small", &small);
        assert!(read(&disk.path().join("small")) == small, "stored bytes differ");
        std::fs::remove_file(disk.path().join("small")).unwrap();
    }
}

/// Clients (Windows Explorer, FileZilla) send OPTS UTF8 ON before they log
/// in; it was refused with 530, though it changes nothing a login guards.
#[test]
fn opts_utf8_is_answered_before_login() {
    let server = TestServer::start();
    let mut c = server.connect();
    c.ok("OPTS UTF8 ON", 200);
    // Everything that touches files still needs the login.
    c.ok("PWD", 530);
}
