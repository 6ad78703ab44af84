//! Every command's reply codes over a raw control connection, on both
//! storage backends; SITE CHMOD and mode bits on disk on the local backend,
//! and SITE CHMOD refused by the memory backend.

use ferroftp_server::FileConfig;

use crate::helpers::*;

on_both_backends!(
    seed_session_by_hand_with_bare_lf,
    commands_are_case_insensitive_and_pipelined_in_order,
    login_gate_and_sequence_errors,
    anonymous_can_be_refused,
    virtual_users_from_users_file,
    directory_commands,
    rename,
    read_only_anonymous_cannot_change_anything,
    parameters_type_mode_stru,
    help_site_feat_opts,
    stat_of_a_path_lists_over_control,
    smnt_switches_to_named_mounts,
    idle_timeout_closes_with_421,
);

fn seed_session_by_hand_with_bare_lf(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    server.files().write("测试 文件 1.txt", b"hello");
    server.files().mkdir("目录 dir");
    let mut c = server.connect();
    // nc sends bare LF line ends, as in the seed.
    c.send_raw(b"USER ftp\n");
    assert_eq!(c.reply().0, 331);
    c.send_raw(b"PASS 123\n");
    assert_eq!(c.reply().0, 230);
    c.send_raw(b"PWD\n");
    assert_eq!(c.reply(), (257, "257 \"/\" is the current directory\r\n".to_string()));
    c.send_raw(b"STAT\n");
    let (code, stat) = c.reply();
    assert_eq!(code, 211);
    for needle in [
        "211-FTP server status:",
        "Connected to 127.0.0.1",
        "Logged in as ftp",
        "TYPE: ASCII",
        "No session bandwidth limit",
        "Session timeout in seconds is 300",
        "Control connection is plain text",
        "Data connections will be plain text",
        "At session startup, client count was 1",
        "ferroftp",
        "211 End of status",
    ] {
        assert!(stat.contains(needle), "{needle:?} missing from {stat}");
    }
    let listing = String::from_utf8(c.fetch(Mode::Pasv, "LIST")).unwrap();
    assert!(listing.contains(" 测试 文件 1.txt\r\n"), "{listing}");
    assert!(listing.lines().any(|l| l.starts_with("drwx") && l.ends_with(" 目录 dir")), "{listing}");
    assert!(listing.contains("ftp      ftp                 5 "), "{listing}");
    c.ok("QUIT", 221);
}

fn commands_are_case_insensitive_and_pipelined_in_order(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.connect();
    c.send_raw(b"user ftp\r\npass x\r\nnoop\r\nsyst\r\npwd\r\nFOO\r\n");
    let codes: Vec<u16> = (0..6).map(|_| c.reply().0).collect();
    assert_eq!(codes, [331, 230, 200, 215, 257, 500]);
}

fn login_gate_and_sequence_errors(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.connect();
    c.ok("PASS x", 503);
    for allowed in [("HELP", 214), ("FEAT", 211), ("SYST", 215), ("NOOP", 200)] {
        c.ok(allowed.0, allowed.1);
    }
    for gated in ["CWD /", "PWD", "LIST", "PASV", "MKD x", "STAT /", "TYPE I", "ACCT x", "SITE HELP", "RETR x"] {
        c.ok(gated, 530);
    }
    c.ok("USER ftp", 331);
    c.ok("PASS x", 230);
    c.ok("ACCT x", 202);
    c.ok("PASS again", 202);
    c.ok("REIN", 220);
    c.ok("PWD", 530);
    c.ok("USER anonymous", 331);
    c.ok("PASS y", 230);
    c.ok("QUIT", 221);
    assert_eq!(c.read_to_end(), "");
}

fn anonymous_can_be_refused(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.anonymous = Some(false));
    let mut c = server.connect();
    c.ok("USER anonymous", 331);
    c.ok("PASS x", 530);
    c.ok("PWD", 530);
}

