//! Transfers: copying between a data connection and storage, as a task
//! the session can watch (progress) and cancel (ABOR).
//!
//! Each transfer opens its data connection itself, so the session can send
//! the 150 reply first, as the seed shows (`150 Here comes the directory
//! listing.` and only then does `nc` connect).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferroftp_proto::ascii;
use ferroftp_proto::code;
use std::os::fd::{AsFd, OwnedFd};

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};

use crate::quota::UploadCharge;
use crate::storage::{Ending, Pending, Reader, Settled, StorageError, Upload};
use crate::transfer::connection::{DataConn, DataError, DataSetup};

pub mod connection;
mod stream_thread;

/// How a failed upload is settled: its backend keeps or removes what
/// arrived, and the quota it was charged to is squared with that.
pub struct UploadEnd {
    /// Resolves once the backend is done with the upload.
    pub settled: Settled,
    /// The quota the upload was charged to.
    pub charge: Option<Arc<UploadCharge>>,
}

impl UploadEnd {
    /// Waits until the upload's backend has kept or removed what a failed
    /// upload wrote (the write still running after an ABOR included), then
    /// credits the quota for what was removed.
    pub async fn settle(self) {
        let ending = self.settled.wait().await;
        if let Some(c) = &self.charge {
            match ending {
                Ending::Kept => c.completed(),
                Ending::Discarded => c.discarded(),
                Ending::Committed => {}
            }
        }
    }
}

/// Size of the copy buffer.
const CHUNK: usize = 64 * 1024;
/// Size of an upload batch: each write to storage costs a hop to the
/// blocking pool, so uploads move big batches (docs/BENCHMARKS.md has
/// the sizes tried). Two batches at most per upload are in memory.
const RECEIVE_BATCH: usize = 256 * 1024;

/// What a transfer moves.
pub enum Job {
    /// Storage (or a listing) to the client: RETR, LIST, NLST.
    Send {
        /// The source.
        source: Reader,
        /// Convert LF to CRLF (TYPE A).
        ascii: bool,
        /// Bytes the source holds, when known (the size the 150 reply
        /// announced): sendfile stops there without one more call to find
        /// the end of the file.
        len: Option<u64>,
    },
    /// The client to storage: STOR, APPE, STOU.
    Receive {
        /// The target.
        sink: Box<dyn Upload>,
        /// Convert CRLF to LF (TYPE A).
        ascii: bool,
        /// The quota this upload is charged to.
        charge: Option<Arc<UploadCharge>>,
    },
}

/// TLS for a data connection (PROT P).
pub struct DataTls {
    /// The configuration, sharing the control connection's sessions.
    pub config: Arc<rustls::ServerConfig>,
    /// Refuse a handshake that did not resume the control connection's
    /// session.
    pub require_resumption: bool,
}

/// A data connection, plain or TLS.
trait DataIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {
    /// The plain TCP socket, when the bytes on it are the file's (no TLS).
    fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// The plain TCP socket itself, for a streaming thread to take out of
    /// the runtime; anything else is handed back.
    fn into_plain(self: Box<Self>) -> Result<tokio::net::TcpStream, Box<dyn DataIo>>;
}

impl DataIo for tokio::net::TcpStream {
    fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(self))
    }

    fn into_plain(self: Box<Self>) -> Result<tokio::net::TcpStream, Box<dyn DataIo>> {
        Ok(*self)
    }
}

impl DataIo for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn into_plain(self: Box<Self>) -> Result<tokio::net::TcpStream, Box<dyn DataIo>> {
        Err(self)
    }
}

/// Stands in for a data connection a streaming thread took out of the
/// runtime: while the thread has it (`None`), and after an upload ended
/// there. Reads and writes are errors, never an end of file, so a
/// mistaken use can not pass for the end of an upload; shutting it down
/// shuts the socket it holds, so an upload that finished on the thread
/// still answers the client's close.
struct OutOfRuntime(Option<std::net::TcpStream>);

impl OutOfRuntime {
    fn error() -> io::Error {
        io::Error::other("the data connection was taken out of the runtime by a streaming thread")
    }
}

impl tokio::io::AsyncRead for OutOfRuntime {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Err(OutOfRuntime::error()))
    }
}

impl tokio::io::AsyncWrite for OutOfRuntime {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Err(OutOfRuntime::error()))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        // Never blocks: shutdown(2) only queues the FIN.
        std::task::Poll::Ready(self.0.as_ref().map_or(Ok(()), |s| s.shutdown(std::net::Shutdown::Write)))
    }
}

