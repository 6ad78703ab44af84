//! Shared helpers: start a server on either storage backend, seed and
//! check its files through the `Storage` trait, speak to it line by line.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroftp_proto::listing::{EntryFacts, EntryKind};
use ferroftp_server::events::Observer;
use ferroftp_server::path::VirtualPath;
use ferroftp_server::storage::{Storage, StorageError, UploadOptions, WriteMode};
use ferroftp_server::{Config, FileConfig};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, ReadFlags, WatchFlags};
use tokio::io::AsyncReadExt;

pub use crate::in_process::InProcessServer;

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The pause between two looks of [`poll_until`].
const POLL_PAUSE: Duration = Duration::from_millis(10);

/// The storage a test server serves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary directory on the local filesystem (`storage = "local"`).
    Local,
    /// The in-memory tree (`storage = "memory"`); the anonymous root is the
    /// tree's `/`.
    Memory,
}

/// Generates, for each function `name(backend: Backend)` listed, a module
/// `name` with the tests `local` and `memory` running it on each backend
/// (`transfers::rename::memory`, say).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn local() {
                    super::$name($crate::helpers::Backend::Local)
                }

                #[test]
                fn memory() {
                    super::$name($crate::helpers::Backend::Memory)
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

/// A running server on its own thread and runtime (see
/// [`InProcessServer`]), with its anonymous root; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub backend: Backend,
    /// The server itself; it stops when dropped, before the temporary
    /// root below goes (fields drop in order).
    server: InProcessServer,
    /// The temporary directory made for the anonymous root (the local
    /// backend only).
    _root: Option<tempfile::TempDir>,
    /// The anonymous root on disk as configured (the local backend only).
    root_on_disk: Option<PathBuf>,
}

impl TestServer {
    /// Anonymous read-write server on a fresh temporary root.
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// As `start`, with the file config adjusted by `adjust`.
    pub fn start_with(adjust: impl FnOnce(&mut FileConfig)) -> TestServer {
        Self::start_on(Backend::Local, adjust)
    }

    /// An anonymous read-write server on `backend` (a fresh temporary
    /// root, or an empty tree), the file config adjusted by `adjust`.
    pub fn start_on(backend: Backend, adjust: impl FnOnce(&mut FileConfig)) -> TestServer {
        Self::start_observed(backend, Vec::new(), adjust)
    }

    /// As `start_on`, with `observers` registered for the server's events.
    pub fn start_observed(
        backend: Backend,
        observers: Vec<Arc<dyn Observer>>,
        adjust: impl FnOnce(&mut FileConfig),
    ) -> TestServer {
        let root = match backend {
            Backend::Local => Some(tempfile::tempdir().unwrap()),
            Backend::Memory => None,
        };
        let mut file = FileConfig {
            listen: Some("127.0.0.1:0".into()),
            root: root.as_ref().map(|r| r.path().to_path_buf()),
            storage: match backend {
                Backend::Local => None,
                Backend::Memory => Some("memory".into()),
            },
            anonymous_write: Some(true),
            login_failure_delay_ms: Some(10),
            ..Default::default()
        };
        adjust(&mut file);
        let root_on_disk = match backend {
            Backend::Local => file.root.clone(),
            Backend::Memory => None,
        };
        let server = InProcessServer::start(Config::from_file(file).unwrap(), observers);
        TestServer { addr: server.addr, backend, server, _root: root, root_on_disk }
    }

    /// The anonymous root on disk: for tests of the local backend only.
    pub fn root_dir(&self) -> &Path {
        match &self.root_on_disk {
            Some(root) => root,
            None => panic!("a {:?} server has no root on disk", self.backend),
        }
    }

