//! The attack suite: hostile input and abuse. Every case checks the
//! reply, that the server still serves a second client, and that nothing
//! outside the root was read or written. On both storage backends, except
//! symlinks pointing out of the root (the local filesystem's own).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::*;

on_both_backends!(
    traversal_never_leaves_the_root,
    globbing_is_not_interpreted,
    recursive_listing_is_not_done,
    slowloris_is_cut_at_the_timeout,
    pasv_floods_never_exhaust_the_port_range,
    port_floods_open_nothing_until_a_transfer,
    commands_piled_up_behind_a_transfer_are_bounded_and_answered_in_order,
    renames_and_deletes_that_would_destroy_directories_are_refused,
    a_directory_cannot_be_renamed_beneath_itself,
    an_over_long_name_is_refused_with_553,
    a_full_disk_answers_452_and_the_session_goes_on,
);

/// In memory, the anonymous root of the attack servers: a subtree, so
/// that the tree has room beside it for [`Outside`].
const MEMORY_ROOT: &str = "/jail";
/// In memory, the place beside the root the client must not reach.
const MEMORY_OUTSIDE: &str = "/outside";

/// An anonymous read-write server whose root has something beside it: a
/// temporary directory on disk, or [`MEMORY_ROOT`] in the memory tree.
fn attack_server(backend: Backend, adjust: impl FnOnce(&mut ferroftp_server::FileConfig)) -> TestServer {
    TestServer::start_on(backend, |f| {
        if backend == Backend::Memory {
            f.root = Some(MEMORY_ROOT.into());
        }
        adjust(f);
    })
}

/// A directory beside the root that must stay untouched, holding a secret
/// the client must never read; the root holds `inside`. On disk, the
/// directory is a temporary one and the root holds a symlink to it,
/// `escape`; in memory it is [`MEMORY_OUTSIDE`] (the tree has no symlinks).
struct Outside {
    /// Where it is: on disk, or in the memory tree.
    path: PathBuf,
    files: Files,
    /// Keeps the directory on disk.
    dir: Option<tempfile::TempDir>,
    before: Vec<(String, Option<Vec<u8>>)>,
    /// What the local backend's root holds on disk before, read with std::fs.
    before_on_disk: Option<Vec<(PathBuf, Vec<u8>)>>,
}

impl Outside {
    fn new(server: &TestServer) -> Outside {
        let dir = (server.backend == Backend::Local).then(|| tempfile::tempdir().unwrap());
        let path = dir.as_ref().map_or_else(|| PathBuf::from(MEMORY_OUTSIDE), |d| d.path().to_path_buf());
        let files = server.root_at(&path);
        files.write("secret", b"TOP SECRET");
        files.mkdir("sub");
        files.write("sub/other", b"other");
        if let Some(dir) = &dir {
            std::os::unix::fs::symlink(dir.path(), server.path("escape")).unwrap();
        }
        server.files().write("inside", b"inside");
        let before = walk(&files);
        let before_on_disk = dir.as_ref().map(|d| snapshot(d.path()));
        Outside { path, files, dir, before, before_on_disk }
    }

    /// The outside directory's name, beside the root's.
    fn name(&self) -> String {
        self.path.file_name().unwrap().to_str().unwrap().to_string()
    }

    /// What NLST of the root shows when it holds nothing else.
    fn root_nlst(&self) -> &'static [u8] {
        match self.dir {
            Some(_) => b"escape\r\ninside\r\n",
            None => b"inside\r\n",
        }
    }

    fn assert_untouched(&self) {
        assert_eq!(walk(&self.files), self.before, "something outside the root changed");
        if let (Some(dir), Some(before)) = (&self.dir, &self.before_on_disk) {
            assert_eq!(&snapshot(dir.path()), before, "something outside the root changed on disk");
        }
    }
}