impl DataIo for OutOfRuntime {
    fn into_plain(self: Box<Self>) -> Result<tokio::net::TcpStream, Box<dyn DataIo>> {
        Err(self)
    }
}

impl DataTls {
    /// The TLS handshake on an opened data connection.
    async fn accept(self, tcp: tokio::net::TcpStream, limit: Duration) -> Result<Box<dyn DataIo>, TransferError> {
        let handshake = tokio_rustls::TlsAcceptor::from(self.config).accept(tcp);
        let tls = match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(TransferError::Tls(format!("TLS handshake failed: {e}"))),
            Err(_) => return Err(TransferError::Tls("TLS handshake timed out".into())),
        };
        // SECURITY: data-connection theft. Only the client holding the
        // control connection's TLS session can resume it.
        if self.require_resumption && tls.get_ref().1.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
            return Err(TransferError::Tls(
                "TLS session of data connection not resumed (the client must reuse the control connection's TLS session)".into(),
            ));
        }
        Ok(Box::new(tls))
    }
}

/// Why a transfer failed, and its reply.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The data connection could not be opened: 425.
    #[error("Failed to establish data connection: {0}")]
    CantOpen(#[from] DataError),
    /// The data connection broke mid-transfer: 426.
    #[error("Data connection broken; transfer aborted: {0}")]
    Network(io::Error),
    /// Storage failed mid-transfer: 451, 452, 552...
    #[error("Transfer failed: {0}")]
    Storage(StorageError),
    /// TLS on the data connection failed or did not resume: 425.
    #[error("Unable to build data connection: {0}")]
    Tls(String),
}

impl TransferError {
    /// The reply code for this failure.
    pub fn reply_code(&self) -> u16 {
        match self {
            TransferError::CantOpen(_) | TransferError::Tls(_) => code::CANT_OPEN_DATA,
            TransferError::Network(_) => code::TRANSFER_ABORTED,
            TransferError::Storage(e) => e.reply_code(),
        }
    }
}

/// Paces a transfer to a rate in bytes per second.
struct Throttle {
    rate: u64,
    started: tokio::time::Instant,
}

impl Throttle {
    /// Waits until `total` bytes are due at the rate.
    async fn pace(&self, total: u64) {
        let due = self.started + Duration::from_secs_f64(total as f64 / self.rate as f64);
        tokio::time::sleep_until(due).await;
    }
}

/// Most bytes one sendfile(2) call is asked for; on a non-blocking socket
/// it returns as soon as the socket buffer is full anyway.
const SENDFILE_CHUNK: usize = 1 << 30;

/// Sends a local file from its current position to the end (or `len`
/// bytes) with sendfile(2): the kernel moves page-cache pages to the
/// socket, and the bytes never pass through the server. Returns the bytes
/// sent.
///
/// The connection is written directly, outside the runtime, and
/// registered only if its buffer fills and no copying thread takes it: a
/// small file is done without epoll set-up and tear-down. The socket
/// comes corked (see data.rs), so the last partial segment leaves together
/// with the FIN: one packet fewer per file.
async fn send_file(
    conn: DataConn,
    file: &std::fs::File,
    len: Option<u64>,
    progress: &Arc<AtomicU64>,
) -> Result<Transferred, TransferError> {
    // A client that connected after the 150 finds its connection already
    // registered. It leaves the runtime here, as if it had never joined:
    // a small file is then sent at once, and a big one copied on a thread
    // does not wake a runtime thread for every ACK that frees room.
    let mut conn = match conn {
        DataConn::Registered(tcp) => DataConn::Unregistered(tcp.into_std().map_err(TransferError::Network)?),
        unregistered => unregistered,
    };
    let mut total = 0u64;
    // Whether the copying thread had its turn (once per transfer).
    let mut copied = false;
    while len.is_none_or(|l| total < l) {
        let sent = match conn {
            DataConn::Unregistered(ref s) => match sendfile_once(s, file) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A big file: to a client on this host, copy it on a thread.
                    if !copied {
                        copied = true;
                        // The cork saves a packet at a small file's end; on a
                        // big one it holds back every sendfile(2) that follows
                        // (docs/BENCHMARKS.md, session 8).
                        crate::transfer::connection::uncork(s);
                        let left = len.map(|l| l - total);
                        if let Some((sent, ended)) = copy_on_thread(s.as_fd(), file, left, progress).await? {
                            total += sent;
                            progress.store(total, Ordering::Relaxed);
                            if ended == stream_thread::Ended::Finished {
                                break;
                            }
                        }
                    }
                    conn = DataConn::Registered(conn.registered().map_err(TransferError::Network)?);
                    continue;
                }
                other => other,
            },
            DataConn::Registered(ref tcp) => tcp.async_io(Interest::WRITABLE, || sendfile_once(tcp, file)).await,
        };
        match sent {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                progress.store(total, Ordering::Relaxed);
            }
            // The socket's errors are the client's doing; any other is the file's.
            Err(e) if is_connection_error(&e) => return Err(TransferError::Network(e)),
            Err(e) => return Err(TransferError::Storage(e.into())),
        }
    }
    finish_send(conn, total).await
}

