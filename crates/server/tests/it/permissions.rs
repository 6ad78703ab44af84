//! Per-user permissions, umask and session limits; anonymous upload and
//! mkdir switches; bandwidth limits in STAT and in effect; quotas. On both
//! storage backends, except mode bits on disk and what happens to homes
//! on disk (shared descriptors, a home moved or missing).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use ferroftp_server::auth::{hash_password, UserEntry, UsersFile};

use crate::helpers::*;

/// A user's name and how its entry differs from a read-only user.
type UserSpec<'a> = (&'a str, Box<dyn Fn(&mut UserEntry)>);

/// A server on `backend` whose users file holds `users` (password "pw"
/// each), each home holding `existing.txt`. The homes' paths are under one
/// temporary directory, which holds the users file: on the local backend
/// the homes are directories there, in memory subtrees at those paths.
fn server_with_users(backend: Backend, users: Vec<UserSpec>) -> (TestServer, tempfile::TempDir) {
    let homes = tempfile::tempdir().unwrap();
    let hash = hash_password("pw").unwrap();
    let mut file = UsersFile::default();
    for (name, adjust) in users {
        let home = homes.path().join(name);
        if backend == Backend::Local {
            std::fs::create_dir(&home).unwrap();
        }
        let mut entry = UserEntry::new(name.to_string(), hash.clone(), home, false);
        adjust(&mut entry);
        file.user.push(entry);
    }
    let path = homes.path().join("users.toml");
    file.save(&path).unwrap();
    let server = TestServer::start_on(backend, |f| f.users = Some(path.clone()));
    for entry in &file.user {
        server.home(&entry.home).write("existing.txt", b"existing");
    }
    (server, homes)
}

/// The home of the user `name` made by [`server_with_users`].
fn home_of(server: &TestServer, homes: &tempfile::TempDir, name: &str) -> Files {
    server.home(&homes.path().join(name))
}

fn login_as(server: &TestServer, name: &str) -> Ctl {
    let mut c = server.connect();
    c.ok(&format!("USER {name}"), 331);
    c.ok("PASS pw", 230);
    c.ok("TYPE I", 200);
    c
}

on_both_backends!(
    each_permission_is_checked,
    max_sessions_per_user,
    anonymous_upload_and_mkdir_switches,
    bandwidth_limits_show_in_stat_and_pace_transfers,
    byte_quota_stops_an_upload_and_leaves_nothing_behind,
    file_quota_refuses_new_files_before_the_transfer,
    byte_quota_stops_a_streaming_resume_and_cuts_the_file_back,
);

fn each_permission_is_checked(backend: Backend) {
    let (server, homes) = server_with_users(
        backend,
        vec![
            (
                "reader",
                Box::new(|u: &mut UserEntry| u.permissions = Some(vec!["list".into(), "read".into(), "mkdir".into()])),
            ),
            ("dropbox", Box::new(|u: &mut UserEntry| u.permissions = Some(vec!["write".into()]))),
            ("appender", Box::new(|u: &mut UserEntry| u.permissions = Some(vec!["list".into(), "append".into()]))),
            ("all", Box::new(|u: &mut UserEntry| u.write = true)),
        ],
    );
    let mut r = login_as(&server, "reader");
    assert_eq!(r.fetch(Mode::Pasv, "RETR existing.txt"), b"existing");
    r.ok("MKD made", 257);
    r.ok("PASV", 227);
    r.ok("STOR new.txt", 550);
    r.ok("DELE existing.txt", 550);
    r.ok("RNFR existing.txt", 550);
    r.ok("RMD made", 550);
    r.ok("SITE CHMOD 600 existing.txt", 550);
    r.ok("APPE existing.txt", 550);

    // A drop box: upload, but not list, read or delete.
    let mut d = login_as(&server, "dropbox");
    d.upload(Mode::Pasv, "STOR scan-001.pdf", b"%PDF");
    assert_eq!(home_of(&server, &homes, "dropbox").read("scan-001.pdf").as_deref(), Some(&b"%PDF"[..]));
    d.ok("PASV", 227);
    d.ok("LIST", 550);
    d.ok("NLST", 550);
    d.ok("RETR scan-001.pdf", 550);
    d.ok("STAT /", 550);
    d.ok("SIZE scan-001.pdf", 550);
    d.ok("DELE scan-001.pdf", 550);
    assert!(home_of(&server, &homes, "dropbox").exists("scan-001.pdf"));

    let mut a = login_as(&server, "appender");
    a.upload(Mode::Pasv, "APPE existing.txt", b" and more");
    let appender = home_of(&server, &homes, "appender");
    assert_eq!(appender.read("existing.txt").as_deref(), Some(&b"existing and more"[..]));
    a.ok("REST 3", 350);
    a.upload(Mode::Pasv, "STOR existing.txt", b"XYZ");
    assert_eq!(appender.read("existing.txt").as_deref(), Some(&b"exiXYZ"[..]));
    a.ok("PASV", 227);
    a.ok("STOR other.txt", 550);
    a.ok("RETR existing.txt", 550);

    let mut all = login_as(&server, "all");
    all.ok("RNFR existing.txt", 350);
    all.ok("RNTO renamed.txt", 250);
    all.ok("DELE renamed.txt", 250);
    all.ok("MKD d", 257);
    all.ok("RMD d", 250);
    home_of(&server, &homes, "all").assert_holds_only("", &[]);
    let reader = home_of(&server, &homes, "reader");
    assert_eq!(reader.read("existing.txt").as_deref(), Some(&b"existing"[..]));
    reader.assert_holds_only("", &["existing.txt", "made"]);
}

