//! One control connection: reading lines, answering commands in order, and
//! running at most one transfer at a time beside the control loop.
//!
//! The loop keeps reading the control connection while a transfer runs, so
//! ABOR and STAT are answered mid-transfer. Other commands that arrive
//! meanwhile (a pipelining client's next command, QUIT, REIN) wait in a
//! bounded queue and are answered in order once the transfer ends.

mod commands;
mod extensions;
mod hangup;
mod status;
mod stream;
mod tls;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferroftp_proto::{code, Command, LineDecoder, LineEvent, Reply, TransferType};
use sync_wrapper::SyncWrapper;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::context::Context;
use crate::context::VirtualHost;
use crate::events::{DataFailure, DataMode, Direction, Event, Kind};
use crate::hashing::HashAlgorithm;
use crate::limits::UserSlot;
use crate::path::VirtualPath;
use crate::permissions::Permissions;
use crate::quota::Quota;
use crate::storage::Storage;
use crate::tls::ConnTls;
use crate::transfer::connection::{DataError, DataSetup, PassiveListener};
use crate::transfer::{self, Job, TransferError, Transferred, UploadEnd};
use ferroftp_proto::listing::MLSX_FACTS;
use stream::{ControlReader, ControlWriter};

/// Lines queued while a transfer runs; past this the control connection is
/// not read until the transfer ends (back-pressure, not unbounded memory).
const MAX_QUEUED_LINES: usize = 32;

/// For a while after a Telnet Interrupt Process the control connection is
/// also read on this tick (see `read_control`).
const URGENT_POLL_EVERY: Duration = Duration::from_millis(20);
/// How long after an Interrupt Process the tick runs.
const URGENT_POLL_FOR: Duration = Duration::from_secs(3);

pub(crate) use crate::config::DEFAULT_UMASK;

/// Where a session stands in the login sequence.
enum LoginState {
    /// Just connected, or after REIN or a failed login.
    AwaitingUser,
    /// USER was accepted; PASS is next.
    AwaitingPassword(String),
    /// Logged in.
    LoggedIn(Login),
}

/// A logged-in user's view of storage and rights.
struct Login {
    /// The name the user logged in as (`ftp` for anonymous).
    name: String,
    /// Logged in anonymously.
    anonymous: bool,
    /// The storage the session works in now (home, or a mount via SMNT).
    storage: Arc<dyn Storage>,
    /// The home storage, to return to with `SMNT ~`.
    home: Arc<dyn Storage>,
    /// What the user may do.
    permissions: Permissions,
    /// The user's file-creation mask at login.
    umask: u32,
    /// Mount names the user may SMNT.
    mounts: Vec<String>,
    /// Upload limit, bytes per second.
    upload_rate: Option<u64>,
    /// Download limit, bytes per second.
    download_rate: Option<u64>,
    /// This session's place among the user's `max_sessions`.
    _slot: Option<UserSlot>,
    /// When the login was accepted.
    since: std::time::Instant,
    /// The user's quota, if any.
    quota: Option<Quota>,
}

/// A transfer running beside the control loop.
/// How long a session keeps its passive listener after a PASV, for the
/// next one: a client fetching many small files reuses one port instead of
/// binding a new one per file (five system calls each), and an idle session
/// does not hold a port of the passive range for long.
pub(crate) const PASSIVE_KEEP: Duration = Duration::from_secs(2);

/// Listeners are kept only with no `passive_ports` range (the kernel's
/// ephemeral range) or one at least this wide: in a range of a few dozen
/// ports, as firewalls often get, a port kept idle could be the one
/// another session needs.
pub(crate) const PASSIVE_KEEP_MIN_RANGE: usize = 1024;

/// A passive listener kept for the next PASV.
pub(crate) struct KeptListener {
    /// The listener.
    pub listener: Arc<PassiveListener>,
    /// When it is closed if no PASV took it again.
    pub release_at: Instant,
}

/// A change of the control connection's protection (AUTH TLS, CCC).
type SwapFuture = Pin<Box<dyn Future<Output = io::Result<(ControlReader, ControlWriter)>> + Send>>;