/// Ends a download. A connection the runtime never registered (a small
/// file, sent whole) is handed back open: its FIN goes after the final
/// reply (see [`Transferred`]). A registered one gets its FIN now.
async fn finish_send(conn: DataConn, total: u64) -> Result<Transferred, TransferError> {
    match conn {
        DataConn::Unregistered(s) => Ok(Transferred { bytes: total, unclosed: Some(s) }),
        DataConn::Registered(mut tcp) => {
            AsyncWriteExt::shutdown(&mut tcp).await.map_err(TransferError::Network)?;
            Ok(Transferred::closed(total))
        }
    }
}

/// A finished transfer: the bytes moved on the wire and, for a small
/// download, its data connection with every byte written to the socket
/// but no FIN yet.
///
/// The session writes the final reply (the 226) first and then drops
/// this, which sends the FIN with the file's last segment: the waiting
/// client is woken once, not twice (docs/BENCHMARKS.md). Clients read the
/// data connection's end and the reply in either order; a control
/// connection that is backed up gets the FIN first (`Session::send_final`).
#[derive(Debug)]
pub struct Transferred {
    /// Bytes moved on the wire.
    pub bytes: u64,
    /// The data connection, still to be shut down.
    unclosed: Option<std::net::TcpStream>,
}

impl Transferred {
    /// A transfer whose data connection is already closed.
    fn closed(bytes: u64) -> Transferred {
        Transferred { bytes, unclosed: None }
    }
}

impl Drop for Transferred {
    /// The FIN after the last byte (then the socket is closed).
    fn drop(&mut self) {
        if let Some(s) = self.unclosed.take() {
            // Every byte is written and the 226 is on its way: a client
            // that has gone by now is no error to report.
            if let Err(e) = s.shutdown(std::net::Shutdown::Write) {
                tracing::debug!(error = %e, "data connection gone before its FIN");
            }
        }
    }
}

/// Copies a download on a thread of its own (see [`stream_thread`]) when
/// the client is on this host and a place is free: the bytes sent and how
/// it ended, or `None` when it was not taken.
async fn copy_on_thread(
    socket: std::os::fd::BorrowedFd<'_>,
    file: &std::fs::File,
    limit: Option<u64>,
    progress: &Arc<AtomicU64>,
) -> Result<Option<(u64, stream_thread::Ended)>, TransferError> {
    let peer = rustix::net::getpeername(socket).ok().flatten().and_then(|a| std::net::SocketAddr::try_from(a).ok());
    if !peer.is_some_and(|a| a.ip().to_canonical().is_loopback()) {
        return Ok(None);
    }
    let Some(permit) = stream_thread::Permit::try_take() else { return Ok(None) };
    let socket = Arc::new(socket.try_clone_to_owned().map_err(TransferError::Network)?);
    let file = file.try_clone().map_err(|e| TransferError::Storage(e.into()))?;
    let progress = progress.clone();
    let (sent, ended) = stream_thread::on_thread(&socket.clone(), permit, move |cancel| {
        stream_thread::run_download(stream_thread::Download { socket, file, limit, progress, cancel })
    })
    .await?;
    Ok(Some((sent, ended?)))
}

/// One sendfile(2) call: the bytes sent (0 at the end of the file), or
/// WouldBlock when the socket buffer is full.
fn sendfile_once(socket: impl rustix::fd::AsFd, file: &std::fs::File) -> io::Result<usize> {
    loop {
        match rustix::fs::sendfile(&socket, file, None, SENDFILE_CHUNK) {
            Err(rustix::io::Errno::INTR) => {}
            done => return done.map_err(io::Error::from),
        }
    }
}

