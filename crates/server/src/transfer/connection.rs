//! Data connections: the passive listener (PASV/EPSV) and the active
//! connect-back (PORT/EPRT), each opened within a timeout.
//!
//! A passive listener accepts one connection, and with the peer check on
//! only from the control connection's IP: anyone else who finds the port
//! is dropped and the listener keeps waiting. Active connections go out
//! from port 20 (or the configured port) when the process may bind it, and
//! from an ephemeral port otherwise.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rand::Rng;
use rustix::fd::OwnedFd;
use rustix::net;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};

/// Why a data connection could not be opened (reply 425).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No transfer command was preceded by PORT, PASV, EPRT or EPSV.
    #[error("Use PORT, PASV, EPRT or EPSV first")]
    NotSetUp,
    /// Nothing could be bound in the passive range.
    #[error("no free passive port in {0}; widen passive_ports")]
    NoPassivePort(String),
    /// Binding a passive listener failed.
    #[error("cannot listen for a data connection: {0}")]
    Listen(std::io::Error),
    /// The client did not connect to our passive port in time.
    #[error("no data connection to passive port {port} within {secs} s (firewall or NAT on the way?)")]
    AcceptTimeout {
        /// The passive port.
        port: u16,
        /// The timeout.
        secs: u64,
    },
    /// Accepting failed.
    #[error("accepting the data connection failed: {0}")]
    Accept(std::io::Error),
    /// Connecting back to the client failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// Where we tried to connect.
        target: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Connecting back to the client timed out.
    #[error("connecting to {0} timed out (client firewall or NAT?)")]
    ConnectTimeout(SocketAddr),
}

/// How the next data connection will be opened.
#[derive(Debug)]
pub enum DataSetup {
    /// We listen; the client connects (PASV/EPSV).
    Passive {
        /// The bound listener, shared with the session that keeps it.
        listener: Arc<PassiveListener>,
        /// Only connections from this IP are accepted, if set.
        expected_peer: Option<IpAddr>,
    },
    /// We connect to the client (PORT/EPRT).
    Active {
        /// The client's address.
        target: SocketAddr,
        /// Our source address (the control connection's local IP).
        local_ip: IpAddr,
        /// Our source port; 0 for any.
        source_port: u16,
    },
}

/// How many random ports of the system's ephemeral range are tried before
/// letting the kernel choose one.
const EPHEMERAL_TRIES: u32 = 64;

/// The kernel's ephemeral port range, where passive ports go when no
/// `passive_ports` range is configured (as vsftpd and pure-ftpd pick their
/// own random port rather than asking the kernel). Read once: reading
/// /proc for every PASV cost five system calls per transfer, and the
/// range is set at boot.
fn ephemeral_range() -> RangeInclusive<u16> {
    static RANGE: OnceLock<RangeInclusive<u16>> = OnceLock::new();
    RANGE
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|text| {
                    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
                    Some(parts.next()??..=parts.next()??)
                })
                .filter(|r| !r.is_empty() && *r.start() >= 1024)
                .unwrap_or(32768..=60999)
        })
        .clone()
}

/// Binds a listener to exactly `ip:port` with SO_REUSEADDR.
///
/// SO_REUSEADDR is what lets a passive port be used again while the last
/// data connection on it sits in TIME_WAIT (the server closes a download
/// first, so TIME_WAIT lands on its side). Without it a range of N ports
/// allows only about N transfers a minute, and `bind(port 0)` walks every
/// port held in TIME_WAIT: measured at 18,000 such ports, that walk was
/// most of the server's CPU, 0.5-2.9 ms per small download
/// (docs/BENCHMARKS.md).
///
/// The listener is not registered with the runtime: clients connect right
/// after the PASV reply, so by the transfer command the connection is
/// usually waiting and is taken without the epoll set-up and tear-down
/// (see [`DataSetup::open`]).
fn bind_reusable(ip: IpAddr, port: u16) -> std::io::Result<PassiveListener> {
    let family = if ip.is_ipv4() { net::AddressFamily::INET } else { net::AddressFamily::INET6 };
    let flags = net::SocketFlags::NONBLOCK | net::SocketFlags::CLOEXEC;
    let socket = net::socket_with(family, net::SocketType::STREAM, flags, Some(net::ipproto::TCP))?;
    net::sockopt::set_socket_reuseaddr(&socket, true)?;
    // Accepted data connections inherit the cork (see [`DataConn`]).
    net::sockopt::set_tcp_cork(&socket, true)?;
    net::bind(&socket, &SocketAddr::new(ip, port))?;
    // A data port takes one connection; a little room lets a foreign
    // connection be dropped without refusing the client's own.
    net::listen(&socket, 8)?;
    let port = match port {
        0 => SocketAddr::try_from(net::getsockname(&socket)?).map_or(0, |a| a.port()),
        chosen => chosen,
    };
    Ok(PassiveListener { socket, port })
}