/// A transfer in progress; it yields what it moved.
type TransferFuture = Pin<Box<dyn Future<Output = Result<Transferred, TransferError>> + Send>>;

struct RunningTransfer {
    /// The transfer, polled by the session's own task (no task of its
    /// own: spawning one woke a second worker thread for every file);
    /// dropping it drops the data connection.
    /// (`SyncWrapper`: the session is shared by reference across awaits,
    /// and the future is only ever used through `&mut`.)
    task: SyncWrapper<TransferFuture>,
    /// Bytes moved so far, for STAT.
    progress: Arc<AtomicU64>,
    /// What is being transferred.
    subject: Subject,
    /// How its data connection was set up.
    mode: DataMode,
    /// Its data connection is TLS.
    tls: bool,
    /// When the 150 was due.
    started: std::time::Instant,
    /// The 226 text on success.
    done_text: String,
    /// For uploads: settles a failed upload with its backend and quota.
    partial: Option<UploadEnd>,
}

impl RunningTransfer {
    /// The reply that ends the transfer (226, or the failure's code),
    /// after settling a failed upload's partial file; and what the
    /// transfer moved, to drop once that reply is sent (see
    /// [`Transferred`]).
    async fn outcome_reply(self, outcome: Result<Transferred, TransferError>) -> (Reply, Option<Transferred>) {
        match outcome {
            Ok(done) => (Reply::new(code::CLOSING_DATA, self.done_text), Some(done)),
            Err(e) => {
                if let Some(p) = self.partial {
                    p.settle().await;
                }
                (Reply::new(e.reply_code(), e.to_string()), None)
            }
        }
    }

    /// Stops the transfer at once (ABOR, disconnect) and settles a
    /// partial upload.
    async fn abort(self) {
        drop(self.task);
        if let Some(p) = self.partial {
            p.settle().await;
        }
    }
}

/// What a command handler asks the loop to do.
pub(crate) enum Action {
    /// Send this reply.
    Reply(Reply),
    /// Send this reply, then close the connection.
    Close(Reply),
    /// Send the preliminary reply (150), then run the transfer.
    Transfer(Box<TransferStart>),
    /// Send this reply (234), then run the TLS handshake.
    StartTls(Reply),
    /// Send this reply (200), then end TLS on the control connection.
    ClearControl(Reply),
}

/// What a transfer moves, for STAT and its event.
pub(crate) struct Subject {
    /// Which way.
    pub direction: Direction,
    /// The file or directory, as the client sees it.
    pub path: VirtualPath,
    /// For STAT (`RETR name`).
    pub description: String,
}

/// A transfer a handler has prepared.
pub(crate) struct TransferStart {
    /// The 150 reply.
    preliminary: Reply,
    /// What to move.
    job: Job,
    /// How to open the data connection.
    setup: DataSetup,
    /// How the data connection was set up.
    mode: DataMode,
    /// What is moved.
    subject: Subject,
    /// The 226 text on success.
    done_text: String,
    /// For uploads: settles a failed upload with its backend and quota.
    partial: Option<UploadEnd>,
}

impl From<Reply> for Action {
    fn from(r: Reply) -> Self {
        Action::Reply(r)
    }
}