fn virtual_users_from_users_file(backend: Backend) {
    // The users file lives in a temporary directory; alice's home is that
    // directory on disk, or the subtree at its path in the memory tree.
    let home = tempfile::tempdir().unwrap();
    let users = home.path().join("users.toml");
    let file = ferroftp_server::auth::UsersFile {
        user: vec![ferroftp_server::auth::UserEntry::new(
            "alice".into(),
            ferroftp_server::auth::hash_password("wonder land").unwrap(),
            home.path().to_path_buf(),
            true,
        )],
    };
    file.save(&users).unwrap();
    let server = TestServer::start_on(backend, |f| f.users = Some(users.clone()));
    let mut c = server.connect();
    c.ok("USER alice", 331);
    c.ok("PASS wrong", 530);
    c.ok("USER nobody", 331);
    c.ok("PASS wonder land", 530);
    c.ok("USER alice", 331);
    c.ok("PASS wonder land", 230);
    c.ok("MKD made", 257);
    assert!(server.home(home.path()).is_dir("made"));
    if backend == Backend::Memory {
        assert!(!home.path().join("made").exists(), "the memory backend wrote to the disk");
    }
    c.ok("STAT", 211).contains("Logged in as alice").then_some(()).unwrap();
}

fn directory_commands(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    let mut c = server.login();
    assert_eq!(c.ok("MKD a\"b", 257), "257 \"/a\"\"b\" created\r\n");
    c.ok("MKD a\"b", 550);
    c.ok("CWD a\"b", 250);
    assert_eq!(c.ok("PWD", 257), "257 \"/a\"\"b\" is the current directory\r\n");
    c.ok("MKD sub dir", 257);
    c.ok("CWD sub dir", 250);
    c.ok("CDUP", 250);
    c.ok("XPWD", 257).contains("/a\"\"b").then_some(()).unwrap();
    c.ok("CWD /nonexistent", 550);
    c.ok("RMD sub dir", 250);
    assert!(!files.exists("a\"b/sub dir"));
    assert!(files.is_dir("a\"b"));
    c.ok("CWD /", 250);
    files.write("file", b"x");
    c.ok("CWD file", 550);
    c.ok("RMD a\"b", 250);
    c.ok("RMD nonexistent", 550);
    c.ok("DELE nonexistent", 550);
    c.ok("DELE file", 250);
    assert!(!files.exists("file"));
    c.ok("MKD d", 257);
    c.ok("DELE d", 550);
    files.write("d/inner", b"x");
    c.ok("RMD d", 550);
    assert_eq!(files.read("d/inner").as_deref(), Some(&b"x"[..]));
    files.assert_holds_only("", &["d"]);
}

fn rename(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    files.write("old name", b"content");
    let mut c = server.login();
    c.ok("RNTO x", 503);
    c.ok("RNFR missing", 550);
    c.ok("RNFR old name", 350);
    c.ok("RNTO new name", 250);
    assert_eq!(files.read("new name").as_deref(), Some(&b"content"[..]));
    assert!(!files.exists("old name"));
    // Anything between RNFR and RNTO cancels the rename.
    c.ok("RNFR new name", 350);
    c.ok("NOOP", 200);
    c.ok("RNTO third", 503);
    files.assert_holds_only("", &["new name"]);
}

fn read_only_anonymous_cannot_change_anything(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.anonymous_write = Some(false));
    let files = server.files();
    files.write("keep", b"keep");
    let mut c = server.login();
    c.ok("MKD x", 550);
    c.ok("DELE keep", 550);
    c.ok("RNFR keep", 550);
    c.ok("SITE CHMOD 777 keep", 550);
    c.ok("PASV", 227);
    c.ok("STOR new", 550);
    c.ok("APPE keep", 550);
    assert_eq!(files.read("keep").as_deref(), Some(&b"keep"[..]));
    assert!(!files.exists("new"));
    files.assert_holds_only("", &["keep"]);
}