/// Whether an error comes from a broken connection rather than a file.
fn is_connection_error(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(e.kind(), K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::NotConnected | K::TimedOut)
}

/// Runs one transfer to completion, at most `rate` bytes per second;
/// returns the bytes moved on the wire (see [`Transferred`]).
///
/// # Errors
/// A [`TransferError`] naming what failed.
pub async fn run(
    setup: DataSetup,
    open_timeout: Duration,
    job: Job,
    progress: Arc<AtomicU64>,
    rate: Option<u64>,
    tls: Option<DataTls>,
) -> Result<Transferred, TransferError> {
    let conn = setup.open(open_timeout).await?;
    // A plain binary download of a local file at full speed: zero-copy.
    if let (Job::Send { source: Reader::File(file), ascii: false, len }, None, None) = (&job, &tls, rate) {
        return send_file(conn, file, *len, &progress).await;
    }
    let tcp = conn.registered().map_err(TransferError::Network)?;
    // Data connections come corked (see data.rs): full segments only, the
    // last one with the FIN. Not for TLS, whose handshake must not wait
    // for the cork's timer, nor under a rate limit (paced writes would).
    if tls.is_some() || rate.is_some() {
        crate::transfer::connection::uncork(&tcp);
    }
    let mut data: Box<dyn DataIo> = match tls {
        Some(t) => t.accept(tcp, open_timeout).await?,
        None => Box::new(tcp),
    };
    let throttle = rate.map(|rate| Throttle { rate, started: tokio::time::Instant::now() });
    // Smaller chunks at low rates keep the pace smooth.
    let chunk = rate.map_or(CHUNK, |r| (r as usize / 8).clamp(1024, CHUNK));
    match job {
        Job::Send { mut source, ascii, .. } => {
            let mut buf = vec![0u8; chunk];
            let mut converter = ascii.then(ascii::ToWire::default);
            let mut converted = Vec::new();
            let mut total = 0u64;
            let mut turns = Turns::default();
            loop {
                let n = source.read(&mut buf).await.map_err(|e| TransferError::Storage(e.into()))?;
                if n == 0 {
                    break;
                }
                let wire: &[u8] = match converter.as_mut() {
                    Some(c) => {
                        converted.clear();
                        c.convert(&buf[..n], &mut converted);
                        &converted
                    }
                    None => &buf[..n],
                };
                data.write_all(wire).await.map_err(TransferError::Network)?;
                total += wire.len() as u64;
                progress.store(total, Ordering::Relaxed);
                if let Some(t) = &throttle {
                    t.pace(total).await;
                }
                turns.moved(wire.len()).await;
            }
            data.shutdown().await.map_err(TransferError::Network)?;
            Ok(Transferred::closed(total))
        }
        Job::Receive { mut sink, ascii, charge } => {
            let limits = ReceiveOptions {
                batch: if rate.is_some() { chunk } else { RECEIVE_BATCH },
                wire: if rate.is_some() { chunk } else { RECEIVE_WIRE_MAX },
                // Only to a backend that offers a descriptor; TYPE A must
                // convert, a rate limit must pace, TLS must decrypt.
                may_stream: sink.splice_target().is_some() && !ascii && rate.is_none() && data.socket().is_some(),
            };
            let mut sink = Sink::Idle((sink, Vec::new()));
            let received =
                receive(&mut data, &mut sink, ascii, charge.as_ref(), limits, &progress, throttle.as_ref()).await;
            let (total, last) = match received {
                Ok(done) => done,
                Err(e) => {
                    // Let a running write end, then end the upload: kept
                    // or removed as it was opened to do, always removed
                    // when space or quota ran out.
                    if let Ok((upload, _)) = sink.settle().await {
                        let _ = upload.abort(matches!(&e, TransferError::Storage(s) if s.discards_partial())).await;
                    }
                    return Err(e);
                }
            };
            let whole = total == last.len() as u64;
            sink.finish(last, whole).await?;
            // Answer the client's close: for TLS this is our close_notify,
            // which clients that close both ways (ftplib) wait for. Every
            // byte is already in, so a client that has gone is no error.
            let _ = data.shutdown().await;
            if let Some(c) = &charge {
                c.completed();
            }
            Ok(Transferred::closed(total))
        }
    }
}

/// Bytes a transfer moves between turns it gives its session.
const TURN_EVERY: usize = 1 << 20;

