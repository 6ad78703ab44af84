//! Streaming transfers on a thread of their own: big uploads, and big
//! downloads to a client on this host.
//!
//! ## Uploads
//!
//! An upload that keeps the data connection full (a big file over a fast
//! link) is moved, once its first batch has filled, from the session's
//! task to a blocking thread that moves the bytes from the socket to the
//! file with splice(2): socket to pipe without a copy, pipe to the page
//! cache. On the async path every batch costs a hand-off to the blocking
//! pool and back, and every empty socket a trip through epoll: two thread
//! wake-ups per 256 KiB. Measured on a 1 GiB STOR into a new file
//! (docs/BENCHMARKS.md): 0.41-0.51 s of server CPU on the async path,
//! 0.31-0.38 s streaming; recv(2) and write(2) on the thread instead of
//! splice cost 0.36-0.39 s.
//!
//! ## Downloads to a loopback peer
//!
//! sendfile(2) hands page-cache pages to the socket. Over a network card
//! that saves a copy; over loopback there is no card, and the receiving
//! process copies out of those pages itself, cold from memory, while both
//! sides take and drop references on every 4 KiB page. Copying through a
//! buffer small enough to stay in the cache costs less in all (the sizes
//! tried are in docs/BENCHMARKS.md). So a download to a loopback peer (a
//! local proxy, a container's host, a test) that fills the socket buffer
//! is copied on a thread; every other one keeps sendfile.
//!
//! ## Both
//!
//! The thread gives the transfer back to the async path as soon as the
//! client pauses for [`PAUSE`], so a slow or stalled client never holds a
//! thread, and at most two transfers per core stream at once; the others
//! stay on the async path.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::{splice, SpliceFlags};

use super::TransferError;
use crate::quota::UploadCharge;
use crate::storage::{StorageError, Upload};

/// How long the client may pause before the transfer goes back to the
/// async path (and the thread to the pool).
const PAUSE: Timespec = Timespec { tv_sec: 0, tv_nsec: 50_000_000 };

/// The pipe's size asked for: bytes moved per pair of splice calls. The
/// kernel may give less (fs.pipe-max-size); any size works.
const PIPE_SIZE: usize = 1 << 20;

/// Transfers streaming on threads now, across the process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Most transfers streaming on threads at once: two per core. More would
/// only compete for the same cores and the same page cache.
fn max_streams() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| crate::config::cores() * 2)
}

/// A place among the streaming uploads; given back when dropped.
pub(super) struct Permit(());

impl Permit {
    /// A place, if one is free.
    pub(super) fn try_take() -> Option<Permit> {
        RUNNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max_streams()).then_some(n + 1))
            .ok()
            .map(|_| Permit(()))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a streaming run gave the upload back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// The client closed the data connection: every byte is in the file.
    Finished,
    /// The client paused: the async path carries on.
    Paused,
}

/// What a streaming run hands back: the file, the bytes it moved, and how
/// it ended.
pub(super) type Outcome = (Box<dyn Upload>, u64, Result<Ended, TransferError>);

/// Stops a streaming run from the async side: set when the transfer is
/// dropped (ABOR, disconnect).
pub(super) struct Cancel {
    /// Set once cancelled.
    cancelled: AtomicBool,
    /// The thread's socket, shut for reading to wake it at once.
    socket: Arc<OwnedFd>,
}

impl Cancel {
    /// A canceller for the run on `socket`.
    pub(super) fn new(socket: Arc<OwnedFd>) -> Cancel {
        Cancel { cancelled: AtomicBool::new(false), socket }
    }

    fn is_set(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// Cancels the run when dropped (the transfer's future holds it while it
/// waits for the thread), unless disarmed once the thread is back.
struct CancelOnDrop(Option<Arc<Cancel>>);

impl CancelOnDrop {
    /// Cancels `cancel` if dropped before [`CancelOnDrop::disarm`].
    fn new(cancel: Arc<Cancel>) -> CancelOnDrop {
        CancelOnDrop(Some(cancel))
    }

    /// The thread is back: the connection stays usable.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            cancel.cancelled.store(true, Ordering::Release);
            // Wakes a thread waiting in poll(2): its next read sees the
            // end, its next write fails.
            let _ = rustix::net::shutdown(&*cancel.socket, rustix::net::Shutdown::Both);
        }
    }
}

/// Runs `work` on the blocking pool, holding `permit` until it is done.
/// If the caller is dropped first (ABOR, disconnect), `work`'s [`Cancel`]
/// is set and `socket` shut, so the thread stops at once.
pub(super) async fn on_thread<T: Send + 'static>(
    socket: &Arc<OwnedFd>,
    permit: Permit,
    work: impl FnOnce(Arc<Cancel>) -> T + Send + 'static,
) -> Result<T, TransferError> {
    let cancel = Arc::new(Cancel::new(socket.clone()));
    let cancel_on_drop = CancelOnDrop::new(cancel.clone());
    let done = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // A woken streaming thread must not preempt the client on its core
        // (crate::sched); only while it streams, so the pool's thread goes
        // back as it came.
        let _batch = crate::sched::batch_while_streaming();
        work(cancel)
    })
    .await
    .map_err(super::thread_lost)?;
    cancel_on_drop.disarm();
    Ok(done)
}