fn parameters_type_mode_stru(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.login();
    for (line, code) in [
        ("TYPE A", 200),
        ("TYPE A N", 200),
        ("TYPE A T", 200),
        ("TYPE I", 200),
        ("TYPE L 8", 200),
        ("TYPE E", 504),
        ("TYPE L 7", 504),
        ("TYPE X", 501),
        ("TYPE", 501),
        ("MODE S", 200),
        ("MODE B", 504),
        ("MODE C", 504),
        ("MODE Z", 501),
        ("STRU F", 200),
        ("STRU R", 504),
        ("STRU P", 504),
        ("STRU Q", 501),
        ("ALLO 1000", 202),
        ("ALLO 1000 R 10", 202),
        ("ALLO lots", 501),
        ("REST 10", 350),
        ("REST ten", 501),
        ("REST -1", 501),
        ("BOGUS", 500),
        ("RETR", 501),
        ("PORT 1,2,3", 501),
        ("EPRT |9|1.2.3.4|5000|", 522),
        ("EPSV 9", 522),
        ("EPSV 2", 522),
        ("EPSV 1", 229),
        ("SYST", 215),
        ("NOOP", 200),
    ] {
        c.ok(line, code);
    }
    assert!(c.ok("TYPE I", 200).contains("Binary"));
    assert!(c.ok("STAT", 211).contains("TYPE: BINARY"));
}

/// HELP, SITE, FEAT, OPTS, SIZE and MDTM; SITE CHMOD is in the tests
/// below, one for each backend.
fn help_site_feat_opts(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.login();
    let help = c.ok("HELP", 214);
    for verb in ["ABOR", "ACCT", "SMNT", "STOU", "EPSV", "SITE", "XPWD", "APPE", "MFMT", "AVBL", "RNFR", "RNTO"] {
        assert!(help.contains(verb), "{verb} missing: {help}");
    }
    assert!(c.ok("HELP retr", 214).contains("RETR <sp> pathname"));
    c.ok("HELP FROB", 502);
    let site = c.ok("SITE HELP", 214);
    assert!(site.contains("UMASK") && site.contains("IDLE"), "{site}");
    server.files().write("f", b"x");
    assert!(c.ok("SITE UMASK", 200).contains("022"));
    c.ok("SITE UMASK 077", 200);
    assert!(c.ok("SITE UMASK", 200).contains("077"));
    c.ok("SITE UMASK 1777", 501);
    c.ok("MKD private", 257);
    assert!(server.files().is_dir("private"));
    assert!(c.ok("SITE IDLE", 200).contains("300"));
    c.ok("SITE IDLE 600", 200);
    assert!(c.ok("STAT", 211).contains("Session timeout in seconds is 600"));
    c.ok("SITE IDLE 5", 501);
    c.ok("SITE FROB", 500);
    let feat = c.ok("FEAT", 211);
    for f in ["EPSV", "EPRT", "PASV", "SIZE", "MDTM", "REST STREAM", "UTF8"] {
        assert!(feat.contains(&format!(" {f}\r\n")), "{f}: {feat}");
    }
    c.ok("OPTS UTF8 ON", 200);
    c.ok("OPTS FROB", 501);
    c.ok("SIZE f", 213).contains("213 1").then_some(()).unwrap();
    c.ok("SIZE private", 550);
    let modified = server.files().metadata("f").unwrap().modified;
    assert_eq!(c.ok("MDTM f", 213), format!("213 {}\r\n", ferroftp_proto::listing::mdtm_timestamp(modified)));
    c.ok("MDTM private", 550);
    c.ok("MDTM missing", 550);
}