/// The state of one control connection.
pub(crate) struct Session {
    /// Server-wide settings, users and storage.
    ctx: Arc<Context>,
    /// Where replies go.
    writer: ControlWriter,
    /// The client's address.
    peer: SocketAddr,
    /// Our end of the control connection (for PASV and active source).
    local: SocketAddr,
    /// Login progress.
    login: LoginState,
    /// Working directory.
    cwd: VirtualPath,
    /// TYPE A or I.
    transfer_type: TransferType,
    /// Offset set by REST for the next RETR/STOR/APPE.
    restart_offset: u64,
    /// Source named by RNFR, for the RNTO that must follow.
    rename_from: Option<VirtualPath>,
    /// How the next data connection opens, and the command that said so.
    data: Option<(DataSetup, DataMode)>,
    /// The last passive listener, kept a while for the next PASV.
    passive: Option<KeptListener>,
    /// After EPSV ALL only EPSV may set up data connections.
    epsv_all: bool,
    /// Mask for new files and directories (SITE UMASK).
    umask: u32,
    /// Idle timeout (SITE IDLE changes it).
    idle_timeout: Duration,
    /// Clients connected when this one connected, for STAT.
    clients_at_start: usize,
    /// The transfer in flight, if any.
    transfer: Option<RunningTransfer>,
    /// Failed logins on this connection (each one waits longer).
    failed_logins: u32,
    /// When the client must be logged in by, while it is not.
    login_deadline: Option<Instant>,
    /// The virtual host chosen with HOST; `None` for the server's own.
    host: Option<Arc<VirtualHost>>,
    /// The facts MLST and MLSD show (OPTS MLST).
    mlst_facts: Vec<&'static str>,
    /// The algorithm HASH uses (OPTS HASH).
    hash: HashAlgorithm,
    /// TLS of this control connection and its data connections, once AUTH
    /// TLS succeeded.
    tls: Option<ConnTls>,
    /// PBSZ was given (PROT needs it).
    pbsz: bool,
    /// PROT P: data connections are TLS.
    protect_data: bool,
    /// CCC ended TLS on the control connection (data keep their PROT).
    control_cleared: bool,
}

/// What the loop does after a command.
pub(crate) enum Flow {
    /// Read the next command.
    Continue,
    /// Close the connection.
    Close,
    /// Run the TLS handshake on the control connection (after AUTH).
    StartTls,
    /// End TLS on the control connection (after CCC).
    ClearControl,
}

/// The two ends of an accepted control connection.
pub(crate) struct Addresses {
    /// The client, as accept reported it.
    pub peer: SocketAddr,
    /// Our end, when the listener's address fixes it; `None` (a wildcard
    /// listener) asks the socket.
    pub local: Option<SocketAddr>,
}

/// Serves one control connection until QUIT, EOF, timeout or shutdown.
/// The listener set TCP_NODELAY and SO_OOBINLINE; the connection inherits
/// them.
pub(crate) async fn serve(
    stream: TcpStream,
    addrs: Addresses,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
    clients_at_start: usize,
    implicit_tls: bool,
) {
    let local = match addrs.local {
        Some(l) => l,
        None => match stream.local_addr() {
            Ok(l) => l,
            Err(_) => return,
        },
    };
    let (peer, local) = (canonical(addrs.peer), canonical(local));
    let (plain_reader, plain_writer) = stream.into_split();
    let (mut reader, mut writer) = (ControlReader::Plain(plain_reader), ControlWriter::Plain(plain_writer));
    // Implicit FTPS: TLS from the first byte, then the greeting; data
    // connections are protected unless the client says PROT C.
    let mut conn_tls = None;
    if implicit_tls {
        let Some(tls) = ctx.tls.as_ref().map(|t| t.for_connection()) else { return };
        let handshake = Box::pin(stream::upgrade(reader, writer, Arc::clone(&tls.control)));
        match tokio::time::timeout(ctx.config.login_timeout, handshake).await {
            Ok(Ok((r, w))) => (reader, writer) = (r, w),
            _ => {
                tracing::info!(%peer, "implicit TLS handshake failed");
                return;
            }
        }
        conn_tls = Some(tls);
    }
    let idle_timeout = ctx.config.idle_timeout;
    let mut session = Session {
        ctx,
        writer,
        peer,
        local,
        login: LoginState::AwaitingUser,
        cwd: VirtualPath::root(),
        transfer_type: TransferType::Ascii,
        restart_offset: 0,
        rename_from: None,
        data: None,
        passive: None,
        epsv_all: false,
        umask: DEFAULT_UMASK,
        idle_timeout,
        clients_at_start,
        transfer: None,
        failed_logins: 0,
        login_deadline: None,
        host: None,
        mlst_facts: MLSX_FACTS.to_vec(),
        hash: HashAlgorithm::Sha256,
        protect_data: conn_tls.is_some(),
        pbsz: conn_tls.is_some(),
        tls: conn_tls,
        control_cleared: false,
    };
    session.login_deadline = Some(Instant::now() + session.ctx.config.login_timeout);
    if let Err(e) = session.run(reader, &mut shutdown).await {
        tracing::debug!(%peer, error = %e, "control connection ended with an error");
    }
    if let Some(t) = session.transfer.take() {
        session.transfer_aborted(&t);
        t.abort().await;
    }
    session.logout();
}