    /// A path in the anonymous root on disk: for tests of the local backend
    /// only (others look through [`TestServer::files`]).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root_dir().join(rel)
    }

    /// The anonymous root, through the storage trait.
    pub fn files(&self) -> Files {
        let storage = self.server.anonymous.clone().expect("anonymous login is off: the server has no anonymous root");
        Files { storage, disk: self.root_on_disk.clone() }
    }

    /// The home a user whose users-file entry says `home` gets, as its
    /// sessions see it (in memory, the subtree there, made on demand).
    pub fn home(&self, home: &Path) -> Files {
        let storage = self.server.backend.open_home(home).unwrap_or_else(|e| panic!("home {}: {e}", home.display()));
        Files { storage, disk: self.on_disk(home) }
    }

    /// A root (a mount, a virtual host's root) at `path`, as the server
    /// opens it.
    pub fn root_at(&self, path: &Path) -> Files {
        let storage = self.server.backend.open_root(path).unwrap_or_else(|e| panic!("root {}: {e}", path.display()));
        Files { storage, disk: self.on_disk(path) }
    }

    fn on_disk(&self, path: &Path) -> Option<PathBuf> {
        (self.backend == Backend::Local).then(|| path.to_path_buf())
    }

    pub fn connect(&self) -> Ctl {
        Ctl::connect(self.addr)
    }

    /// Connected and logged in anonymously.
    pub fn login(&self) -> Ctl {
        let mut c = self.connect();
        c.ok("USER anonymous", 331);
        c.ok("PASS me@example.org", 230);
        c
    }
}

/// Runs `future` to its end on this thread's own small runtime (the
/// server's runtime is on its thread; the local backend needs a runtime
/// for its blocking pool).
fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

/// `rel` (from the storage's root) as a virtual path.
fn vpath(rel: &str) -> VirtualPath {
    VirtualPath::root().resolve(rel)
}

/// A storage root seen through the `Storage` trait, whatever the backend:
/// tests seed files and check what the server stored with these.
pub struct Files {
    storage: Arc<dyn Storage>,
    /// The same directory on disk, on the local backend.
    disk: Option<PathBuf>,
}

impl Files {
    /// Stores `bytes` as the file `rel`, replacing any file there.
    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let options =
            UploadOptions { mode: WriteMode::Truncate, umask: 0o022, atomic: true, keep_partial: false, sync: false };
        block_on(async {
            let upload = self.storage.open_write(&vpath(rel), options).await?;
            upload.commit(bytes.to_vec(), true).await
        })
        .unwrap_or_else(|e| panic!("writing {rel}: {e}"));
    }

    /// The bytes of the file `rel`, or `None` when nothing is there.
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        block_on(async {
            let mut file = match self.storage.open_read(&vpath(rel), 0).await {
                Ok(file) => file,
                Err(StorageError::NotFound) => return None,
                Err(e) => panic!("reading {rel}: {e}"),
            };
            let mut bytes = Vec::new();
            file.reader.read_to_end(&mut bytes).await.unwrap_or_else(|e| panic!("reading {rel}: {e}"));
            Some(bytes)
        })
    }

    /// The facts about `rel`, or `None` when nothing is there.
    pub fn metadata(&self, rel: &str) -> Option<EntryFacts> {
        match block_on(self.storage.metadata(&vpath(rel))) {
            Ok(facts) => Some(facts),
            Err(StorageError::NotFound) => None,
            Err(e) => panic!("looking at {rel}: {e}"),
        }
    }

    /// Whether anything is at `rel`.
    pub fn exists(&self, rel: &str) -> bool {
        self.metadata(rel).is_some()
    }

    /// Whether `rel` is a directory.
    pub fn is_dir(&self, rel: &str) -> bool {
        self.metadata(rel).is_some_and(|f| f.kind == EntryKind::Directory)
    }

    /// Makes the directory `rel` (its parent must exist).
    pub fn mkdir(&self, rel: &str) {
        block_on(self.storage.mkdir(&vpath(rel), 0o022)).unwrap_or_else(|e| panic!("making {rel}: {e}"));
    }

    /// The names in the directory `rel`, sorted.
    pub fn list(&self, rel: &str) -> Vec<String> {
        let entries = block_on(self.storage.list(&vpath(rel))).unwrap_or_else(|e| panic!("listing {rel}: {e}"));
        let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
        names.sort();
        names
    }

    /// `rel` on disk, on the local backend (`None` in memory).
    pub fn disk_path(&self, rel: &str) -> Option<PathBuf> {
        self.disk.as_ref().map(|d| d.join(rel))
    }

    /// Asserts the directory `rel` holds `names` and nothing else: no part
    /// of an upload left behind. The local backend leaves its temporary
    /// upload files out of listings, so there the directory on disk is
    /// read as well.
    pub fn assert_holds_only(&self, rel: &str, names: &[&str]) {
        let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        expected.sort();
        assert_eq!(self.list(rel), expected, "listed in {rel:?}");
        if let Some(dir) = self.disk_path(rel) {
            let mut on_disk: Vec<String> =
                std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            on_disk.sort();
            assert_eq!(on_disk, expected, "on disk in {}", dir.display());
        }
    }
}