/// Makes a transfer give its session a turn now and then. A transfer
/// whose socket and storage never make it wait (a fast client, files in
/// memory) would otherwise use up the task's whole budget each time it
/// is polled, and the control connection, polled after it in the same
/// task, would go unread: STAT and ABOR unanswered until the transfer
/// ends.
#[derive(Default)]
struct Turns(usize);

impl Turns {
    /// Counts `n` bytes moved; past [`TURN_EVERY`], yields once.
    async fn moved(&mut self, n: usize) {
        self.0 += n;
        if self.0 >= TURN_EVERY {
            self.0 = 0;
            tokio::task::yield_now().await;
        }
    }
}

/// Sizes of an upload's buffers.
#[derive(Clone, Copy)]
struct ReceiveOptions {
    /// Bytes gathered before a write to the file.
    batch: usize,
    /// Most bytes one read from the data connection takes.
    wire: usize,
    /// A plain binary upload at full speed, to a file splice(2) can write:
    /// once streaming, it may move to a thread of its own.
    may_stream: bool,
}

/// First size of the buffer uploads are read into; it doubles while reads
/// fill it, up to [`ReceiveOptions::wire`], so a small upload does not
/// allocate and clear 256 KiB.
const RECEIVE_WIRE_START: usize = 16 * 1024;
/// Largest read from an upload's data connection.
const RECEIVE_WIRE_MAX: usize = 256 * 1024;

/// Reads an upload to its end, writing full batches as they fill and
/// whatever has arrived whenever the client pauses, so a broken or aborted
/// upload keeps every byte that came in (for resuming) and the disk write
/// overlaps the wait. Returns the bytes read and the last, unwritten batch.
async fn receive(
    data: &mut Box<dyn DataIo>,
    sink: &mut Sink,
    ascii: bool,
    charge: Option<&Arc<UploadCharge>>,
    limits: ReceiveOptions,
    progress: &Arc<AtomicU64>,
    throttle: Option<&Throttle>,
) -> Result<(u64, Vec<u8>), TransferError> {
    // Binary bytes are read straight into the batch (one copy fewer per
    // byte: big STOR used 0.69 s of CPU per GiB with a read buffer in
    // between); TYPE A reads into `wire` and converts into the batch.
    let mut converter = ascii.then(|| (ascii::FromWire::default(), vec![0u8; limits.wire.min(CHUNK)]));
    let mut batch = Vec::new();
    // How much the next read may take: it doubles while reads fill it, so
    // a small upload does not allocate 256 KiB.
    let mut room = RECEIVE_WIRE_START.min(limits.wire);
    let mut total = 0u64;
    let mut turns = Turns::default();
    loop {
        let (n, added) = match converter.as_mut() {
            None => {
                batch.reserve(room);
                // Straight into the batch's spare room: no zeroing, no copy.
                let n = match poll_once(data.read_buf(&mut batch)).await.transpose().map_err(TransferError::Network)? {
                    Some(n) => n,
                    None => {
                        // The client paused: write what has arrived.
                        if !batch.is_empty() {
                            batch = sink.write(batch).await?;
                            batch.reserve(room);
                        }
                        data.read_buf(&mut batch).await.map_err(TransferError::Network)?
                    }
                };
                (n, n)
            }
            Some((c, wire)) => {
                let n = match poll_once(data.read(wire)).await.transpose().map_err(TransferError::Network)? {
                    Some(n) => n,
                    None => {
                        if !batch.is_empty() {
                            batch = sink.write(batch).await?;
                        }
                        data.read(wire).await.map_err(TransferError::Network)?
                    }
                };
                let before = batch.len();
                if n == 0 {
                    c.finish(&mut batch);
                } else {
                    c.convert(&wire[..n], &mut batch);
                }
                (n, batch.len() - before)
            }
        };
        // SECURITY: quotas. Charge before writing, so an upload stops at
        // the limit instead of filling the disk first.
        if let Some(c) = charge {
            if !c.charge(added as u64) {
                return Err(TransferError::Storage(StorageError::QuotaExceeded));
            }
        }
        if n == 0 {
            return Ok((total, batch));
        }
        total += n as u64;
        progress.store(total, Ordering::Relaxed);
        if n >= room {
            room = (room * 2).min(limits.wire);
        }
        if batch.len() >= limits.batch {
            if let Some(permit) = limits.may_stream.then(stream_thread::Permit::try_take).flatten() {
                let (moved, ended) = stream_on_thread(data, sink, batch, charge, progress, permit).await?;
                total += moved;
                match ended {
                    stream_thread::Ended::Finished => return Ok((total, Vec::new())),
                    stream_thread::Ended::Paused => {
                        progress.store(total, Ordering::Relaxed);
                        batch = Vec::new();
                        continue;
                    }
                }
            }
            batch = sink.write(batch).await?;
        }
        if let Some(t) = throttle {
            t.pace(total).await;
        }
        turns.moved(n).await;
    }
}