/// The cause `probe` would name for a transfer that never got its data
/// connection; `None` for a transfer that failed later.
fn data_failure(e: &TransferError) -> Option<DataFailure> {
    match e {
        TransferError::CantOpen(DataError::NoPassivePort(_)) => Some(DataFailure::NoPassivePort),
        TransferError::CantOpen(DataError::AcceptTimeout { .. }) => Some(DataFailure::PassivePortTimeout),
        TransferError::CantOpen(DataError::Connect { .. } | DataError::ConnectTimeout(_)) => {
            Some(DataFailure::NoConnectBack)
        }
        TransferError::CantOpen(_) => Some(DataFailure::Other),
        TransferError::Tls(_) => Some(DataFailure::TlsFailed),
        TransferError::Network(_) | TransferError::Storage(_) => None,
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The text of the 220 greeting.
const GREETING: &str = concat!("ferroftp ", env!("CARGO_PKG_VERSION"), " ready.");

/// Most bytes taken from the control connection in one read.
const CONTROL_READ: usize = 4096;

/// Reads what the control connection has; an empty vector at end of
/// stream.
///
/// A plain connection waits for readiness with no buffer and reads into
/// the stack only once bytes are there, so an idle session holds no read
/// buffer (measured: 7.6 KiB per idle session at 10,000 sessions with a
/// held 4 KiB buffer; docs/BENCHMARKS.md).
///
/// With `poll`, the socket is also read directly on a short tick,
/// bypassing tokio's cached readiness: after TCP urgent data (the Synch
/// before ABOR, or ftplib's whole `ABOR` sent as urgent data) an
/// edge-triggered wake-up can be lost, leaving the bytes unread in the
/// socket while the task waits forever.
async fn read_control(reader: &mut ControlReader, poll: bool) -> io::Result<Vec<u8>> {
    // Only a plain connection can be read beneath tokio: under TLS the
    // bytes are records, and urgent data has no meaning.
    let ControlReader::Plain(plain) = reader else {
        let mut buf = vec![0u8; CONTROL_READ];
        let n = reader.read(&mut buf).await?;
        buf.truncate(n);
        return Ok(buf);
    };
    loop {
        if let Some(read) = read_ready_bytes(plain, poll) {
            return read;
        }
        if poll {
            tokio::select! {
                ready = plain.readable() => ready?,
                () = tokio::time::sleep(URGENT_POLL_EVERY) => {}
            }
        } else {
            plain.readable().await?;
        }
    }
}

/// Reads what is in the socket now, without waiting: `None` when nothing
/// is. tokio's own read comes first: on EAGAIN it clears the cached
/// readiness, so waiting for `readable()` afterwards really waits. With
/// `direct`, the socket itself is read too, in case tokio missed the
/// wake-up.
///
/// A short read (fewer bytes than asked for) that ends a line has emptied
/// the socket, so the cached readiness is cleared then too, as tokio's own
/// `poll_read` does: the next wait goes straight to epoll instead of first
/// trying a read that can only fail (one recvfrom fewer per command).
/// Readiness that arrived meanwhile is kept: tokio clears only the
/// readiness it saw before the read. A short read that does not end a line
/// may have stopped at TCP urgent data (Linux stops a read before the
/// urgent byte: ftplib sends its whole `ABOR\r\n` as urgent data, and the
/// read returns `ABOR\r`), so then readiness stays and the rest is read
/// at once.
fn read_ready_bytes(plain: &tokio::net::tcp::OwnedReadHalf, direct: bool) -> Option<io::Result<Vec<u8>>> {
    let tcp: &TcpStream = plain.as_ref();
    let mut bytes = Vec::new();
    // tokio calls the closure only when it holds the socket readable.
    let read = tcp.try_io(tokio::io::Interest::READABLE, || {
        bytes = receive_now(tcp)?;
        if !bytes.is_empty() && bytes.len() < CONTROL_READ && bytes.ends_with(b"\n") {
            // Bytes read, and the socket drained: tokio clears readiness
            // on WouldBlock; the bytes are returned below.
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match read {
        Ok(()) => return Some(Ok(bytes)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && !bytes.is_empty() => return Some(Ok(bytes)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Some(Err(e)),
    }
    if direct {
        match receive_now(tcp) {
            Ok(bytes) => return Some(Ok(bytes)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// One recv(2) of at most [`CONTROL_READ`] bytes (empty at end of
/// stream). The buffer is cleared only for a read that is made.
fn receive_now(socket: &TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; CONTROL_READ];
    let (n, _) = rustix::net::recv(socket, &mut buf, rustix::net::RecvFlags::empty())?;
    Ok(buf[..n].to_vec())
}

async fn wait_transfer(t: &mut Option<RunningTransfer>) -> Result<Transferred, TransferError> {
    match t {
        Some(t) => t.task.get_mut().await,
        None => std::future::pending().await,
    }
}

impl Session {
    async fn run(&mut self, mut reader: ControlReader, shutdown: &mut watch::Receiver<bool>) -> io::Result<()> {
        self.writer.write_all(&Reply::line_wire(code::SERVICE_READY, GREETING)).await?;
        let mut decoder = LineDecoder::default();
        let mut queue: VecDeque<LineEvent> = VecDeque::new();
        let mut events = Vec::new();
        let mut deadline = Instant::now() + self.idle_timeout;
        // One timer for the session, moved only when it fires early or a
        // deadline comes nearer (SITE IDLE, REIN). A new timer per command
        // woke the runtime's other thread for every command (measured: one
        // eventfd write and two context switches per reply).
        let timer = tokio::time::sleep_until(self.next_deadline(deadline));
        tokio::pin!(timer);
        // Clients send IAC IP, then the Synch (IAC DM with DM as TCP urgent
        // data), then ABOR. Linux stops a read before the urgent byte, and a
        // read that stops right after a line end looks like a drained
        // socket (read_ready_bytes), leaving the rest unread with no
        // wake-up to come. So for a while after an IP we also read on a
        // short tick. Not during every transfer: that tick took a third of
        // a core with 1,000 transfers waiting (docs/BENCHMARKS.md).
        let mut urgent_watch_until: Option<Instant> = None;
        // Set while the queue is full and the connection goes unread.
        let mut hangup_watch: Option<hangup::HangupWatch> = None;
        loop {
            if urgent_watch_until.is_some_and(|until| Instant::now() > until) {
                urgent_watch_until = None;
            }
            if self.transfer.is_none() {
                if let Some(event) = queue.pop_front() {
                    // Boxed: a command's future lives only while it runs, so an idle
                    // session's task stays small.
                    match Box::pin(self.handle_event(event)).await? {
                        Flow::Continue => {}
                        Flow::Close => return Ok(()),
                        Flow::ClearControl => {
                            if !self.swap_control(&mut reader, |r, w| Box::pin(stream::downgrade(r, w))).await {
                                return Ok(());
                            }
                            self.control_cleared = true;
                        }
                        Flow::StartTls => {
                            // SECURITY: command injection. Anything that came
                            // after AUTH in the same plain-text packets was
                            // not protected; it must not run as if it were.
                            if !queue.is_empty() || decoder.has_partial_line() {
                                tracing::warn!(peer = %self.peer, "plain-text bytes after AUTH; closing");
                                return Ok(());
                            }
                            let Some(config) = self.tls.as_ref().map(|t| Arc::clone(&t.control)) else {
                                return Ok(());
                            };
                            let upgrade = |r, w| Box::pin(stream::upgrade(r, w, config)) as SwapFuture;
                            if !self.swap_control(&mut reader, upgrade).await {
                                tracing::info!(peer = %self.peer, "TLS handshake on the control connection failed");
                                return Ok(());
                            }
                        }
                    }
                    deadline = Instant::now() + self.idle_timeout;
                    continue;
                }
            }
            let may_read = queue.len() < MAX_QUEUED_LINES;
            if may_read {
                hangup_watch = None;
            } else if hangup_watch.is_none() {
                hangup_watch = hangup::HangupWatch::new(&reader);
            }
            let transferring = self.transfer.is_some();
            let due = self.next_deadline(deadline);
            if due < timer.deadline() {
                timer.as_mut().reset(due);
            }
            // In this order: a shutdown first, then a finished transfer (a
            // small one is done on its first poll, before the control
            // connection is read in vain), then timeouts; a client that
            // never stops sending must not hold off either.
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.send(&Reply::new(code::SERVICE_NOT_AVAILABLE, "Server shutting down; closing control connection.")).await?;
                    return Ok(());
                }
                outcome = wait_transfer(&mut self.transfer) => {
                    let Some(finished) = self.transfer.take() else { continue };
                    self.transfer_ended(&finished, &outcome);
                    let (reply, done) = Box::pin(finished.outcome_reply(outcome)).await;
                    self.send_final(&reply.to_wire(), done).await?;
                    deadline = Instant::now() + self.idle_timeout;
                }
                () = hangup::wait(&hangup_watch), if !may_read => {
                    tracing::debug!(peer = %self.peer, "client hung up with commands still queued");
                    return Ok(());
                }
                () = &mut timer, if !transferring => {
                    let now = Instant::now();
                    if self.passive.as_ref().is_some_and(|p| p.release_at <= now) {
                        self.passive = None;
                    }
                    if now < self.close_deadline(deadline) {
                        timer.as_mut().reset(self.next_deadline(deadline));
                        continue;
                    }
                    let text = if self.login_deadline.is_some_and(|d| d <= Instant::now()) {
                        "Timeout: not logged in in time; closing control connection."
                    } else {
                        "Timeout: idle too long; closing control connection."
                    };
                    self.send(&Reply::new(code::SERVICE_NOT_AVAILABLE, text)).await?;
                    return Ok(());
                }
                read = read_control(&mut reader, urgent_watch_until.is_some()), if may_read => {
                    let bytes = read?;
                    if bytes.is_empty() {
                        return Ok(());
                    }
                    decoder.feed(&bytes, &mut events);
                    drop(bytes);
                    if decoder.take_interrupt() {
                        urgent_watch_until = Some(Instant::now() + URGENT_POLL_FOR);
                    }
                    for event in events.drain(..) {
                        if self.transfer.is_some() {
                            if let Some(reply) = Box::pin(self.during_transfer(&event)).await {
                                self.send(&reply).await?;
                                continue;
                            }
                        }
                        queue.push_back(event);
                    }
                }
            }
        }
    }

    /// Moves the control connection to TLS or back to plain text with
    /// `swap` (bounded by the data timeout); false when that failed and
    /// the connection is gone.
    async fn swap_control(
        &mut self,
        reader: &mut ControlReader,
        swap: impl FnOnce(ControlReader, ControlWriter) -> SwapFuture,
    ) -> bool {
        let writer = std::mem::replace(&mut self.writer, ControlWriter::Closed);
        let old = std::mem::replace(reader, ControlReader::Closed);
        match tokio::time::timeout(self.ctx.config.data_timeout, swap(old, writer)).await {
            Ok(Ok((r, w))) => {
                *reader = r;
                self.writer = w;
                true
            }
            _ => false,
        }
    }

    /// When the session's timer must next fire: the login or idle
    /// deadline, or the release of a kept passive listener.
    fn next_deadline(&self, idle_deadline: Instant) -> Instant {
        let close = self.close_deadline(idle_deadline);
        self.passive.as_ref().map_or(close, |p| p.release_at.min(close))
    }

    /// When the session is closed for want of a login or of activity.
    fn close_deadline(&self, idle_deadline: Instant) -> Instant {
        self.login_deadline.map_or(idle_deadline, |d| d.min(idle_deadline))
    }

    /// Commands answered at once while a transfer runs: ABOR and STAT.
    async fn during_transfer(&mut self, event: &LineEvent) -> Option<Reply> {
        let LineEvent::Line(line) = event else { return None };
        match Command::parse(line) {
            Ok(Command::Abor) => {
                let aborted = self.transfer.take()?;
                self.transfer_aborted(&aborted);
                aborted.abort().await;
                if let Err(e) =
                    self.send(&Reply::new(code::TRANSFER_ABORTED, "Connection closed; transfer aborted.")).await
                {
                    tracing::debug!(error = %e, "could not send 426");
                }
                Some(Reply::new(code::CLOSING_DATA, "Abort successful."))
            }
            Ok(Command::Stat(None)) => {
                let t = self.transfer.as_ref()?;
                Some(Reply::new(
                    code::FILE_STATUS,
                    format!(
                        "Status: {} in progress, {} bytes transferred.",
                        t.subject.description,
                        t.progress.load(Ordering::Relaxed)
                    ),
                ))
            }
            _ => None,
        }
    }

    /// Answers one queued line. Returns false when the connection closes.
    async fn handle_event(&mut self, event: LineEvent) -> io::Result<Flow> {
        let line = match event {
            LineEvent::TooLong => {
                self.send(&Reply::new(code::SYNTAX_ERROR, "Command line too long.")).await?;
                return Ok(Flow::Continue);
            }
            LineEvent::Line(line) => line,
        };
        let action = match Command::parse(&line) {
            Ok(cmd) => {
                tracing::trace!(peer = %self.peer, ?cmd, "command");
                self.apply(cmd).await
            }
            Err(e) => Action::Reply(Reply::new(e.reply_code(), e.to_string())),
        };
        match action {
            Action::Reply(reply) => self.send(&reply).await?,
            Action::Close(reply) => {
                self.send_last(&reply).await?;
                return Ok(Flow::Close);
            }
            Action::StartTls(reply) => {
                self.send(&reply).await?;
                return Ok(Flow::StartTls);
            }
            Action::ClearControl(reply) => {
                self.send(&reply).await?;
                return Ok(Flow::ClearControl);
            }
            Action::Transfer(start) => {
                let progress = Arc::new(AtomicU64::new(0));
                let rate = self.logged_in().and_then(|l| match start.job {
                    Job::Send { .. } => l.download_rate,
                    Job::Receive { .. } => l.upload_rate,
                });
                let tls = self.data_tls(matches!(start.job, Job::Receive { .. }));
                let protected = tls.is_some();
                let mut task: TransferFuture = Box::pin(transfer::run(
                    start.setup,
                    self.ctx.config.data_timeout,
                    start.job,
                    Arc::clone(&progress),
                    rate,
                    tls,
                ));
                // One poll before the 150: a small download whose client is
                // already connected is done by then, and the 150 and 226
                // leave in one write (one packet fewer per file). Whatever
                // waits (a client that connects only after the 150, a TLS
                // handshake, a big file) gets its 150 now.
                let first_poll = transfer::poll_once(task.as_mut()).await;
                let running = RunningTransfer {
                    task: SyncWrapper::new(task),
                    progress,
                    subject: start.subject,
                    mode: start.mode,
                    tls: protected,
                    started: std::time::Instant::now(),
                    done_text: start.done_text,
                    partial: start.partial,
                };
                match first_poll {
                    Some(outcome) => {
                        self.transfer_ended(&running, &outcome);
                        let (last, done) = running.outcome_reply(outcome).await;
                        let mut wire = start.preliminary.to_wire();
                        last.write_to(&mut wire);
                        self.send_final(&wire, done).await?;
                    }
                    None => {
                        self.send(&start.preliminary).await?;
                        self.transfer = Some(running);
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// The logged-in user's name, or empty.
    pub(super) fn user_name(&self) -> String {
        self.logged_in().map(|l| l.name.clone()).unwrap_or_default()
    }

    /// Hands `make`'s event to the observers that want `kind`.
    pub(super) fn emit(&self, kind: Kind, make: impl FnOnce() -> Event) {
        self.ctx.observers.emit(kind, make);
    }

    /// Tells the observers a transfer ended (and why its data connection
    /// could not be opened, when that is why).
    fn transfer_ended(&self, t: &RunningTransfer, outcome: &Result<Transferred, TransferError>) {
        let failure = outcome.as_ref().err().map(|e| (e.reply_code(), e.to_string()));
        let bytes = match outcome {
            Ok(done) => done.bytes,
            Err(_) => t.progress.load(Ordering::Relaxed),
        };
        if let Err(e) = outcome {
            if let Some(cause) = data_failure(e) {
                self.emit(Kind::DataFailed, || Event::DataFailed {
                    peer: self.peer,
                    user: self.user_name(),
                    cause,
                    detail: e.to_string(),
                });
            }
        }
        self.emit(Kind::Transfer, || self.transfer_event(t, bytes, failure));
    }

    /// Tells the observers a transfer was stopped (ABOR, a lost client).
    fn transfer_aborted(&self, t: &RunningTransfer) {
        let bytes = t.progress.load(Ordering::Relaxed);
        let failure = Some((code::TRANSFER_ABORTED, "Transfer aborted.".to_string()));
        self.emit(Kind::Transfer, || self.transfer_event(t, bytes, failure));
    }

    fn transfer_event(&self, t: &RunningTransfer, bytes: u64, failure: Option<(u16, String)>) -> Event {
        Event::Transfer(Box::new(crate::events::Transfer {
            peer: self.peer,
            user: self.user_name(),
            direction: t.subject.direction,
            path: t.subject.path.to_string(),
            bytes,
            duration: t.started.elapsed(),
            failure,
            mode: t.mode,
            tls: t.tls,
        }))
    }

    /// Ends the login, if any, telling the observers.
    pub(super) fn logout(&mut self) {
        if let LoginState::LoggedIn(login) = std::mem::replace(&mut self.login, LoginState::AwaitingUser) {
            let (peer, user, duration) = (self.peer, login.name, login.since.elapsed());
            self.ctx.observers.emit(Kind::Logout, || Event::Logout { peer, user, duration });
        }
    }

    async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        self.writer.write_all(&reply.to_wire()).await
    }

    /// Sends a transfer's final reply (`wire`), then lets its data
    /// connection go (the FIN, see [`Transferred`]): after the reply when
    /// the reply is written at once, as it nearly always is; before the
    /// rest of it when the control connection is backed up, so a client
    /// that does not read its replies cannot hold back the data
    /// connection's end.
    async fn send_final(&mut self, wire: &[u8], done: Option<Transferred>) -> io::Result<()> {
        let mut write = std::pin::pin!(self.writer.write_all(wire));
        let written = transfer::poll_once(write.as_mut()).await;
        drop(done);
        match written {
            Some(result) => result,
            None => write.await,
        }
    }

    /// Sends the last reply (221) and closes our side. On a plain
    /// connection the reply goes with MSG_MORE, so it waits in the socket
    /// and leaves in one packet with the FIN: one packet fewer per session.
    async fn send_last(&mut self, reply: &Reply) -> io::Result<()> {
        let wire = reply.to_wire();
        let mut unsent: &[u8] = &wire;
        if let ControlWriter::Plain(plain) = &self.writer {
            let tcp: &TcpStream = plain.as_ref();
            let flags = rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL;
            let sent = tcp.try_io(tokio::io::Interest::WRITABLE, || {
                rustix::net::send(tcp, unsent, flags).map_err(io::Error::from)
            });
            if let Ok(n) = sent {
                unsent = &unsent[n..];
            }
        }
        self.writer.write_all(unsent).await?;
        let _ = self.writer.shutdown().await;
        Ok(())
    }
}