/// SITE CHMOD sets mode bits on disk, and SITE UMASK clears them from new
/// directories: the local backend's own business.
#[test]
fn site_chmod_and_umask_set_mode_bits_on_disk() {
    let server = TestServer::start();
    let mut c = server.login();
    assert!(c.ok("SITE HELP", 214).contains("CHMOD"));
    std::fs::write(server.path("f"), b"x").unwrap();
    c.ok("SITE CHMOD 600 f", 200);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(server.path("f")).unwrap().permissions().mode() & 0o777, 0o600);
    c.ok("SITE CHMOD 600 missing", 550);
    c.ok("SITE CHMOD 9 f", 501);
    c.ok("SITE UMASK 077", 200);
    c.ok("MKD private", 257);
    assert_eq!(std::fs::metadata(server.path("private")).unwrap().permissions().mode() & 0o777, 0o700);
}

/// The memory backend keeps no mode bits: SITE CHMOD is refused with 502
/// naming the storage, and neither FEAT, HELP nor SITE HELP offers it, while
/// FEAT still lists what the backend does support.
#[test]
fn site_chmod_is_refused_by_memory_storage_and_not_advertised() {
    let server = TestServer::start_on(Backend::Memory, |_| {});
    server.files().write("f", b"x");
    let mut c = server.connect();
    // Before login, FEAT describes the anonymous root's storage.
    let before_login = c.ok("FEAT", 211);
    assert!(!before_login.contains("CHMOD"), "{before_login}");
    c.ok("USER anonymous", 331);
    c.ok("PASS me@example.org", 230);
    assert_eq!(c.ok("SITE CHMOD 600 f", 502), "502 SITE CHMOD is not supported by this storage.\r\n");
    c.ok("SITE CHMOD 600 missing", 502);
    c.ok("SITE CHMOD 9 f", 501);
    assert_eq!(server.files().read("f").as_deref(), Some(&b"x"[..]));
    assert!(c.ok("MLST f", 250).contains(";UNIX.mode=0644; /f\r\n"));
    let site = c.ok("SITE HELP", 214);
    assert!(!site.contains("CHMOD") && site.contains("UMASK") && site.contains("IDLE"), "{site}");
    let help = c.ok("HELP", 214);
    assert!(!help.contains("CHMOD") && help.contains("SITE"), "{help}");
    let feat = c.ok("FEAT", 211);
    assert!(!feat.contains("CHMOD"), "{feat}");
    for f in [
        "MFMT",
        "AVBL",
        "SIZE",
        "MDTM",
        "REST STREAM",
        "UTF8",
        "MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;",
        "HASH SHA-1;SHA-256*;SHA-512;MD5;CRC32;",
    ] {
        assert!(feat.contains(&format!(" {f}\r\n")), "{f} missing: {feat}");
    }
    for verb in ["APPE", "MFMT", "AVBL", "RNFR"] {
        c.ok(&format!("HELP {verb}"), 214);
    }
    let help_site = c.ok("HELP SITE", 214);
    assert!(!help_site.contains("CHMOD"), "HELP SITE offers CHMOD: {help_site}");
}

fn stat_of_a_path_lists_over_control(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    files.write("one.txt", b"12345");
    files.mkdir("dir");
    files.write("dir/inner", b"1");
    let mut c = server.login();
    let stat = c.ok("STAT /", 213);
    assert!(stat.starts_with("213-Status of /:\r\n"), "{stat}");
    assert!(
        stat.contains("one.txt\r\n") && stat.contains(" dir\r\n") && stat.ends_with("213 End of status\r\n"),
        "{stat}"
    );
    assert!(c.ok("STAT one.txt", 213).contains("             5 "));
    assert!(c.ok("STAT dir", 213).contains(" inner\r\n"));
    c.ok("STAT missing", 550);
}