#[test]
fn user_umask_applies_to_new_files() {
    let (server, homes) = server_with_users(
        Backend::Local,
        vec![(
            "private",
            Box::new(|u: &mut UserEntry| {
                u.write = true;
                u.umask = Some("077".into());
            }),
        )],
    );
    let mut c = login_as(&server, "private");
    assert!(c.ok("SITE UMASK", 200).contains("077"));
    c.upload(Mode::Pasv, "STOR secret.txt", b"s");
    c.ok("MKD vault", 257);
    let mode = |p: &str| std::fs::metadata(homes.path().join("private").join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("secret.txt"), 0o600);
    assert_eq!(mode("vault"), 0o700);
}

fn max_sessions_per_user(backend: Backend) {
    let (server, _homes) =
        server_with_users(backend, vec![("solo", Box::new(|u: &mut UserEntry| u.max_sessions = Some(1)))]);
    let mut first = login_as(&server, "solo");
    let mut second = server.connect();
    second.ok("USER solo", 331);
    let text = second.ok("PASS pw", 530);
    assert!(text.contains("Too many sessions for this user (1)"), "{text}");
    // The first session ends: the client shuts its side, and the server
    // closes its own only after the session has logged out and given its
    // place back.
    first.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(first.read_to_end(), "");
    let mut again = server.connect();
    again.ok("USER solo", 331);
    again.ok("PASS pw", 230);
}

fn anonymous_upload_and_mkdir_switches(backend: Backend) {
    let server = TestServer::start_on(backend, |f| {
        f.anonymous_write = Some(false);
        f.anonymous_upload = Some(true);
    });
    server.files().write("keep", b"keep");
    let mut c = server.login();
    c.ok("TYPE I", 200);
    c.upload(Mode::Pasv, "STOR incoming.bin", b"upload");
    assert_eq!(server.files().read("incoming.bin").as_deref(), Some(&b"upload"[..]));
    c.ok("MKD dir", 550);
    c.ok("DELE keep", 550);
    c.ok("RNFR keep", 550);
    assert_eq!(server.files().read("keep").as_deref(), Some(&b"keep"[..]));
    server.files().assert_holds_only("", &["incoming.bin", "keep"]);
    let server = TestServer::start_on(backend, |f| {
        f.anonymous_write = Some(false);
        f.anonymous_mkdir = Some(true);
        f.anonymous_umask = Some("027".into());
    });
    let mut c = server.login();
    c.ok("MKD dir", 257);
    assert!(server.files().is_dir("dir"));
    // The umask's mode bits are kept on disk only.
    if let Some(dir) = server.files().disk_path("dir") {
        assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o750);
    }
    c.ok("PASV", 227);
    c.ok("STOR x", 550);
    server.files().assert_holds_only("", &["dir"]);
}

