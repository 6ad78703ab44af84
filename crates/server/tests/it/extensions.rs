//! FEAT, OPTS, MLST/MLSD (RFC 3659), MFMT, HASH, AVBL, CLNT and HOST
//! (RFC 7151), checked against what the storage holds (and, on the local
//! backend, against the files on disk), on both storage backends.

use std::os::unix::fs::MetadataExt;

use sha2::Digest;

use crate::helpers::*;
use ferroftp_server::storage::memory::ENTRY_OVERHEAD;

on_both_backends!(
    feat_lists_every_extension_with_a_leading_space,
    mlst_and_mlsd_facts,
    mfmt_sets_the_modification_time,
    hash_matches_a_local_computation,
    avbl_reports_free_space,
    host_picks_a_virtual_host_before_user,
);

fn feat_lists_every_extension_with_a_leading_space(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.connect();
    let feat = c.ok("FEAT", 211);
    for f in [
        " MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;",
        " HASH SHA-1;SHA-256*;SHA-512;MD5;CRC32;",
        " MFMT",
        " AVBL",
        " CLNT",
        " HOST",
        " UTF8",
        " TVFS",
        " REST STREAM",
    ] {
        assert!(feat.contains(&format!("{f}\r\n")), "{f:?} missing: {feat}");
    }
    c.ok("CLNT ferroftp-tests 1.0", 200);
}

fn mlst_and_mlsd_facts(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    files.write("测试 file.txt", b"12345");
    files.mkdir("sub dir");
    let facts = files.metadata("测试 file.txt").unwrap();
    let unique = facts.unique.expect("no unique fact");
    if let Some(path) = files.disk_path("测试 file.txt") {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(
            (facts.modified, unique.device, unique.inode, facts.mode),
            (meta.mtime(), meta.dev(), meta.ino(), meta.mode() & 0o7777),
            "the storage's facts are not the disk's"
        );
    }
    let mut c = server.login();
    let mlst = c.ok("MLST 测试 file.txt", 250);
    let expected = format!(
        " type=file;size=5;modify={};perm=adfrw;unique={:x}g{:x};UNIX.mode=0{:o}; /测试 file.txt\r\n",
        ferroftp_proto::listing::mdtm_timestamp(facts.modified),
        unique.device,
        unique.inode,
        facts.mode
    );
    assert!(mlst.starts_with("250-Listing /测试 file.txt\r\n"), "{mlst}");
    assert!(mlst.contains(&expected), "{mlst}\nexpected {expected}");
    assert!(mlst.ends_with("250 End\r\n"), "{mlst}");
    c.ok("MLST missing", 550);
    let listing = String::from_utf8(c.fetch(Mode::Pasv, "MLSD")).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(lines[0].starts_with("type=cdir;") && lines[0].ends_with("; ."), "{listing}");
    assert!(lines.iter().any(|l| l.starts_with("type=dir;") && l.ends_with("; sub dir")), "{listing}");
    assert!(lines.iter().any(|l| l.starts_with("type=file;size=5;") && l.ends_with("; 测试 file.txt")), "{listing}");
    // The same facts as MLST, unique (device and inode) included: MLSD
    // reads them with its own statx.
    let same_facts = expected.trim_start().trim_end().replace("; /测试 file.txt", "; 测试 file.txt");
    assert!(lines.contains(&same_facts.as_str()), "{listing}\nexpected {same_facts}");
    c.ok("PASV", 227);
    c.ok("MLSD 测试 file.txt", 501);
    // OPTS MLST picks the facts; unknown ones are dropped.
    assert_eq!(c.ok("OPTS MLST size;Type;bogus;", 200), "200 MLST OPTS type;size;\r\n");
    assert!(c.ok("MLST 测试 file.txt", 250).contains(" type=file;size=5; /测试 file.txt\r\n"));
    assert!(c.ok("FEAT", 211).contains(" MLST type*;size*;modify;perm;unique;UNIX.mode;\r\n"));
    // A read-only user's perm fact says so.
    let ro = TestServer::start_on(backend, |f| f.anonymous_write = Some(false));
    ro.files().write("f", b"x");
    assert!(ro.login().ok("MLST f", 250).contains(";perm=r;"));
}

fn mfmt_sets_the_modification_time(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    files.write("old file", b"x");
    let mut c = server.login();
    assert_eq!(c.ok("MFMT 20200229123456 old file", 213), "213 Modify=20200229123456; old file\r\n");
    let mtime = files.metadata("old file").unwrap().modified;
    assert_eq!(ferroftp_proto::listing::mdtm_timestamp(mtime), "20200229123456");
    if let Some(path) = files.disk_path("old file") {
        assert_eq!(std::fs::metadata(path).unwrap().mtime(), mtime, "the disk's mtime differs");
    }
    assert_eq!(c.ok("MDTM old file", 213), "213 20200229123456\r\n");
    c.ok("MFMT 20201301000000 old file", 501);
    c.ok("MFMT 20200229123456 missing", 550);
    assert_eq!(files.read("old file").as_deref(), Some(&b"x"[..]), "MFMT changed the bytes");
    let ro = TestServer::start_on(backend, |f| f.anonymous_write = Some(false));
    ro.files().write("f", b"x");
    let before = ro.files().metadata("f").unwrap().modified;
    ro.login().ok("MFMT 20200229123456 f", 550);
    assert_eq!(ro.files().metadata("f").unwrap().modified, before);
}

