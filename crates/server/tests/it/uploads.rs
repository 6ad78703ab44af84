//! Safe uploads: a broken, aborted or reset upload never replaces or
//! truncates a good file; partial uploads are kept or deleted as
//! configured; concurrent writers never interleave. Each runs on both
//! storage backends, except the tests of the local backend's own machinery
//! (descriptors of replaced files, the streaming threads and epoll).

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use rustix::fs::inotify::{ReadFlags, WatchFlags};

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

/// APPE `name` with `bytes`, then ABOR once the server has them all
/// (426, 226), leaving the data connection open as a client would.
fn append_then_abort(c: &mut Ctl, name: &str, bytes: &[u8]) {
    let pending = c.data(Mode::Pasv);
    c.send(&format!("APPE {name}"));
    assert_eq!(c.reply().0, 150);
    let mut data = pending.open();
    data.write_all(bytes).unwrap();
    wait_for_progress(c, bytes.len());
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    drop(data);
}

/// Waits until the server has received `len` bytes of the upload (STAT
/// shows the progress), so what follows hits a transfer in flight. Polled:
/// the server tells how far a transfer has come only when asked.
fn wait_for_progress(c: &mut Ctl, len: usize) {
    let progress = format!(", {len} bytes transferred");
    poll_until(&format!("the upload reaches {len} bytes"), || {
        let (code, text) = c.cmd("STAT");
        assert_eq!(code, 213, "{text}");
        text.contains(&progress)
    });
}

/// Waits until the server has taken the `sent` bytes of the upload and,
/// if a thread streams it, until the thread has given it back to the
/// runtime for want of more (the data connection is in the runtime's epoll
/// again): the client has paused as far as the server is concerned.
/// Polled: neither is announced.
fn wait_until_the_pause_is_seen(c: &mut Ctl, data: &TcpStream, sent: usize) {
    wait_for_progress(c, sent);
    poll_until("the streaming thread gives the upload back", || server_end_in_an_epoll(data));
}

on_both_backends!(
    an_aborted_upload_leaves_the_old_file_intact,
    a_reset_upload_leaves_the_old_file_intact,
    a_complete_upload_replaces_the_file,
    partial_new_uploads_are_kept_for_resume_by_default,
    partial_uploads_can_be_deleted,
    concurrent_uploads_to_one_name_never_interleave,
    without_atomic_uploads_stor_writes_in_place,
    an_upload_aborted_while_streaming_leaves_the_old_file_intact,
    a_big_upload_that_pauses_mid_stream_arrives_whole,
);

/// The memory tree counts an upload's bytes against its capacity as they
/// arrive; an upload aborted and not kept gives every one back, so AVBL
/// shows the whole capacity again, and a kept part is counted for what it
/// holds.
#[test]
fn an_aborted_upload_gives_its_bytes_back_to_the_memory_tree() {
    let capacity = 1 << 20;
    let server = TestServer::start_on(Backend::Memory, |f| {
        f.storage_capacity = Some(capacity);
        f.partial_uploads = Some("delete".into());
    });
    let mut c = server.login();
    assert_eq!(c.ok("AVBL", 213), format!("213 {capacity}\r\n"));
    let _data = start_upload(&mut c, "gone.bin", &random_bytes(50_000, 9));
    wait_for_progress(&mut c, 50_000);
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert!(!server.files().exists("gone.bin"));
    assert_eq!(c.ok("AVBL", 213), format!("213 {capacity}\r\n"), "the aborted upload's bytes are still counted");
    // An append is kept when broken off: the tree holds, and counts, the
    // old bytes and what arrived.
    server.files().write("log", b"kept");
    append_then_abort(&mut c, "log", b" more");
    let stored = server.files().read("log").unwrap();
    let name = ferroftp_server::storage::memory::ENTRY_OVERHEAD + "log".len() as u64;
    assert_eq!(c.ok("AVBL", 213), format!("213 {}\r\n", capacity - stored.len() as u64 - name));
    assert_eq!(stored, b"kept more");
}

fn an_aborted_upload_leaves_the_old_file_intact(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    let good = random_bytes(300_000, 1);
    files.write("report.pdf", &good);
    let mut c = server.login();
    let _data = start_upload(&mut c, "report.pdf", &random_bytes(100_000, 2));
    wait_for_progress(&mut c, 100_000);
    // While the upload runs its temporary file is not listed.
    let mut other = server.login();
    assert_eq!(other.fetch(Mode::Pasv, "NLST"), b"report.pdf\r\n");
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert!(files.read("report.pdf") == Some(good), "the good file changed");
    files.assert_holds_only("", &["report.pdf"]);
}

fn a_reset_upload_leaves_the_old_file_intact(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    let good = random_bytes(300_000, 3);
    files.write("data.bin", &good);
    let mut c = server.login();
    let data = start_upload(&mut c, "data.bin", &random_bytes(100_000, 4));
    wait_for_progress(&mut c, 100_000);
    // Close with RST, as a crashed client or a broken network does.
    socket2::SockRef::from(&data).set_linger(Some(Duration::ZERO)).unwrap();
    drop(data);
    let (code, text) = c.reply();
    assert_eq!(code, 426, "{text}");
    assert!(files.read("data.bin") == Some(good), "the good file changed");
    files.assert_holds_only("", &["data.bin"]);
    c.ok("NOOP", 200);
}

