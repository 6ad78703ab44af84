//! Every command's reply codes over a raw control connection.

use crate::helpers::*;

#[test]
fn seed_session_by_hand_with_bare_lf() {
    let server = TestServer::start();
    std::fs::write(server.path("测试 文件 1.txt"), b"hello").unwrap();
    std::fs::create_dir(server.path("目录 dir")).unwrap();
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

#[test]
fn commands_are_case_insensitive_and_pipelined_in_order() {
    let server = TestServer::start();
    let mut c = server.connect();
    c.send_raw(b"user ftp\r\npass x\r\nnoop\r\nsyst\r\npwd\r\nFOO\r\n");
    let codes: Vec<u16> = (0..6).map(|_| c.reply().0).collect();
    assert_eq!(codes, [331, 230, 200, 215, 257, 500]);
}

#[test]
fn login_gate_and_sequence_errors() {
    let server = TestServer::start();
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

#[test]
fn anonymous_can_be_refused() {
    let server = TestServer::start_with(|f| f.anonymous = Some(false));
    let mut c = server.connect();
    c.ok("USER anonymous", 331);
    c.ok("PASS x", 530);
    c.ok("PWD", 530);
}

#[test]
fn virtual_users_from_users_file() {
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
    let server = TestServer::start_with(|f| f.users = Some(users.clone()));
    let mut c = server.connect();
    c.ok("USER alice", 331);
    c.ok("PASS wrong", 530);
    c.ok("USER nobody", 331);
    c.ok("PASS wonder land", 530);
    c.ok("USER alice", 331);
    c.ok("PASS wonder land", 230);
    c.ok("MKD made", 257);
    assert!(home.path().join("made").is_dir());
    c.ok("STAT", 211).contains("Logged in as alice").then_some(()).unwrap();
}

#[test]
fn directory_commands() {
    let server = TestServer::start();
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
    assert!(!server.path("a\"b/sub dir").exists());
    c.ok("CWD /", 250);
    std::fs::write(server.path("file"), b"x").unwrap();
    c.ok("CWD file", 550);
    c.ok("RMD a\"b", 250);
    c.ok("RMD nonexistent", 550);
    c.ok("DELE nonexistent", 550);
    c.ok("DELE file", 250);
    assert!(!server.path("file").exists());
    c.ok("MKD d", 257);
    c.ok("DELE d", 550);
    std::fs::write(server.path("d/inner"), b"x").unwrap();
    c.ok("RMD d", 550);
}

#[test]
fn rename() {
    let server = TestServer::start();
    std::fs::write(server.path("old name"), b"content").unwrap();
    let mut c = server.login();
    c.ok("RNTO x", 503);
    c.ok("RNFR missing", 550);
    c.ok("RNFR old name", 350);
    c.ok("RNTO new name", 250);
    assert_eq!(read(&server.path("new name")), b"content");
    assert!(!server.path("old name").exists());
    // Anything between RNFR and RNTO cancels the rename.
    c.ok("RNFR new name", 350);
    c.ok("NOOP", 200);
    c.ok("RNTO third", 503);
}

#[test]
fn read_only_anonymous_cannot_change_anything() {
    let server = TestServer::start_with(|f| f.anonymous_write = Some(false));
    std::fs::write(server.path("keep"), b"keep").unwrap();
    let mut c = server.login();
    c.ok("MKD x", 550);
    c.ok("DELE keep", 550);
    c.ok("RNFR keep", 550);
    c.ok("SITE CHMOD 777 keep", 550);
    c.ok("PASV", 227);
    c.ok("STOR new", 550);
    c.ok("APPE keep", 550);
    assert_eq!(read(&server.path("keep")), b"keep");
    assert!(!server.path("new").exists());
}

#[test]
fn parameters_type_mode_stru() {
    let server = TestServer::start();
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

#[test]
fn help_site_feat_opts() {
    let server = TestServer::start();
    let mut c = server.login();
    let help = c.ok("HELP", 214);
    for verb in ["ABOR", "ACCT", "SMNT", "STOU", "EPSV", "SITE", "XPWD"] {
        assert!(help.contains(verb), "{verb} missing: {help}");
    }
    assert!(c.ok("HELP retr", 214).contains("RETR <sp> pathname"));
    c.ok("HELP FROB", 502);
    assert!(c.ok("SITE HELP", 214).contains("CHMOD"));
    std::fs::write(server.path("f"), b"x").unwrap();
    c.ok("SITE CHMOD 600 f", 200);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(server.path("f")).unwrap().permissions().mode() & 0o777, 0o600);
    c.ok("SITE CHMOD 600 missing", 550);
    c.ok("SITE CHMOD 9 f", 501);
    assert!(c.ok("SITE UMASK", 200).contains("022"));
    c.ok("SITE UMASK 077", 200);
    c.ok("MKD private", 257);
    assert_eq!(std::fs::metadata(server.path("private")).unwrap().permissions().mode() & 0o777, 0o700);
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
    assert_eq!(c.ok("MDTM f", 213).len(), "213 20261124151616\r\n".len());
}

#[test]
fn stat_of_a_path_lists_over_control() {
    let server = TestServer::start();
    std::fs::write(server.path("one.txt"), b"12345").unwrap();
    std::fs::create_dir(server.path("dir")).unwrap();
    std::fs::write(server.path("dir/inner"), b"1").unwrap();
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

#[test]
fn smnt_switches_to_named_mounts() {
    let mount = tempfile::tempdir().unwrap();
    std::fs::write(mount.path().join("in-mount.txt"), b"m").unwrap();
    let server = TestServer::start_with(|f| {
        f.mounts = Some([("pub".to_string(), mount.path().to_path_buf())].into());
        f.anonymous_mounts = Some(vec!["pub".into()]);
    });
    std::fs::write(server.path("in-home.txt"), b"h").unwrap();
    let mut c = server.login();
    c.ok("SMNT nope", 550);
    c.ok("SMNT pub", 250);
    c.ok("PWD", 257);
    let names = String::from_utf8(c.fetch(Mode::Pasv, "NLST")).unwrap();
    assert_eq!(names, "in-mount.txt\r\n");
    c.ok("SMNT ~", 250);
    let names = String::from_utf8(c.fetch(Mode::Pasv, "NLST")).unwrap();
    assert_eq!(names, "in-home.txt\r\n");
}

#[test]
fn idle_timeout_closes_with_421() {
    let server = TestServer::start_with(|f| f.idle_timeout = Some(1));
    let mut c = server.login();
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert_eq!(c.read_to_end(), "");
}