fn smnt_switches_to_named_mounts(backend: Backend) {
    // The mount is a directory on disk, or in memory the subtree at its
    // path (the configuration wants a directory on disk there too). The
    // memory server's anonymous root is a subtree of its own here, which
    // the mount is not inside.
    let mount = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(backend, |f| {
        f.mounts = Some([("pub".to_string(), mount.path().to_path_buf())].into());
        f.anonymous_mounts = Some(vec!["pub".into()]);
        if backend == Backend::Memory {
            f.root = Some("/anonymous".into());
        }
    });
    server.root_at(mount.path()).write("in-mount.txt", b"m");
    server.files().write("in-home.txt", b"h");
    let mut c = server.login();
    c.ok("SMNT nope", 550);
    c.ok("SMNT pub", 250);
    c.ok("PWD", 257);
    let names = String::from_utf8(c.fetch(Mode::Pasv, "NLST")).unwrap();
    assert_eq!(names, "in-mount.txt\r\n");
    c.ok("SMNT ~", 250);
    let names = String::from_utf8(c.fetch(Mode::Pasv, "NLST")).unwrap();
    assert_eq!(names, "in-home.txt\r\n");
    // Uploads in the mount land there.
    c.ok("SMNT pub", 250);
    c.upload(Mode::Pasv, "STOR up.txt", b"up");
    assert_eq!(server.root_at(mount.path()).read("up.txt").as_deref(), Some(&b"up"[..]));
    assert!(!server.files().exists("up.txt"));
}

/// With `storage = "memory"` the anonymous root is a path in the tree and
/// need not be a directory on disk; a mount is a path in the same tree
/// (served from it, never read from disk), so it should not need one
/// either.
#[test]
fn memory_mounts_need_no_directory_on_disk() {
    let nowhere = "/ferroftp-tests-not-on-disk";
    assert!(!std::path::Path::new(nowhere).exists());
    let in_the_tree = |f: &mut FileConfig| {
        f.root = Some(format!("{nowhere}/anonymous").into());
        f.mounts = Some([("pub".to_string(), format!("{nowhere}/pub").into())].into());
        f.anonymous_mounts = Some(vec!["pub".into()]);
    };
    assert_memory_config_accepted(in_the_tree);
    let server = TestServer::start_on(Backend::Memory, in_the_tree);
    server.root_at(format!("{nowhere}/pub").as_ref()).write("in-mount.txt", b"m");
    let mut c = server.login();
    c.ok("SMNT pub", 250);
    assert_eq!(c.fetch(Mode::Pasv, "NLST"), b"in-mount.txt\r\n");
}

/// As for mounts: a virtual host's root in memory is a path in the tree.
#[test]
fn memory_host_roots_need_no_directory_on_disk() {
    let nowhere = "/ferroftp-tests-not-on-disk";
    assert!(!std::path::Path::new(nowhere).exists());
    let in_the_tree = |f: &mut FileConfig| {
        f.root = Some(format!("{nowhere}/anonymous").into());
        let host =
            ferroftp_server::config::HostFileConfig { root: Some(format!("{nowhere}/a").into()), ..Default::default() };
        f.hosts = Some([("a.example".to_string(), host)].into());
    };
    assert_memory_config_accepted(in_the_tree);
    let server = TestServer::start_on(Backend::Memory, in_the_tree);
    server.root_at(format!("{nowhere}/a").as_ref()).write("on-a", b"a");
    let mut c = server.connect();
    c.ok("HOST a.example", 220);
    c.ok("USER ftp", 331);
    c.ok("PASS x", 230);
    assert_eq!(c.fetch(Mode::Pasv, "NLST"), b"on-a\r\n");
}

/// Asserts a memory server's configuration adjusted by `adjust` is valid.
fn assert_memory_config_accepted(adjust: impl FnOnce(&mut FileConfig)) {
    let mut file = FileConfig { storage: Some("memory".into()), ..Default::default() };
    adjust(&mut file);
    if let Err(e) = ferroftp_server::Config::from_file(file) {
        panic!("a memory server's configuration was refused: {e}");
    }
}

fn idle_timeout_closes_with_421(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.idle_timeout = Some(1));
    let mut c = server.login();
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert_eq!(c.read_to_end(), "");
}