fn bandwidth_limits_show_in_stat_and_pace_transfers(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.anonymous_download_rate = Some(20_000));
    server.files().write("big", &random_bytes(2_000_000, 9));
    let mut c = server.login();
    let stat = c.ok("STAT", 211);
    assert!(stat.contains("Session bandwidth limit in bytes per second is 20000 down, unlimited up"), "{stat}");
    c.ok("TYPE I", 200);
    let pending = c.data(Mode::Pasv);
    c.send("RETR big");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let mut first = [0u8; 1000];
    data.read_exact(&mut first).unwrap();
    // Unpaced, the whole file would sit in the socket buffers by now.
    let progress = c.ok("STAT", 213);
    let sent: u64 = progress.split(", ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(sent < 2_000_000, "{progress}");
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    let plain = TestServer::start_on(backend, |_| {});
    assert!(plain.login().ok("STAT", 211).contains("No session bandwidth limit"));
}

fn quota_user(backend: Backend, bytes: Option<u64>, files: Option<u64>) -> (TestServer, tempfile::TempDir) {
    server_with_users(
        backend,
        vec![(
            "q",
            Box::new(move |u: &mut UserEntry| {
                u.write = true;
                u.quota_bytes = bytes;
                u.quota_files = files;
            }),
        )],
    )
}

fn byte_quota_stops_an_upload_and_leaves_nothing_behind(backend: Backend) {
    // The home starts with existing.txt (8 bytes).
    let (server, homes) = quota_user(backend, Some(1_000_008), None);
    let home = home_of(&server, &homes, "q");
    let mut c = login_as(&server, "q");
    c.upload(Mode::Pasv, "STOR a.bin", &random_bytes(600_000, 1));
    // 600,000 more would pass the limit: 552, and no partial file.
    let pending = c.data(Mode::Pasv);
    c.send("STOR b.bin");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let _ = std::io::Write::write_all(&mut data, &random_bytes(600_000, 2));
    drop(data);
    let (code, text) = c.reply();
    assert_eq!(code, 552, "{text}");
    assert!(!home.exists("b.bin"));
    home.assert_holds_only("", &["a.bin", "existing.txt"]);
    // What was refused did not count: 400,000 still fit.
    c.upload(Mode::Pasv, "STOR c.bin", &random_bytes(400_000, 3));
    // Replacing a file is charged only for the difference.
    c.upload(Mode::Pasv, "STOR a.bin", &random_bytes(590_000, 4));
    // Deleting frees space.
    c.ok("DELE c.bin", 250);
    c.upload(Mode::Pasv, "STOR d.bin", &random_bytes(400_000, 5));
    // An append past the limit is cut back to where it began.
    let before = home.read("d.bin").expect("no d.bin");
    let pending = c.data(Mode::Pasv);
    c.send("APPE d.bin");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let _ = std::io::Write::write_all(&mut data, &random_bytes(100_000, 6));
    drop(data);
    assert_eq!(c.reply().0, 552);
    assert!(home.read("d.bin") == Some(before), "the append was not undone");
    home.assert_holds_only("", &["a.bin", "d.bin", "existing.txt"]);
}

fn file_quota_refuses_new_files_before_the_transfer(backend: Backend) {
    // existing.txt is the first file.
    let (server, homes) = quota_user(backend, None, Some(2));
    let mut c = login_as(&server, "q");
    c.upload(Mode::Pasv, "STOR second", b"2");
    c.ok("PASV", 227);
    let text = c.ok("STOR third", 552);
    assert!(text.contains("at most 2 files"), "{text}");
    c.ok("STOU", 552);
    // Replacing an existing file is no new file.
    c.upload(Mode::Pasv, "STOR second", b"two");
    c.ok("DELE second", 250);
    c.upload(Mode::Pasv, "STOR third", b"3");
    let home = home_of(&server, &homes, "q");
    home.assert_holds_only("", &["existing.txt", "third"]);
    assert_eq!(home.read("third").as_deref(), Some(&b"3"[..]));
}