/// Every entry beneath a storage root, with a file's bytes, through the
/// storage trait.
fn walk(files: &Files) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(d) = stack.pop() {
        for name in files.list(&d) {
            let p = if d.is_empty() { name } else { format!("{d}/{name}") };
            if files.is_dir(&p) {
                stack.push(p.clone());
                out.push((p, None));
            } else {
                let bytes = files.read(&p);
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
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

/// A second client logs in, lists and downloads: the server still serves.
fn assert_still_serves(server: &TestServer) {
    let mut c = server.login();
    c.ok("NOOP", 200);
    let names = String::from_utf8(c.fetch(Mode::Pasv, "NLST")).unwrap();
    assert!(names.contains("inside"), "{names}");
    if server.backend == Backend::Local {
        assert!(names.contains("escape"), "{names}");
    }
    c.ok("TYPE I", 200);
    assert_eq!(c.fetch(Mode::Pasv, "RETR inside"), b"inside");
}

/// No reply ever carries the secret.
fn assert_not_leaked(text: &str) {
    assert!(!text.contains("TOP SECRET"), "the secret leaked: {text}");
}

/// `..` and absolute paths aimed at the directory beside the root: they
/// resolve inside the root, where nothing by that name is.
fn traversal_never_leaves_the_root(backend: Backend) {
    let server = attack_server(backend, |_| {});
    let outside = Outside::new(&server);
    let mut c = server.login();
    let name = outside.name();
    let absolute = format!("{}/secret", outside.path.display());
    let paths = [
        format!("../{name}/secret"),
        format!("../../../../{name}/secret"),
        format!("/../{name}/secret"),
        format!("{name}/../../{name}/secret"),
        absolute.clone(),
        format!("/../../..{absolute}"),
        format!("..\\{name}\\secret"),
        format!("%2e%2e/{name}/secret"),
        "../../../../etc/passwd".to_string(),
        "/../etc/passwd".to_string(),
    ];
    for path in &paths {
        c.ok("PASV", 227);
        assert_not_leaked(&c.ok(&format!("RETR {path}"), 550));
        c.ok("PASV", 227);
        c.ok(&format!("STOR {path}/planted"), 550);
        c.ok(&format!("SIZE {path}"), 550);
        c.ok(&format!("MDTM {path}"), 550);
        c.ok(&format!("HASH {path}"), 550);
        assert_not_leaked(&c.ok(&format!("MLST {path}"), 550));
        assert_not_leaked(&c.ok(&format!("STAT {path}"), 550));
    }
    // Climbing above the root stops at the root, as in a chroot.
    c.ok("CWD /../../../../../..", 250);
    assert_eq!(c.ok("PWD", 257), "257 \"/\" is the current directory\r\n");
    c.ok(&format!("CWD ../{name}"), 550);
    c.ok(&format!("CWD ../{name}/sub"), 550);
    c.ok("PASV", 227);
    c.ok(&format!("LIST ../{name}"), 550);
    c.ok(&format!("MKD ../{name}/new"), 550);
    c.ok(&format!("RMD ../{name}/sub"), 550);
    c.ok(&format!("DELE ../{name}/secret"), 550);
    c.ok(&format!("DELE {absolute}"), 550);
    c.ok(&format!("RNFR ../{name}/secret"), 550);
    c.ok("RNFR inside", 350);
    c.ok(&format!("RNTO ../{name}/moved"), 550);
    c.ok("PASV", 227);
    c.ok(&format!("APPE ../{name}/secret"), 550);
    c.ok(&format!("MFMT 20200229123456 ../{name}/secret"), 550);
    c.ok("SMNT ../..", 550);
    // The root itself cannot be removed or renamed.
    c.ok("RMD /", 550);
    c.ok("RNFR /", 550);
    c.ok("DELE ..", 550);
    outside.assert_untouched();
    let root_names: &[&str] = if backend == Backend::Local { &["escape", "inside"] } else { &["inside"] };
    server.files().assert_holds_only("", root_names);
    assert_still_serves(&server);
}

#[test]
fn traversal_and_symlink_escapes() {
    let server = TestServer::start();
    let outside = Outside::new(&server);
    let mut c = server.login();
    let secret = format!("{}/secret", outside.path.display());
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
    std::os::unix::fs::symlink(&outside.path, server.path("box")).unwrap();
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

fn globbing_is_not_interpreted(backend: Backend) {
    let server = attack_server(backend, |_| {});
    let outside = Outside::new(&server);
    for i in 0..20 {
        server.files().mkdir(&format!("d{i}"));
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
    server.files().write("a*b", b"star");
    assert_eq!(c.fetch(Mode::Pasv, "NLST a*b"), b"a*b\r\n");
    outside.assert_untouched();
    assert_still_serves(&server);
}

fn recursive_listing_is_not_done(backend: Backend) {
    let server = attack_server(backend, |_| {});
    let outside = Outside::new(&server);
    for dir in ["a", "a/b", "a/b/c", "a/b/c/d"] {
        server.files().mkdir(dir);
    }
    server.files().write("a/b/c/d/deep", b"x");
    let mut c = server.login();
    let listing = String::from_utf8(c.fetch(Mode::Pasv, "LIST -R")).unwrap();
    assert!(!listing.contains("deep") && !listing.contains(" b\r\n"), "{listing}");
    assert!(listing.contains(" a\r\n"), "{listing}");
    outside.assert_untouched();
    assert_still_serves(&server);
}

fn slowloris_is_cut_at_the_timeout(backend: Backend) {
    let server = attack_server(backend, |f| f.idle_timeout = Some(1));
    let outside = Outside::new(&server);
    let mut c = server.login();
    // A line dribbled a byte at a time never completes: bytes that are not
    // a command do not count as activity. The attacker keeps its own pace
    // (a byte every 100 ms, for up to 20 s: that pause is the attack, not
    // a wait); the test waits for the server's 421.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let (mut stream, stop) = (c.stream.try_clone().unwrap(), stop.clone());
        std::thread::spawn(move || {
            for b in b"NOOPNOOPNOOPNOOPNOOPNOOP".iter().cycle().take(200) {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || stream.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (code, text) = c.reply();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attacker.join().unwrap();
    assert_eq!(code, 421, "the dribbling client was not cut off: {text}");
    outside.assert_untouched();
    assert_still_serves(&server);
}

fn pasv_floods_never_exhaust_the_port_range(backend: Backend) {
    let (first, last) = (fixed_port(backend, 31200), fixed_port(backend, 31204));
    let server = attack_server(backend, |f| f.passive_ports = Some(format!("{first}-{last}")));
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
        assert_eq!(o.fetch(Mode::Pasv, "NLST"), outside.root_nlst());
    }
    assert_eq!(c.fetch(Mode::Pasv, "NLST"), outside.root_nlst());
    outside.assert_untouched();
    assert_still_serves(&server);
}

fn port_floods_open_nothing_until_a_transfer(backend: Backend) {
    let server = attack_server(backend, |_| {});
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
    assert_eq!(names.as_bytes(), outside.root_nlst());
    assert_eq!(c.reply().0, 226);
    outside.assert_untouched();
    assert_still_serves(&server);
}

fn commands_piled_up_behind_a_transfer_are_bounded_and_answered_in_order(backend: Backend) {
    let server = attack_server(backend, |_| {});
    let outside = Outside::new(&server);
    server.files().write("big", &random_bytes(32 * 1024 * 1024, 2));
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

fn renames_and_deletes_that_would_destroy_directories_are_refused(backend: Backend) {
    let server = attack_server(backend, |_| {});
    let outside = Outside::new(&server);
    let files = server.files();
    files.mkdir("dir");
    files.write("dir/keep", b"keep");
    files.write("file", b"file");
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
    assert_eq!(files.read("dir/keep").as_deref(), Some(&b"keep"[..]));
    assert_eq!(files.read("file").as_deref(), Some(&b"file"[..]));
    files.assert_holds_only("dir", &["keep"]);
    outside.assert_untouched();
    assert_still_serves(&server);
}

/// RNTO of a directory to a path beneath itself is the client's mistake,
/// refused as a name that cannot be used (553), as the memory backend
/// does, not a local error (451) a client would retry.
fn a_directory_cannot_be_renamed_beneath_itself(backend: Backend) {
    let server = attack_server(backend, |_| {});
    let outside = Outside::new(&server);
    let files = server.files();
    files.mkdir("dir");
    files.write("dir/keep", b"keep");
    let mut c = server.login();
    c.ok("RNFR dir", 350);
    c.ok("RNTO dir/inner", 553);
    c.ok("RNFR dir", 350);
    c.ok("RNTO /dir/inner/deeper", 553);
    assert_eq!(files.read("dir/keep").as_deref(), Some(&b"keep"[..]));
    files.assert_holds_only("dir", &["keep"]);
    outside.assert_untouched();
    assert_still_serves(&server);
}

/// A name longer than a file name may be (255 bytes on Linux) is refused
/// with 553, not an I/O error; whatever the storage, so a tree served from
/// memory holds only names a disk could.
fn an_over_long_name_is_refused_with_553(backend: Backend) {
    let server = attack_server(backend, |_| {});
    let outside = Outside::new(&server);
    let mut c = server.login();
    let long = "n".repeat(300);
    c.ok(&format!("MKD {long}"), 553);
    assert!(!server.files().list("").contains(&long), "the long name was made");
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

/// A full disk, or a full memory tree (256 KiB each).
fn a_full_disk_answers_452_and_the_session_goes_on(backend: Backend) {
    let disk = (backend == Backend::Local).then(SmallDisk::mount);
    let server = TestServer::start_on(backend, |f| match &disk {
        Some(disk) => f.root = Some(disk.0.path().to_path_buf()),
        None => f.storage_capacity = Some(256 << 10),
    });
    let files = server.files();
    files.write("keep", b"keep");
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
    assert_eq!(files.read("keep").as_deref(), Some(&b"keep"[..]), "the old file survives a full disk");
    // A new file that does not fit is not kept, part or whole.
    let pending = c.data(Mode::Pasv);
    c.send("STOR new");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let _ = data.write_all(&random_bytes(1_000_000, 4));
    drop(data);
    let (code, text) = c.reply();
    assert_eq!(code, 452, "{text}");
    files.assert_holds_only("", &["keep"]);
    c.ok("NOOP", 200);
    c.upload(Mode::Pasv, "STOR small", b"fits");
    assert_eq!(files.read("small").as_deref(), Some(&b"fits"[..]));
    files.assert_holds_only("", &["keep", "small"]);
}