/// A bound passive listener and its port.
///
/// A session keeps its listener for the next PASV for a few seconds
/// (binding a new one cost five system calls per file); connections left
/// from an earlier PASV are dropped first ([`PassiveListener::drain`]).
#[derive(Debug)]
pub struct PassiveListener {
    /// The listening socket, non-blocking, registered with the runtime
    /// only while a transfer waits for its connection.
    socket: OwnedFd,
    /// The port it listens on.
    pub port: u16,
}

impl PassiveListener {
    /// Drops connections still waiting from an earlier PASV, so the next
    /// transfer takes a connection made for it.
    pub fn drain(&self) {
        while accept_now(&self.socket).is_ok_and(|c| c.is_some()) {}
    }
}

/// Takes a waiting connection without waiting: `None` when there is none.
fn accept_now(listener: &OwnedFd) -> std::io::Result<Option<(std::net::TcpStream, Option<SocketAddr>)>> {
    loop {
        match net::acceptfrom_with(listener, net::SocketFlags::NONBLOCK | net::SocketFlags::CLOEXEC) {
            Ok((stream, from)) => return Ok(Some((stream.into(), from.and_then(|a| SocketAddr::try_from(a).ok())))),
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// An opened data connection.
///
/// Every data connection starts corked (TCP_CORK): passive ones inherit it
/// from their listener, set once when it is bound, active ones get it
/// before they connect. A download then sends full segments only, and the
/// last with the FIN; a transfer that must not wait for the cork (TLS, a
/// rate limit) takes it off with [`uncork`], and so does a download once
/// it has filled the socket's buffer (a big file). Setting it per
/// connection cost a system call per file.
#[derive(Debug)]
pub enum DataConn {
    /// Taken from the accept queue without the runtime: non-blocking, not
    /// registered for readiness yet. Small transfers often finish without
    /// ever registering it.
    Unregistered(std::net::TcpStream),
    /// A runtime socket.
    Registered(TcpStream),
}

/// Takes a data connection's cork off (see [`DataConn`]). A socket that
/// refuses stays corked, which only holds back its last partial segment
/// for the cork's timer: no reason to fail the transfer.
pub fn uncork(socket: impl rustix::fd::AsFd) {
    if let Err(e) = net::sockopt::set_tcp_cork(socket, false) {
        tracing::debug!(error = %e, "data connection left corked");
    }
}

impl DataConn {
    /// The connection as a runtime socket, registering it if needed.
    ///
    /// # Errors
    /// Registration failed (out of memory, say).
    pub fn registered(self) -> std::io::Result<TcpStream> {
        match self {
            DataConn::Unregistered(s) => TcpStream::from_std(s),
            DataConn::Registered(s) => Ok(s),
        }
    }
}

/// Binds a passive listener on `ip`, in `range` if given, else on a random
/// port of the system's ephemeral range.
///
/// # Errors
/// [`DataError::NoPassivePort`] when every port in the range is taken,
/// [`DataError::Listen`] for other bind failures.
pub async fn listen_passive(ip: IpAddr, range: Option<&RangeInclusive<u16>>) -> Result<PassiveListener, DataError> {
    let (configured, tries) = match range {
        Some(r) => (r.clone(), u32::MAX),
        None => (ephemeral_range(), EPHEMERAL_TRIES),
    };
    let (lo, hi) = (*configured.start(), *configured.end());
    let span = u32::from(hi - lo) + 1;
    let start = rand::thread_rng().gen_range(0..span);
    for i in 0..span.min(tries) {
        let port = lo + ((start + i) % span) as u16;
        match bind_reusable(ip, port) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(DataError::Listen(e)),
        }
    }
    if range.is_none() {
        return bind_reusable(ip, 0).map_err(DataError::Listen);
    }
    Err(DataError::NoPassivePort(format!("{lo}-{hi}")))
}

impl DataSetup {
    /// Opens the data connection, waiting at most `limit`.
    ///
    /// # Errors
    /// A [`DataError`] saying what failed.
    pub async fn open(self, limit: Duration) -> Result<DataConn, DataError> {
        let deadline = Instant::now() + limit;
        match self {
            DataSetup::Passive { listener, expected_peer } => {
                let is_expected = |from: Option<SocketAddr>| match (expected_peer, from) {
                    // SECURITY: data-connection theft. Someone else who
                    // guesses the passive port must not get the data.
                    (Some(ip), Some(from)) if ip != from.ip().to_canonical() => {
                        tracing::warn!(%from, expected = %ip, "passive data connection from a foreign address refused");
                        false
                    }
                    (Some(_), None) => false,
                    _ => true,
                };
                // Usually the client has connected already.
                while let Some((stream, from)) = accept_now(&listener.socket).map_err(DataError::Accept)? {
                    if is_expected(from) {
                        return Ok(DataConn::Unregistered(stream));
                    }
                }
                // Not yet: wait with the runtime, on a duplicate of the
                // socket (closing it leaves the session's listener open).
                let port = listener.port;
                let duplicate =
                    rustix::io::fcntl_dupfd_cloexec(&listener.socket, 0).map_err(|e| DataError::Accept(e.into()))?;
                let waiting =
                    TcpListener::from_std(std::net::TcpListener::from(duplicate)).map_err(DataError::Accept)?;
                loop {
                    let (stream, from) = timeout_at(deadline, waiting.accept())
                        .await
                        .map_err(|_| DataError::AcceptTimeout { port, secs: limit.as_secs() })?
                        .map_err(DataError::Accept)?;
                    if is_expected(Some(from)) {
                        return Ok(DataConn::Registered(stream));
                    }
                }
            }
            DataSetup::Active { target, local_ip, source_port } => {
                if source_port != 0 {
                    match connect_from(local_ip, source_port, target, deadline).await {
                        Ok(stream) => return Ok(DataConn::Registered(stream)),
                        Err(e @ DataError::ConnectTimeout(_)) => return Err(e),
                        Err(DataError::Connect { source, .. })
                            if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                        {
                            return Err(DataError::Connect { target, source })
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "active connect from port {source_port} failed; using an ephemeral port")
                        }
                    }
                }
                connect_from(local_ip, 0, target, deadline).await.map(DataConn::Registered)
            }
        }
    }
}

async fn connect_from(
    local_ip: IpAddr,
    port: u16,
    target: SocketAddr,
    deadline: Instant,
) -> Result<TcpStream, DataError> {
    let connect_err = |source| DataError::Connect { target, source };
    let socket = if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(connect_err)?;
    socket.set_reuseaddr(true).map_err(connect_err)?;
    // Corked like every data connection (see [`DataConn`]).
    rustix::net::sockopt::set_tcp_cork(&socket, true).map_err(|e| connect_err(e.into()))?;
    let local_ip = match (local_ip, target) {
        (IpAddr::V6(v6), SocketAddr::V4(_)) => v6.to_ipv4_mapped().map_or(local_ip, IpAddr::V4),
        _ => local_ip,
    };
    socket.bind(SocketAddr::new(local_ip, port)).map_err(connect_err)?;
    match timeout_at(deadline, socket.connect(target)).await {
        Ok(result) => result.map_err(connect_err),
        Err(_) => Err(DataError::ConnectTimeout(target)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corked(conn: &DataConn) -> bool {
        match conn {
            DataConn::Unregistered(s) => net::sockopt::tcp_cork(s).unwrap(),
            DataConn::Registered(s) => net::sockopt::tcp_cork(s).unwrap(),
        }
    }

    #[tokio::test]
    async fn passive_connections_come_corked_whether_waiting_or_late() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let listener = Arc::new(listen_passive(ip, None).await.unwrap());
        let addr = SocketAddr::new(ip, listener.port);
        // Already waiting in the accept queue.
        let _early = std::net::TcpStream::connect(addr).unwrap();
        let setup = DataSetup::Passive { listener: listener.clone(), expected_peer: Some(ip) };
        let conn = setup.open(Duration::from_secs(5)).await.unwrap();
        assert!(matches!(conn, DataConn::Unregistered(_)));
        assert!(corked(&conn));
        // Connecting only once the transfer waits.
        let setup = DataSetup::Passive { listener, expected_peer: Some(ip) };
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tokio::net::TcpStream::connect(addr).await.unwrap()
        });
        let conn = setup.open(Duration::from_secs(5)).await.unwrap();
        assert!(matches!(conn, DataConn::Registered(_)));
        assert!(corked(&conn));
        drop(late.await.unwrap());
    }

    #[tokio::test]
    async fn active_connections_come_corked() {
        let client = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let setup = DataSetup::Active {
            target: client.local_addr().unwrap(),
            local_ip: "127.0.0.1".parse().unwrap(),
            source_port: 0,
        };
        let conn = setup.open(Duration::from_secs(5)).await.unwrap();
        assert!(corked(&conn));
        drop(client.accept().unwrap());
    }
}