/// A control connection.
pub struct Ctl {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Ctl {
    pub fn connect(addr: SocketAddr) -> Ctl {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = Ctl { stream, reader };
        let (code, text) = c.reply();
        assert_eq!(code, 220, "{text}");
        c
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one reply, single- or multi-line: (code, all its text).
    pub fn reply(&mut self) -> (u16, String) {
        let mut first = String::new();
        self.reader.read_line(&mut first).unwrap();
        assert!(first.len() >= 4, "short reply line {first:?}");
        let code: u16 = first[..3].parse().unwrap_or_else(|_| panic!("bad reply {first:?}"));
        let mut text = first.clone();
        if first.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let mut line = String::new();
                let n = self.reader.read_line(&mut line).unwrap();
                assert!(n > 0, "EOF inside multi-line reply: {text}");
                text.push_str(&line);
                if line.starts_with(&end) {
                    break;
                }
            }
        }
        (code, text)
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts the reply code; returns the text.
    pub fn ok(&mut self, line: &str, expect: u16) -> String {
        let (code, text) = self.cmd(line);
        assert_eq!(code, expect, "{line} -> {text}");
        text
    }

    /// PASV; returns the announced address.
    pub fn pasv(&mut self) -> SocketAddr {
        let text = self.ok("PASV", 227);
        SocketAddr::V4(ferroftp_proto::hostport::parse_pasv_reply(&text).unwrap())
    }

    /// EPSV; returns the port.
    pub fn epsv(&mut self) -> u16 {
        let text = self.ok("EPSV", 229);
        ferroftp_proto::hostport::parse_epsv_reply(&text).unwrap()
    }

    /// Reads until the server closes the control connection.
    pub fn read_to_end(&mut self) -> String {
        let mut s = String::new();
        let _ = self.reader.read_to_string(&mut s);
        s
    }
}

/// How a test opens data connections.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Pasv,
    Epsv,
    Port,
    Eprt,
}

pub const ALL_MODES: [Mode; 4] = [Mode::Pasv, Mode::Epsv, Mode::Port, Mode::Eprt];

/// A data connection in the making: connect for passive, accept for active.
pub enum Pending {
    Connect(SocketAddr),
    Accept(TcpListener),
}

impl Pending {
    pub fn open(self) -> TcpStream {
        let s = match self {
            Pending::Connect(a) => TcpStream::connect(a).unwrap(),
            Pending::Accept(l) => l.accept().unwrap().0,
        };
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s
    }
}

impl Ctl {
    /// Sets up a data connection in `mode`.
    pub fn data(&mut self, mode: Mode) -> Pending {
        match mode {
            Mode::Pasv => Pending::Connect(self.pasv()),
            Mode::Epsv => {
                let port = self.epsv();
                Pending::Connect(SocketAddr::new(self.stream.peer_addr().unwrap().ip(), port))
            }
            Mode::Port | Mode::Eprt => {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let line = match (mode, addr) {
                    (Mode::Port, SocketAddr::V4(a)) => {
                        format!("PORT {}", ferroftp_proto::hostport::format_host_port(a))
                    }
                    _ => format!("EPRT {}", ferroftp_proto::hostport::format_eprt(addr)),
                };
                self.ok(&line, 200);
                Pending::Accept(listener)
            }
        }
    }

    /// Downloads with RETR (or lists) in `mode`; returns the bytes.
    pub fn fetch(&mut self, mode: Mode, command: &str) -> Vec<u8> {
        let pending = self.data(mode);
        self.send(command);
        let (code, text) = self.reply();
        assert!(code == 150 || code == 125, "{command} -> {text}");
        let mut data = pending.open();
        let mut out = Vec::new();
        data.read_to_end(&mut out).unwrap();
        let (code, text) = self.reply();
        assert_eq!(code, 226, "{command} end -> {text}");
        out
    }

