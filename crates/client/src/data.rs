//! Data connections from the client side: set up with PASV, EPSV, PORT or
//! EPRT, then connect or accept, each step timed and its failure typed so
//! `probe` can explain it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ferroftp_proto::hostport;
use ferroftp_proto::Reply;
use tokio::net::{TcpListener, TcpStream};

use crate::control::{ClientError, Control};

/// How the data connection is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataMode {
    /// PASV: the server listens on an address it announces (227).
    Pasv,
    /// EPSV: the server listens on a port it announces (229).
    Epsv,
    /// PORT: we listen; the server connects (IPv4).
    Port,
    /// EPRT: we listen; the server connects (IPv4 or IPv6).
    Eprt,
}

impl DataMode {
    /// Every mode, in the order probe tries them.
    pub const ALL: [DataMode; 4] = [DataMode::Pasv, DataMode::Epsv, DataMode::Port, DataMode::Eprt];

    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            DataMode::Pasv => "PASV",
            DataMode::Epsv => "EPSV",
            DataMode::Port => "PORT",
            DataMode::Eprt => "EPRT",
        }
    }

    /// True for PASV and EPSV.
    pub fn is_passive(self) -> bool {
        matches!(self, DataMode::Pasv | DataMode::Epsv)
    }
}

impl fmt::Display for DataMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataMode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown mode {s:?}: use pasv, epsv, port or eprt"))
    }
}

/// A data connection the server agreed to.
#[derive(Debug)]
pub enum Offer {
    /// The server listens; we connect.
    Passive {
        /// The 227/229 reply.
        reply: Reply,
        /// The address the server announced (for EPSV: the control peer's
        /// IP with the announced port).
        announced: SocketAddr,
    },
    /// We listen; the server connects.
    Active {
        /// The 200 reply to PORT/EPRT.
        reply: Reply,
        /// Our listener.
        listener: TcpListener,
        /// The address we announced.
        announced: SocketAddr,
    },
}

/// Why setting up a data connection failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The server refused the command.
    #[error("{command} refused: {} {}", .reply.code, .reply.lines.join(" "))]
    Refused {
        /// The command sent.
        command: String,
        /// The server's reply.
        reply: Reply,
    },
    /// The reply did not contain what it should.
    #[error("cannot read the {mode} reply {text:?}: {reason}")]
    Malformed {
        /// The mode.
        mode: DataMode,
        /// The reply text.
        text: String,
        /// What was missing.
        reason: String,
    },
    /// We could not listen for an active connection.
    #[error("cannot listen on {0} for the server's connection: {1}")]
    Listen(IpAddr, std::io::Error),
    /// PORT cannot carry an IPv6 address.
    #[error("PORT cannot announce the IPv6 address {0}; use EPRT")]
    PortNeedsIpv4(IpAddr),
    /// The control connection failed.
    #[error(transparent)]
    Control(#[from] ClientError),
}

/// Asks the server for a data connection in `mode`. For active modes we
/// listen on the control connection's local address and announce
/// `announce` (or that address).
///
/// # Errors
/// A [`SetupError`] naming the reply or local failure.
pub async fn set_up(control: &mut Control, mode: DataMode, announce: Option<IpAddr>) -> Result<Offer, SetupError> {
    match mode {
        DataMode::Pasv | DataMode::Epsv => {
            let command = mode.name().to_string();
            let reply = control.command(&command).await?;
            let expected = if mode == DataMode::Pasv { 227 } else { 229 };
            if reply.code != expected {
                return Err(SetupError::Refused { command, reply });
            }
            let text = reply.lines.join(" ");
            let announced = if mode == DataMode::Pasv {
                hostport::parse_pasv_reply(&text).map(SocketAddr::V4)
            } else {
                hostport::parse_epsv_reply(&text).map(|port| SocketAddr::new(control.peer.ip(), port))
            }
            .map_err(|e| SetupError::Malformed { mode, text: text.clone(), reason: e.to_string() })?;
            Ok(Offer::Passive { reply, announced })
        }
        DataMode::Port | DataMode::Eprt => {
            let local_ip = control.local.ip();
            let listener = TcpListener::bind((local_ip, 0)).await.map_err(|e| SetupError::Listen(local_ip, e))?;
            let port = listener.local_addr().map_err(|e| SetupError::Listen(local_ip, e))?.port();
            let announced = SocketAddr::new(announce.unwrap_or(local_ip), port);
            let command = match (mode, announced) {
                (DataMode::Port, SocketAddr::V4(a)) => format!("PORT {}", hostport::format_host_port(a)),
                (DataMode::Port, SocketAddr::V6(a)) => return Err(SetupError::PortNeedsIpv4(IpAddr::V6(*a.ip()))),
                _ => format!("EPRT {}", hostport::format_eprt(announced)),
            };
            let reply = control.command(&command).await?;
            if !(200..300).contains(&reply.code) {
                return Err(SetupError::Refused { command, reply });
            }
            Ok(Offer::Active { reply, listener, announced })
        }
    }
}

/// How connecting to a passive port failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// Connection refused (RST): nothing listens, or a firewall REJECTs.
    Refused,
    /// No answer in time: a firewall DROPs, or the address is unreachable.
    TimedOut,
    /// Some other error (unreachable network, ...).
    Other,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectFailure::Refused => "connection refused",
            ConnectFailure::TimedOut => "no answer (timed out)",
            ConnectFailure::Other => "unreachable",
        })
    }
}

/// Connects to a passive data port.
///
/// # Errors
/// The [`ConnectFailure`] kind.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectFailure> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(ConnectFailure::Refused),
        Ok(Err(_)) => Err(ConnectFailure::Other),
        Err(_) => Err(ConnectFailure::TimedOut),
    }
}

/// Waits for the server to connect to our listener.
///
/// # Errors
/// `None` on timeout or error.
pub async fn accept(listener: &TcpListener, timeout: Duration) -> Option<(TcpStream, SocketAddr)> {
    tokio::time::timeout(timeout, listener.accept()).await.ok()?.ok()
}