fn byte_quota_stops_a_streaming_resume_and_cuts_the_file_back(backend: Backend) {
    // A resumed upload (REST + STOR) of several MiB streams on a thread
    // of its own on the local backend; past the quota it is refused and
    // the file is cut back to the offset once the upload has stopped
    // writing.
    let (server, homes) = quota_user(backend, Some(3 << 20), None);
    let home = home_of(&server, &homes, "q");
    let mut c = login_as(&server, "q");
    let start = random_bytes(100_000, 1);
    c.upload(Mode::Pasv, "STOR big.bin", &start);
    c.ok("TYPE I", 200);
    let pending = c.data(Mode::Pasv);
    c.ok("REST 100000", 350);
    c.send("STOR big.bin");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let _ = std::io::Write::write_all(&mut data, &random_bytes(8 << 20, 2));
    drop(data);
    let (code, text) = c.reply();
    assert_eq!(code, 552, "{text}");
    assert!(home.read("big.bin") == Some(start), "the resumed part was not cut back");
    // A new upload past the limit leaves nothing behind.
    let pending = c.data(Mode::Pasv);
    c.send("STOR other.bin");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    let _ = std::io::Write::write_all(&mut data, &random_bytes(8 << 20, 3));
    drop(data);
    assert_eq!(c.reply().0, 552);
    assert!(!home.exists("other.bin"));
    home.assert_holds_only("", &["big.bin", "existing.txt"]);
}

/// Descriptors this process holds open on `dir`.
fn descriptors_on(dir: &std::path::Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == dir)
        .count()
}

/// Sessions of one user share one descriptor of its home (10,000 camera
/// sessions on one account no longer need 10,000 more descriptors), and a
/// home moved aside and made anew is what the next session gets.
#[test]
fn sessions_of_one_user_share_its_home_directory() {
    let (server, homes) = server_with_users(Backend::Local, vec![("cam", Box::new(|_: &mut UserEntry| {}))]);
    let home = homes.path().join("cam");
    let mut sessions: Vec<Ctl> = (0..3).map(|_| login_as(&server, "cam")).collect();
    assert_eq!(descriptors_on(&home), 1, "each session opened the home itself");
    for s in &mut sessions {
        assert_eq!(s.fetch(Mode::Epsv, "RETR existing.txt"), b"existing");
    }
    std::fs::rename(&home, homes.path().join("cam.old")).unwrap();
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("existing.txt"), b"new home").unwrap();
    let mut after = login_as(&server, "cam");
    assert_eq!(after.fetch(Mode::Epsv, "RETR existing.txt"), b"new home");
    // The sessions from before keep the directory they logged in to.
    assert_eq!(sessions[0].fetch(Mode::Epsv, "RETR existing.txt"), b"existing");
}

/// A right password whose home directory cannot be opened is the server's
/// trouble: 421 naming the cause (not the path), and no failed login
/// counted, so the address is never banned for it.
#[test]
fn a_missing_home_gets_421_and_never_bans_the_address() {
    let (server, homes) = server_with_users(
        Backend::Local,
        vec![("ghost", Box::new(|_: &mut UserEntry| {})), ("real", Box::new(|_: &mut UserEntry| {}))],
    );
    std::fs::remove_dir_all(homes.path().join("ghost")).unwrap();
    // More tries than the default ban threshold (10 failures).
    for _ in 0..12 {
        let mut c = server.connect();
        c.ok("USER ghost", 331);
        let text = c.ok("PASS pw", 421);
        assert!(text.contains("home directory") && text.contains("No such file"), "{text}");
        assert!(!text.contains(homes.path().to_str().unwrap()), "the reply shows the path: {text}");
        // 421: the server closes the connection.
        assert_eq!(std::io::Read::read(&mut c.stream, &mut [0u8; 16]).unwrap(), 0, "still open after 421");
    }
    let mut c = login_as(&server, "real");
    assert_eq!(c.fetch(Mode::Pasv, "RETR existing.txt"), b"existing");
    // A wrong password is still a failed login.
    let mut wrong = server.connect();
    wrong.ok("USER real", 331);
    wrong.ok("PASS nope", 530);
}