    /// Uploads `bytes` with `command` (STOR/APPE/STOU) in `mode`; returns
    /// the 150 and 226 texts.
    pub fn upload(&mut self, mode: Mode, command: &str, bytes: &[u8]) -> (String, String) {
        let pending = self.data(mode);
        self.send(command);
        let (code, first) = self.reply();
        assert_eq!(code, 150, "{command} -> {first}");
        let mut data = pending.open();
        data.write_all(bytes).unwrap();
        drop(data);
        let (code, last) = self.reply();
        assert_eq!(code, 226, "{command} end -> {last}");
        (first, last)
    }
}

/// A fixed port for a test: `port` (below 31800) on the local backend, and
/// 1000 higher on the memory backend, so both runs of a test can go at
/// once (still below the kernel's ephemeral range, 32768-60999, where
/// another test's connection could hold them).
pub fn fixed_port(backend: Backend, port: u16) -> u16 {
    match backend {
        Backend::Local => port,
        Backend::Memory => port + 1000,
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Looks at `done` until it holds, for at most [`TIMEOUT`], with a short
/// pause between looks. Only for what no event announces (the server says
/// how far a transfer has come only when asked, and a place it gives back
/// after closing a connection shows only when tried): each caller says
/// why.
pub fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "still not so after {TIMEOUT:?}: {what}");
        std::thread::sleep(POLL_PAUSE);
    }
}

/// Changes on disk as inotify reports them, so a test waits for the change
/// itself instead of looking again and again.
pub struct DiskWatch {
    inotify: OwnedFd,
    /// Every kind of event reported so far.
    seen: ReadFlags,
}

impl DiskWatch {
    /// Watches `path`, a file (until it goes) or a directory (and the
    /// files in it), for `events`.
    pub fn new(path: &Path, events: WatchFlags) -> DiskWatch {
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
        inotify::add_watch(&inotify, path, events).unwrap_or_else(|e| panic!("watching {}: {e}", path.display()));
        DiskWatch { inotify, seen: ReadFlags::empty() }
    }

    /// Waits (at most [`TIMEOUT`]) until `done` holds: it is looked at now
    /// and again after each event reported.
    pub fn wait_until(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        self.wait(what, |_| done());
    }

    /// Waits (at most [`TIMEOUT`]) for an event of a kind in `events`.
    pub fn wait_for(&mut self, what: &str, events: ReadFlags) {
        self.wait(what, |seen| seen.intersects(events));
    }

    /// Waits until `done` holds for the kinds of events seen so far.
    fn wait(&mut self, what: &str, mut done: impl FnMut(ReadFlags) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done(self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no change on disk after {TIMEOUT:?}: {what}");
            let mut fds = [PollFd::new(&self.inotify, PollFlags::IN)];
            match poll(&mut fds, Some(&Timespec::try_from(left).unwrap())) {
                Ok(_) | Err(rustix::io::Errno::INTR) => self.take_events(),
                Err(e) => panic!("waiting for inotify events: {e}"),
            }
        }
    }

    /// Reads the events reported so far.
    fn take_events(&mut self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.inotify, &mut buf);
        loop {
            match reader.next() {
                Ok(event) => self.seen |= event.events(),
                Err(rustix::io::Errno::AGAIN) => return,
                Err(e) => panic!("reading inotify events: {e}"),
            }
        }
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Whether the server's end of `client`'s connection (this process's
/// socket whose addresses mirror it) is in some epoll interest list of
/// this process: the runtime watching it. Read from /proc/net/tcp (the
/// socket's inode) and /proc/self/fdinfo (each epoll's watched inodes).
pub fn server_end_in_an_epoll(client: &TcpStream) -> bool {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let (local, remote) = (hex(client.peer_addr().unwrap()), hex(client.local_addr().unwrap()));
    // The kernel writes the table in pieces: a socket opened or closed
    // meanwhile can shift an entry past a piece, so read it again (at
    // once: the entry is there, only this reading missed it).
    let inode: u64 = (0..100)
        .find_map(|_| {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            table
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() > 9 && f[1] == local && f[2] == remote)
                .map(|f| f[9].parse().unwrap())
        })
        .expect("the server's end of the connection is not in /proc/net/tcp");
    let watched = format!(" ino:{inode:x} ");
    std::fs::read_dir("/proc/self/fd").unwrap().flatten().any(|fd| {
        let is_epoll = std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:[eventpoll]");
        is_epoll
            && std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.file_name().to_string_lossy()))
                .is_ok_and(|info| info.lines().any(|l| l.starts_with("tfd:") && l.contains(&watched)))
    })
}
