//! Shared helpers: start a server, speak to it line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferroftp_server::{Config, FileConfig, Server};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A running server on its own thread and runtime; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Anonymous read-write server on a fresh temporary root.
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// As `start`, with the file config adjusted by `adjust`.
    pub fn start_with(adjust: impl FnOnce(&mut FileConfig)) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        let mut file = FileConfig {
            listen: Some("127.0.0.1:0".into()),
            root: Some(root.path().to_path_buf()),
            anonymous_write: Some(true),
            login_failure_delay_ms: Some(10),
            ..Default::default()
        };
        adjust(&mut file);
        let config = Config::from_file(file).unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let server = Server::bind(config).await.unwrap();
                addr_tx.send(server.local_addr().unwrap()).unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv_timeout(TIMEOUT).unwrap();
        TestServer { addr, root, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
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

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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
    // meanwhile can shift an entry past a piece, so look again.
    let inode: u64 = (0..20)
        .find_map(|_| {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            let found = table
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() > 9 && f[1] == local && f[2] == remote)
                .map(|f| f[9].parse().unwrap());
            found.or_else(|| {
                std::thread::sleep(Duration::from_millis(5));
                None
            })
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