/// What the thread needs.
pub(super) struct Stream {
    /// The data connection (a duplicate of the session's descriptor).
    pub socket: Arc<OwnedFd>,
    /// The upload; its backend offers a descriptor to splice into.
    pub upload: Box<dyn Upload>,
    /// Bytes already read (and charged) but not yet written: written first.
    pub pending: Vec<u8>,
    /// The quota to charge.
    pub charge: Option<Arc<UploadCharge>>,
    /// Bytes of the upload so far (for STAT); added to as it goes.
    pub progress: Arc<AtomicU64>,
    /// Set when the transfer is dropped.
    pub cancel: Arc<Cancel>,
}

/// Moves the upload from the socket to the file until the client closes
/// the connection or pauses (blocking: run it on the blocking pool).
pub(super) fn run(stream: Stream) -> Outcome {
    let Stream { socket, mut upload, pending, charge, progress, cancel } = stream;
    let mut moved = 0u64;
    let mut pump = || {
        let target = upload
            .splice_target()
            .ok_or_else(|| storage_error(io::Error::other("the upload's storage has no descriptor to splice into")))?;
        target.write_all(&pending).map_err(storage_error)?;
        let (pipe_out, pipe_in) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(storage_errno)?;
        let _ = rustix::pipe::fcntl_setpipe_size(&pipe_in, PIPE_SIZE);
        loop {
            let n = match splice(&*socket, None, &pipe_in, None, PIPE_SIZE, SpliceFlags::NONBLOCK | SpliceFlags::MOVE) {
                _ if cancel.is_set() => return Err(aborted()),
                Ok(0) => return Ok(Ended::Finished),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {
                    let mut fds = [PollFd::new(&*socket, PollFlags::IN)];
                    match poll(&mut fds, Some(&PAUSE)) {
                        Ok(0) => return Ok(Ended::Paused),
                        Ok(_) | Err(Errno::INTR) => continue,
                        Err(e) => return Err(TransferError::Network(e.into())),
                    }
                }
                Err(e) => return Err(TransferError::Network(e.into())),
            };
            // SECURITY: quotas. Charged before the bytes reach the file.
            if charge.as_ref().is_some_and(|c| !c.charge(n as u64)) {
                return Err(TransferError::Storage(StorageError::QuotaExceeded));
            }
            target.reserve_ahead(n as u64);
            drain_pipe(&pipe_out, &target.as_fd(), n)?;
            moved += n as u64;
            progress.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let ended = pump();
    (upload, moved, ended)
}

/// Bytes a download copies per read: small enough to stay in the cache
/// between the read from the page cache and the write to the socket.
const COPY_CHUNK: usize = 128 * 1024;

/// What a streaming download needs.
pub(super) struct Download {
    /// The data connection (a duplicate of the transfer's descriptor).
    pub socket: Arc<OwnedFd>,
    /// The file (a duplicate, sharing its position).
    pub file: std::fs::File,
    /// Bytes to send at most (the rest of the announced size).
    pub limit: Option<u64>,
    /// Bytes of the transfer so far (for STAT); added to as it goes.
    pub progress: Arc<AtomicU64>,
    /// Set when the transfer is dropped.
    pub cancel: Arc<Cancel>,
}

/// Copies the file from its position to the socket until its end (or the
/// limit), or until the client stops taking bytes for [`PAUSE`]; the bytes
/// sent and how it ended. The file's position is left after the last byte
/// sent, so sendfile(2) can carry on from there (blocking: run it on the
/// blocking pool).
pub(super) fn run_download(download: Download) -> (u64, Result<Ended, TransferError>) {
    let Download { socket, file, limit, progress, cancel } = download;
    let mut file = file;
    let start = match io::Seek::stream_position(&mut file) {
        Ok(at) => at,
        Err(e) => return (0, Err(storage_error(e))),
    };
    let mut sent = 0u64;
    let ended = (|| {
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let want = limit.map_or(COPY_CHUNK, |l| l.saturating_sub(sent).min(COPY_CHUNK as u64) as usize);
            if want == 0 {
                return Ok(Ended::Finished);
            }
            let n = match rustix::io::pread(&file, &mut buf[..want], start + sent) {
                Ok(0) => return Ok(Ended::Finished),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(storage_errno(e)),
            };
            let mut done = 0;
            while done < n {
                if cancel.is_set() {
                    return Err(aborted());
                }
                match rustix::net::send(&*socket, &buf[done..n], rustix::net::SendFlags::NOSIGNAL) {
                    Ok(k) => {
                        done += k;
                        sent += k as u64;
                        progress.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => {
                        let mut fds = [PollFd::new(&*socket, PollFlags::OUT)];
                        match poll(&mut fds, Some(&PAUSE)) {
                            Ok(0) => return Ok(Ended::Paused),
                            Ok(_) | Err(Errno::INTR) => {}
                            Err(e) => return Err(TransferError::Network(e.into())),
                        }
                    }
                    Err(e) => return Err(TransferError::Network(e.into())),
                }
            }
        }
    })();
    // Where sendfile goes on from after a pause (pread left it alone).
    if let Err(e) = io::Seek::seek(&mut file, io::SeekFrom::Start(start + sent)) {
        return (sent, Err(storage_error(e)));
    }
    (sent, ended)
}

/// Moves `n` bytes from the pipe into the file.
fn drain_pipe(pipe_out: &OwnedFd, file: &impl AsFd, mut n: usize) -> Result<(), TransferError> {
    while n > 0 {
        match splice(pipe_out, None, file, None, n, SpliceFlags::MOVE) {
            Ok(0) => return Err(storage_error(io::ErrorKind::WriteZero.into())),
            Ok(k) => n -= k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(storage_errno(e)),
        }
    }
    Ok(())
}

fn storage_error(e: io::Error) -> TransferError {
    TransferError::Storage(e.into())
}

fn storage_errno(e: Errno) -> TransferError {
    storage_error(e.into())
}

fn aborted() -> TransferError {
    TransferError::Network(io::Error::new(io::ErrorKind::ConnectionAborted, "transfer aborted"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::VirtualPath;
    use crate::storage::{LocalFs, Storage, UploadOptions, WriteMode};
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// A connected pair on loopback: (client side, server side as a
    /// non-blocking descriptor, as the runtime's sockets are).
    fn pair() -> (TcpStream, Arc<OwnedFd>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, Arc::new(OwnedFd::from(server)))
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    async fn writer(root: &std::path::Path, name: &str) -> Box<dyn Upload> {
        let fs = LocalFs::open(root, false).unwrap();
        let options =
            UploadOptions { mode: WriteMode::CreateNew, umask: 0o022, atomic: false, keep_partial: true, sync: false };
        fs.open_write(&VirtualPath::root().join(name), options).await.unwrap()
    }

    fn stream(socket: Arc<OwnedFd>, upload: Box<dyn Upload>, pending: &[u8]) -> (Stream, Arc<Cancel>) {
        let cancel = Arc::new(Cancel::new(socket.clone()));
        let stream = Stream {
            socket,
            upload,
            pending: pending.to_vec(),
            charge: None,
            progress: Arc::new(AtomicU64::new(0)),
            cancel: cancel.clone(),
        };
        (stream, cancel)
    }

    #[tokio::test]
    async fn streams_every_byte_after_the_pending_ones_until_the_client_closes() {
        let root = tempfile::tempdir().unwrap();
        let (mut client, socket) = pair();
        let body = pattern(5 * 1024 * 1024 + 17);
        let sender = {
            let tail = body[1000..].to_vec();
            std::thread::spawn(move || {
                client.write_all(&tail).unwrap();
            })
        };
        let (stream, _) = stream(socket, writer(root.path(), "f").await, &body[..1000]);
        let (writer, moved, ended) = tokio::task::spawn_blocking(move || run(stream)).await.unwrap();
        sender.join().unwrap();
        assert_eq!(ended.unwrap(), Ended::Finished);
        assert_eq!(moved, (body.len() - 1000) as u64);
        writer.commit(Vec::new(), false).await.unwrap();
        assert!(std::fs::read(root.path().join("f")).unwrap() == body);
    }

    #[tokio::test]
    async fn gives_the_upload_back_when_the_client_pauses() {
        let root = tempfile::tempdir().unwrap();
        let (mut client, socket) = pair();
        client.write_all(&pattern(300_000)).unwrap();
        let (stream, _) = stream(socket, writer(root.path(), "f").await, b"");
        let (writer, moved, ended) = tokio::task::spawn_blocking(move || run(stream)).await.unwrap();
        assert_eq!(ended.unwrap(), Ended::Paused);
        assert_eq!(moved, 300_000);
        writer.commit(Vec::new(), false).await.unwrap();
        assert!(std::fs::read(root.path().join("f")).unwrap() == pattern(300_000));
        drop(client);
    }

    #[tokio::test]
    async fn a_dropped_transfer_stops_the_thread_without_calling_it_finished() {
        let root = tempfile::tempdir().unwrap();
        let (client, socket) = pair();
        let (stream, cancel) = stream(socket, writer(root.path(), "f").await, b"abc");
        // The client keeps the connection open and sends nothing more
        // for now; a pause would also end the run, so cancel at once.
        drop(CancelOnDrop::new(cancel));
        let (_, moved, ended) = tokio::task::spawn_blocking(move || run(stream)).await.unwrap();
        assert!(matches!(ended, Err(TransferError::Network(_))), "{ended:?}");
        assert_eq!(moved, 0);
        drop(client);
    }
}
