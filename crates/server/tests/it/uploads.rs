//! Safe uploads: a broken, aborted or reset upload never replaces or
//! truncates a good file; partial uploads are kept or deleted as
//! configured; concurrent writers never interleave.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::helpers::*;

/// Starts `STOR name` and sends `bytes` without finishing the upload.
fn start_upload(c: &mut Ctl, name: &str, bytes: &[u8]) -> TcpStream {
    c.ok("TYPE I", 200);
    let pending = c.data(Mode::Pasv);
    c.send(&format!("STOR {name}"));
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    data.write_all(bytes).unwrap();
    data.flush().unwrap();
    data
}

/// Waits until the server has received `len` bytes of the upload (STAT
/// shows the progress), so what follows hits a transfer in flight.
fn wait_for_progress(c: &mut Ctl, len: usize) {
    for _ in 0..500 {
        let (code, text) = c.cmd("STAT");
        assert_eq!(code, 213, "{text}");
        if text.contains(&format!(", {len} bytes transferred")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the upload never reached {len} bytes");
}

/// The file's contents once they settle at `expected` (writes reach the
/// disk from tokio's blocking pool a moment after STAT counts them), or
/// what it holds after a bounded wait.
fn settled(path: &std::path::Path, expected: &[u8]) -> Vec<u8> {
    let mut now = read(path);
    for _ in 0..500 {
        if now == expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        now = read(path);
    }
    now
}

fn temp_files(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.root_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".ferroftp-upload-"))
        .collect()
}

#[test]
fn an_aborted_upload_leaves_the_old_file_intact() {
    let server = TestServer::start();
    let good = random_bytes(300_000, 1);
    std::fs::write(server.path("report.pdf"), &good).unwrap();
    let mut c = server.login();
    let _data = start_upload(&mut c, "report.pdf", &random_bytes(100_000, 2));
    wait_for_progress(&mut c, 100_000);
    // While the upload runs its temporary file is not listed.
    let mut other = server.login();
    assert_eq!(other.fetch(Mode::Pasv, "NLST"), b"report.pdf\r\n");
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert!(read(&server.path("report.pdf")) == good, "the good file changed");
    assert_eq!(temp_files(&server), Vec::<String>::new());
}

#[test]
fn a_reset_upload_leaves_the_old_file_intact() {
    let server = TestServer::start();
    let good = random_bytes(300_000, 3);
    std::fs::write(server.path("data.bin"), &good).unwrap();
    let mut c = server.login();
    let data = start_upload(&mut c, "data.bin", &random_bytes(100_000, 4));
    wait_for_progress(&mut c, 100_000);
    // Close with RST, as a crashed client or a broken network does.
    socket2::SockRef::from(&data).set_linger(Some(Duration::ZERO)).unwrap();
    drop(data);
    let (code, text) = c.reply();
    assert_eq!(code, 426, "{text}");
    assert!(read(&server.path("data.bin")) == good, "the good file changed");
    assert_eq!(temp_files(&server), Vec::<String>::new());
    c.ok("NOOP", 200);
}

#[test]
fn a_complete_upload_replaces_the_file() {
    let server = TestServer::start();
    std::fs::write(server.path("f"), b"old").unwrap();
    let mut c = server.login();
    c.ok("TYPE I", 200);
    let new = random_bytes(1_000_000, 5);
    c.upload(Mode::Pasv, "STOR f", &new);
    assert!(read(&server.path("f")) == new, "stored bytes differ");
    assert_eq!(temp_files(&server), Vec::<String>::new());
}

/// Descriptors of this process (the test server runs in it) still open
/// on `path` after it was replaced.
fn held_after_replace(path: &std::path::Path) -> usize {
    let gone = format!("{} (deleted)", path.display());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy() == gone)
        .count()
}

#[test]
fn replacing_a_big_file_lets_the_old_one_go() {
    // The old file is held across the rename and released on a thread
    // of its own after it: the new bytes must be in place and the old
    // file must not stay open (its space would never come back).
    let server = TestServer::start();
    let path = server.path("big");
    std::fs::write(&path, random_bytes(9 << 20, 1)).unwrap();
    let mut c = server.login();
    c.ok("TYPE I", 200);
    let new = random_bytes((9 << 20) + 3, 2);
    c.upload(Mode::Pasv, "STOR big", &new);
    assert!(read(&path) == new, "stored bytes differ");
    let mut waited = 0;
    while held_after_replace(&path) > 0 {
        assert!(waited < 1000, "the replaced file is still open");
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
    }
    assert_eq!(temp_files(&server), Vec::<String>::new());
}

#[test]
fn partial_new_uploads_are_kept_for_resume_by_default() {
    let server = TestServer::start();
    let mut c = server.login();
    let body = random_bytes(200_000, 6);
    let _data = start_upload(&mut c, "new.bin", &body[..80_000]);
    wait_for_progress(&mut c, 80_000);
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert!(
        settled(&server.path("new.bin"), &body[..80_000]) == body[..80_000],
        "the partial file is not what arrived"
    );
    // The client resumes where it stopped.
    c.ok("REST 80000", 350);
    c.upload(Mode::Pasv, "STOR new.bin", &body[80_000..]);
    assert!(read(&server.path("new.bin")) == body, "the resumed file differs");
    assert_eq!(temp_files(&server), Vec::<String>::new());
}