fn hash_matches_a_local_computation(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let body = random_bytes(3_000_000, 8);
    server.files().write("big file.bin", &body);
    let mut c = server.login();
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let sha256 = hex(&sha2::Sha256::digest(&body));
    assert_eq!(c.ok("HASH big file.bin", 213), format!("213 SHA-256 0-2999999 {sha256} big file.bin\r\n"));
    assert_eq!(c.ok("OPTS HASH", 200), "200 SHA-256\r\n");
    assert_eq!(c.ok("OPTS HASH sha-512", 200), "200 SHA-512\r\n");
    let sha512 = hex(&sha2::Sha512::digest(&body));
    assert!(c.ok("HASH big file.bin", 213).contains(&format!("SHA-512 0-2999999 {sha512} ")));
    c.ok("OPTS HASH whirlpool", 501);
    assert!(c.ok("FEAT", 211).contains("SHA-512*;"));
    c.ok("OPTS HASH MD5", 200);
    let md5 = hex(&md5::Md5::digest(&body));
    assert!(c.ok("HASH big file.bin", 213).contains(&format!("MD5 0-2999999 {md5} ")));
    c.ok("OPTS HASH CRC32", 200);
    let crc = format!("{:08x}", crc32fast::hash(&body));
    assert!(c.ok("HASH big file.bin", 213).contains(&format!("CRC32 0-2999999 {crc} ")));
    c.ok("HASH missing", 550);
    c.ok("MKD d", 257);
    c.ok("HASH d", 553);
}

fn avbl_reports_free_space(backend: Backend) {
    // The memory tree tells exactly what its capacity leaves.
    let capacity = 1 << 20;
    let server = TestServer::start_on(backend, |f| {
        if backend == Backend::Memory {
            f.storage_capacity = Some(capacity);
        }
    });
    server.files().write("kilobyte", &[7; 1000]);
    server.files().mkdir("dir");
    let mut c = server.login();
    let text = c.ok("AVBL", 213);
    let free: u64 = text[4..].trim().parse().unwrap();
    assert!(free > 0, "{text}");
    if backend == Backend::Memory {
        // Each name costs the tree ENTRY_OVERHEAD bytes and its length.
        let names = 2 * ENTRY_OVERHEAD + ("kilobyte".len() + "dir".len()) as u64;
        assert_eq!(free, capacity - 1000 - names, "{text}");
    }
    let text = c.ok("AVBL dir", 213);
    assert!(text[4..].trim().parse::<u64>().unwrap() > 0, "{text}");
    c.ok("AVBL missing", 550);
}

fn host_picks_a_virtual_host_before_user(backend: Backend) {
    // The hosts' roots are directories on disk, or in memory the subtrees
    // at their paths (the configuration wants directories on disk there
    // too); the memory server's own anonymous root is a subtree that holds
    // neither.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let hosts: std::collections::BTreeMap<String, ferroftp_server::config::HostFileConfig> = [
        (
            "a.example".to_string(),
            ferroftp_server::config::HostFileConfig { root: Some(a.path().into()), ..Default::default() },
        ),
        (
            "b.example".to_string(),
            ferroftp_server::config::HostFileConfig { root: Some(b.path().into()), ..Default::default() },
        ),
    ]
    .into();
    let server = TestServer::start_on(backend, |f| {
        f.hosts = Some(hosts.clone());
        if backend == Backend::Memory {
            f.root = Some("/anonymous".into());
        }
    });
    server.root_at(a.path()).write("on-a", b"a");
    server.root_at(b.path()).write("on-b", b"b");
    let mut c = server.connect();
    c.ok("HOST unknown.example", 504);
    c.ok("HOST bad/name", 501);
    c.ok("HOST B.Example", 220);
    c.ok("USER anonymous", 331);
    c.ok("HOST a.example", 503);
    c.ok("PASS x", 230);
    assert_eq!(c.fetch(Mode::Pasv, "NLST"), b"on-b\r\n");
    let mut d = server.connect();
    d.ok("HOST a.example", 220);
    d.ok("USER ftp", 331);
    d.ok("PASS x", 230);
    assert_eq!(d.fetch(Mode::Pasv, "NLST"), b"on-a\r\n");
    // Without HOST, the server's own root.
    server.files().write("default", b"d");
    assert_eq!(server.login().fetch(Mode::Pasv, "NLST"), b"default\r\n");
    // A server without virtual hosts takes any name as itself.
    let plain = TestServer::start_on(backend, |_| {});
    let mut e = plain.connect();
    e.ok("HOST ftp.example.com", 220);
    e.ok("USER ftp", 331);
    e.ok("PASS x", 230);
}