/// Hands a streaming upload to a thread of its own until the client
/// closes the connection or pauses; the bytes it moved and how it ended.
async fn stream_on_thread(
    data: &mut Box<dyn DataIo>,
    sink: &mut Sink,
    pending: Vec<u8>,
    charge: Option<&Arc<UploadCharge>>,
    progress: &Arc<AtomicU64>,
    permit: stream_thread::Permit,
) -> Result<(u64, stream_thread::Ended), TransferError> {
    // Out of the runtime while the thread reads: a socket it watches
    // wakes a runtime thread for every segment that arrives (about 6,000
    // times per GiB from curl), for nothing, on a core the client needs.
    let plain = match std::mem::replace(data, Box::new(OutOfRuntime(None))).into_plain() {
        Ok(tcp) => tcp.into_std().map_err(TransferError::Network)?,
        Err(other) => {
            *data = other;
            return Err(TransferError::Network(io::Error::other("not a plain socket")));
        }
    };
    // The thread gets a descriptor of its own, then the file (the sink is
    // left as it was if the descriptor can not be had), and hands the
    // file back.
    let streamed = async {
        let socket = Arc::new(OwnedFd::from(plain.try_clone().map_err(TransferError::Network)?));
        let (upload, spare) = sink.settle().await?;
        let (charge, progress) = (charge.cloned(), progress.clone());
        let (upload, moved, ended) = stream_thread::on_thread(&socket.clone(), permit, move |cancel| {
            stream_thread::run(stream_thread::Stream { socket, upload, pending, charge, progress, cancel })
        })
        .await?;
        *sink = Sink::Idle((upload, spare));
        Ok((moved, ended?))
    }
    .await;
    // Back into the runtime only for the async path to carry on after a
    // pause; an upload that ended on the thread, or failed, needs only
    // its shutdown.
    *data = if matches!(streamed, Ok((_, stream_thread::Ended::Paused))) {
        Box::new(tokio::net::TcpStream::from_std(plain).map_err(TransferError::Network)?)
    } else {
        Box::new(OutOfRuntime(Some(plain)))
    };
    streamed
}

/// Polls `future` once: its output if it is ready, `None` if it would
/// wait (its waker is then registered, as for any poll). Dropping a
/// pending read afterwards is safe: it has taken nothing.
pub(crate) async fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// The upload and a buffer free for the next batch.
type Spare = (Box<dyn Upload>, Vec<u8>);

/// An upload as the receive loop drives it: at most one batch is being
/// written while the next is read.
enum Sink {
    /// The upload and a spare buffer, no write running.
    Idle(Spare),
    /// A write running; it hands both back.
    Writing(Pending<Spare>),
    /// Neither: a write failed (and its backend ended the upload).
    Gone,
}

/// A blocking-pool job that panicked or was cancelled: its file is in an
/// unknown state, so the transfer fails as a storage error.
fn thread_lost(e: tokio::task::JoinError) -> TransferError {
    TransferError::Storage(StorageError::Io(io::Error::other(e)))
}

impl Sink {
    /// Waits for the running write, if any; the upload and a spare buffer.
    async fn settle(&mut self) -> Result<Spare, TransferError> {
        match std::mem::replace(self, Sink::Gone) {
            Sink::Idle(spare) => Ok(spare),
            Sink::Writing(job) => job.await.map_err(TransferError::Storage),
            Sink::Gone => Err(TransferError::Storage(StorageError::Io(io::Error::other("upload lost")))),
        }
    }

    /// Starts writing a full batch; returns an empty buffer for the next.
    async fn write(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TransferError> {
        let (upload, mut spare) = self.settle().await?;
        *self = Sink::Writing(upload.write(batch));
        spare.clear();
        Ok(spare)
    }

    /// Writes the last bytes and commits the upload (for a local file one
    /// trip to the blocking pool: write, close, rename into place).
    async fn finish(mut self, last: Vec<u8>, whole: bool) -> Result<(), TransferError> {
        let (upload, _) = self.settle().await?;
        upload.commit(last, whole).await.map_err(TransferError::Storage)
    }
}