#[test]
fn partial_uploads_can_be_deleted() {
    let server = TestServer::start_with(|f| f.partial_uploads = Some("delete".into()));
    let mut c = server.login();
    let _data = start_upload(&mut c, "new.bin", &random_bytes(50_000, 7));
    wait_for_progress(&mut c, 50_000);
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert!(!server.path("new.bin").exists());
    assert_eq!(temp_files(&server), Vec::<String>::new());
    // Appending in place is never deleted.
    std::fs::write(server.path("log"), b"kept").unwrap();
    c.ok("TYPE I", 200);
    let pending = c.data(Mode::Pasv);
    c.send("APPE log");
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    data.write_all(b" more").unwrap();
    wait_for_progress(&mut c, 5);
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert_eq!(settled(&server.path("log"), b"kept more"), b"kept more");
}

#[test]
fn concurrent_uploads_to_one_name_never_interleave() {
    let server = TestServer::start();
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| random_bytes(2_000_000, 10 + i)).collect();
    std::thread::scope(|scope| {
        for body in &bodies {
            let server = &server;
            scope.spawn(move || {
                let mut c = server.login();
                c.ok("TYPE I", 200);
                let pending = c.data(Mode::Pasv);
                c.send("STOR same.bin");
                assert_eq!(c.reply().0, 150);
                let mut data = pending.open();
                for chunk in body.chunks(65_536) {
                    data.write_all(chunk).unwrap();
                }
                drop(data);
                assert_eq!(c.reply().0, 226);
            });
        }
    });
    let result = read(&server.path("same.bin"));
    assert!(bodies.contains(&result), "the file is a mix of uploads");
    assert_eq!(temp_files(&server), Vec::<String>::new());
}

#[test]
fn without_atomic_uploads_stor_writes_in_place() {
    let server = TestServer::start_with(|f| f.atomic_uploads = Some(false));
    std::fs::write(server.path("f"), b"old contents").unwrap();
    let mut c = server.login();
    let _data = start_upload(&mut c, "f", b"new");
    wait_for_progress(&mut c, 3);
    assert_eq!(settled(&server.path("f"), b"new"), b"new", "written in place while running");
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert_eq!(settled(&server.path("f"), b"new"), b"new");
}

/// Bytes the running transfer has moved, as STAT shows them.
fn progress(c: &mut Ctl) -> Option<u64> {
    let (code, text) = c.cmd("STAT");
    assert_eq!(code, 213, "{text}");
    let before = text.split(" bytes transferred").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

/// Sends a pattern of bytes until the server closes the connection (at
/// most 1 GiB); the bytes sent.
fn keep_sending(mut data: TcpStream) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let chunk = random_bytes(256 * 1024, 42);
        let mut sent = 0u64;
        while sent < 1 << 30 && data.write_all(&chunk).is_ok() {
            sent += chunk.len() as u64;
        }
        sent
    })
}

#[test]
fn an_upload_aborted_while_streaming_leaves_the_old_file_intact() {
    // A client sending without pause past the first batch: the upload
    // streams on a thread of its own when ABOR comes.
    let server = TestServer::start();
    let good = random_bytes(300_000, 1);
    std::fs::write(server.path("image.iso"), &good).unwrap();
    let mut c = server.login();
    let data = start_upload(&mut c, "image.iso", &[]);
    let sender = keep_sending(data);
    for _ in 0..500 {
        if progress(&mut c).is_some_and(|n| n > 4 << 20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    let sent = sender.join().unwrap();
    assert!(sent < 1 << 30, "the data connection stayed open after ABOR");
    assert!(read(&server.path("image.iso")) == good, "the good file changed");
    assert_eq!(temp_files(&server), Vec::<String>::new());
    // The session carries on, and the next upload streams to its end.
    let body = random_bytes(6 << 20, 5);
    c.upload(Mode::Pasv, "STOR image.iso", &body);
    assert!(read(&server.path("image.iso")) == body);
}

#[test]
fn a_big_upload_that_pauses_mid_stream_arrives_whole() {
    // The upload streams on a thread, goes back to the async path when the
    // client pauses, and streams again when it resumes.
    let server = TestServer::start();
    let body = random_bytes(9 * 1024 * 1024 + 77, 31);
    let mut c = server.login();
    let mut data = start_upload(&mut c, "paused.bin", &body[..3 << 20]);
    std::thread::sleep(Duration::from_millis(300));
    data.write_all(&body[3 << 20..6 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    data.write_all(&body[6 << 20..]).unwrap();
    drop(data);
    assert_eq!(c.reply().0, 226);
    assert!(read(&server.path("paused.bin")) == body, "the bytes differ");
}

#[test]
fn a_streaming_upload_is_out_of_the_runtimes_epoll_while_its_thread_reads() {
    // Watched by the runtime while a thread reads it, the socket would
    // wake a runtime thread for every segment that arrives, for nothing.
    let server = TestServer::start();
    let body = random_bytes(32 << 20, 41);
    let mut c = server.login();
    assert!(server_end_in_an_epoll(&c.stream), "the check itself must see the control connection watched");
    let mut data = start_upload(&mut c, "unwatched.bin", &body[..4 << 20]);
    let mut looks = Vec::new();
    for chunk in body[4 << 20..].chunks(256 << 10) {
        data.write_all(chunk).unwrap();
        looks.push(server_end_in_an_epoll(&data));
    }
    drop(data);
    assert_eq!(c.reply().0, 226);
    assert!(read(&server.path("unwatched.bin")) == body, "the bytes differ");
    assert!(looks.contains(&false), "the data connection stayed in the runtime's epoll all along: {looks:?}");
}