fn a_complete_upload_replaces_the_file(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    files.write("f", b"old");
    let mut c = server.login();
    c.ok("TYPE I", 200);
    let new = random_bytes(1_000_000, 5);
    c.upload(Mode::Pasv, "STOR f", &new);
    assert!(files.read("f") == Some(new), "stored bytes differ");
    files.assert_holds_only("", &["f"]);
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
    // The old file's inode goes (inotify says so) once nothing holds it.
    let mut old_file = DiskWatch::new(&path, WatchFlags::DELETE_SELF);
    let mut c = server.login();
    c.ok("TYPE I", 200);
    let new = random_bytes((9 << 20) + 3, 2);
    c.upload(Mode::Pasv, "STOR big", &new);
    assert!(read(&path) == new, "stored bytes differ");
    old_file.wait_for("the replaced file is let go", ReadFlags::DELETE_SELF);
    assert_eq!(held_after_replace(&path), 0, "the replaced file is still open");
    server.files().assert_holds_only("", &["big"]);
}

fn partial_new_uploads_are_kept_for_resume_by_default(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    let mut c = server.login();
    let body = random_bytes(200_000, 6);
    let _data = start_upload(&mut c, "new.bin", &body[..80_000]);
    wait_for_progress(&mut c, 80_000);
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    // The partial file is settled before the 426.
    let kept = files.read("new.bin");
    assert!(
        kept.as_deref() == Some(&body[..80_000]),
        "the partial file is not what arrived: {:?} bytes",
        kept.map(|k| k.len())
    );
    // The client resumes where it stopped.
    c.ok("REST 80000", 350);
    c.upload(Mode::Pasv, "STOR new.bin", &body[80_000..]);
    assert!(files.read("new.bin") == Some(body), "the resumed file differs");
    files.assert_holds_only("", &["new.bin"]);
}

fn partial_uploads_can_be_deleted(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.partial_uploads = Some("delete".into()));
    let files = server.files();
    let mut c = server.login();
    let _data = start_upload(&mut c, "new.bin", &random_bytes(50_000, 7));
    wait_for_progress(&mut c, 50_000);
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert!(!files.exists("new.bin"));
    files.assert_holds_only("", &[]);
    // Appending in place is never deleted.
    files.write("log", b"kept");
    c.ok("TYPE I", 200);
    append_then_abort(&mut c, "log", b" more");
    assert_eq!(files.read("log").as_deref(), Some(&b"kept more"[..]));
    files.assert_holds_only("", &["log"]);
}

fn concurrent_uploads_to_one_name_never_interleave(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
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
    let result = server.files().read("same.bin").expect("no file");
    assert!(bodies.contains(&result), "the file is a mix of uploads");
    server.files().assert_holds_only("", &["same.bin"]);
}

fn without_atomic_uploads_stor_writes_in_place(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.atomic_uploads = Some(false));
    let files = server.files();
    files.write("f", b"old contents");
    let mut c = server.login();
    let _data = start_upload(&mut c, "f", b"new");
    wait_for_progress(&mut c, 3);
    match backend {
        // The bytes reach the file from tokio's blocking pool a moment
        // after STAT counts them: wait for the change on disk.
        Backend::Local => {
            let mut watch = DiskWatch::new(&files.disk_path("f").unwrap(), WatchFlags::MODIFY);
            watch.wait_until("the upload is written in place while running", || {
                files.read("f").as_deref() == Some(&b"new"[..])
            });
        }
        // The memory backend gathers an upload apart and lands it when it
        // ends, whatever atomic_uploads says (storage/memory.rs).
        Backend::Memory => {
            assert_eq!(files.read("f").as_deref(), Some(&b"old contents"[..]), "landed before the upload ended")
        }
    }
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    assert_eq!(files.read("f").as_deref(), Some(&b"new"[..]));
    files.assert_holds_only("", &["f"]);
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

fn an_upload_aborted_while_streaming_leaves_the_old_file_intact(backend: Backend) {
    // A client sending without pause past the first batch: on the local
    // backend the upload streams on a thread of its own when ABOR comes.
    let server = TestServer::start_on(backend, |_| {});
    let files = server.files();
    let good = random_bytes(300_000, 1);
    files.write("image.iso", &good);
    let mut c = server.login();
    let data = start_upload(&mut c, "image.iso", &[]);
    let sender = keep_sending(data);
    // Polled: the server tells how far the upload has come only when asked.
    poll_until("the upload passes 4 MiB", || progress(&mut c).is_some_and(|n| n > 4 << 20));
    c.send("ABOR");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    let sent = sender.join().unwrap();
    assert!(sent < 1 << 30, "the data connection stayed open after ABOR");
    assert!(files.read("image.iso") == Some(good), "the good file changed");
    files.assert_holds_only("", &["image.iso"]);
    // The session carries on, and the next upload streams to its end.
    let body = random_bytes(6 << 20, 5);
    c.upload(Mode::Pasv, "STOR image.iso", &body);
    assert!(files.read("image.iso") == Some(body), "the stored bytes differ");
}

fn a_big_upload_that_pauses_mid_stream_arrives_whole(backend: Backend) {
    // On the local backend the upload streams on a thread, goes back to the
    // async path when the client pauses, and streams again when it resumes.
    let server = TestServer::start_on(backend, |_| {});
    let body = random_bytes(9 * 1024 * 1024 + 77, 31);
    let mut c = server.login();
    let mut data = start_upload(&mut c, "paused.bin", &body[..3 << 20]);
    wait_until_the_pause_is_seen(&mut c, &data, 3 << 20);
    data.write_all(&body[3 << 20..6 << 20]).unwrap();
    wait_until_the_pause_is_seen(&mut c, &data, 6 << 20);
    data.write_all(&body[6 << 20..]).unwrap();
    drop(data);
    assert_eq!(c.reply().0, 226);
    assert!(server.files().read("paused.bin") == Some(body), "the bytes differ");
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
