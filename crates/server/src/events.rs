//! Events: what sessions do, as typed values handed to the observers
//! registered on the server. Log lines are one observer ([`LogLines`]);
//! transfer logs, metrics and hooks are others.
//!
//! Observers are called on the session's thread, in the order things
//! happen, and must not block: one that writes files or talks to the
//! network queues the event and returns. An event is built only when some
//! observer wants its kind, so a server nobody watches pays nothing for
//! it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What kind of event; observers choose the kinds they want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`Event::Login`].
    Login,
    /// [`Event::Logout`].
    Logout,
    /// [`Event::Transfer`].
    Transfer,
    /// [`Event::File`].
    File,
    /// [`Event::Ban`].
    Ban,
    /// [`Event::DataFailed`].
    DataFailed,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [Kind::Login, Kind::Logout, Kind::Transfer, Kind::File, Kind::Ban, Kind::DataFailed];

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Something a session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A login attempt, accepted or refused.
    Login {
        /// The client.
        peer: SocketAddr,
        /// The name given (`ftp` for any anonymous name once accepted).
        user: String,
        /// Refused, and why; `None` when accepted.
        refused: Option<LoginRefused>,
        /// The control connection was protected by TLS.
        tls: bool,
    },
    /// A logged-in session ended (QUIT, REIN, USER again, a lost client,
    /// a timeout, shutdown).
    Logout {
        /// The client.
        peer: SocketAddr,
        /// Who was logged in.
        user: String,
        /// How long the login lasted.
        duration: Duration,
    },
    /// A transfer ended, completed or not.
    Transfer(Box<Transfer>),
    /// A change to a file or directory.
    File {
        /// The client.
        peer: SocketAddr,
        /// Who made it.
        user: String,
        /// What changed.
        op: FileOp,
    },
    /// An address was banned after failed logins.
    Ban {
        /// The address.
        address: IpAddr,
        /// For how long.
        duration: Duration,
    },
    /// A data connection could not be opened.
    DataFailed {
        /// The client.
        peer: SocketAddr,
        /// Who was logged in.
        user: String,
        /// Why, in the causes `probe` names.
        cause: DataFailure,
        /// The failure in words.
        detail: String,
    },
}

impl Event {
    /// This event's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Event::Login { .. } => Kind::Login,
            Event::Logout { .. } => Kind::Logout,
            Event::Transfer(_) => Kind::Transfer,
            Event::File { .. } => Kind::File,
            Event::Ban { .. } => Kind::Ban,
            Event::DataFailed { .. } => Kind::DataFailed,
        }
    }
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// No such user, a wrong password, or anonymous login off.
    Credentials,
    /// The user has `max_sessions` sessions already.
    TooManySessions,
    /// The user's home could not be opened (the server's trouble).
    HomeUnavailable,
}

impl LoginRefused {
    /// A stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginRefused::Credentials => "credentials",
            LoginRefused::TooManySessions => "too_many_sessions",
            LoginRefused::HomeUnavailable => "home_unavailable",
        }
    }
}

/// Which way a transfer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A file to the client (RETR).
    Download,
    /// A file from the client (STOR, APPE, STOU).
    Upload,
    /// A listing to the client (LIST, NLST, MLSD).
    Listing,
}

/// How the data connection was set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// PASV.
    Passive,
    /// EPSV.
    ExtendedPassive,
    /// PORT.
    Active,
    /// EPRT.
    ExtendedActive,
}

impl DataMode {
    /// The command that set it up.
    pub fn as_str(self) -> &'static str {
        match self {
            DataMode::Passive => "PASV",
            DataMode::ExtendedPassive => "EPSV",
            DataMode::Active => "PORT",
            DataMode::ExtendedActive => "EPRT",
        }
    }
}

/// A transfer that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The client.
    pub peer: SocketAddr,
    /// Who was logged in.
    pub user: String,
    /// Which way.
    pub direction: Direction,
    /// The file or directory, as the client sees it.
    pub path: String,
    /// Bytes moved on the wire.
    pub bytes: u64,
    /// From the 150 to the end.
    pub duration: Duration,
    /// `None` when it completed; else the failure's reply code and text.
    pub failure: Option<(u16, String)>,
    /// How the data connection was set up.
    pub mode: DataMode,
    /// The data connection was protected by TLS.
    pub tls: bool,
}

/// A change to a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// DELE.
    Delete(String),
    /// RNFR/RNTO.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// MKD.
    Mkdir(String),
    /// RMD.
    Rmdir(String),
    /// SITE CHMOD.
    Chmod {
        /// The entry.
        path: String,
        /// The mode set.
        mode: u32,
    },
    /// MFMT.
    SetMtime {
        /// The file.
        path: String,
        /// Seconds since the epoch.
        secs: i64,
    },
}

/// Why a data connection could not be opened; the same causes `probe`
/// reports from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFailure {
    /// No port of the passive range was free.
    NoPassivePort,
    /// The client did not connect to the passive port in time (a firewall
    /// or NAT on the way, or a wrong announced address).
    PassivePortTimeout,
    /// We could not connect back to the client (active mode).
    NoConnectBack,
    /// The TLS handshake failed or did not resume the control session.
    TlsFailed,
    /// Anything else (a listen or accept that failed).
    Other,
}

impl DataFailure {
    /// A stable name for logs and metrics (as `probe` names them).
    pub fn as_str(self) -> &'static str {
        match self {
            DataFailure::NoPassivePort => "no_passive_port",
            DataFailure::PassivePortTimeout => "passive_port_timeout",
            DataFailure::NoConnectBack => "no_connect_back",
            DataFailure::TlsFailed => "tls_failed",
            DataFailure::Other => "other",
        }
    }
}

/// Something that watches the server; see the module's notes.
pub trait Observer: Send + Sync {
    /// Whether this observer wants events of `kind` (asked once, when it
    /// is registered).
    fn wants(&self, kind: Kind) -> bool {
        let _ = kind;
        true
    }
    /// Takes one event; must not block.
    fn observe(&self, event: &Event);
}

/// The observers registered on a server.
#[derive(Default)]
pub struct Observers {
    each: Vec<(u8, Arc<dyn Observer>)>,
    /// The kinds any observer wants, one bit each.
    wanted: u8,
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observers").field("count", &self.each.len()).finish()
    }
}

impl Observers {
    /// Adds an observer.
    pub fn add(&mut self, observer: Arc<dyn Observer>) {
        let wants = Kind::ALL.iter().filter(|k| observer.wants(**k)).fold(0, |bits, k| bits | k.bit());
        self.wanted |= wants;
        self.each.push((wants, observer));
    }

    /// Whether anyone wants events of `kind`.
    pub fn want(&self, kind: Kind) -> bool {
        self.wanted & kind.bit() != 0
    }

    /// Builds the event with `make` if anyone wants `kind`, and hands it
    /// to each observer that does.
    pub fn emit(&self, kind: Kind, make: impl FnOnce() -> Event) {
        if !self.want(kind) {
            return;
        }
        let event = make();
        for (wants, observer) in &self.each {
            if wants & kind.bit() != 0 {
                observer.observe(&event);
            }
        }
    }
}

/// The log lines: logins, refusals and bans at info and warn; the rest at
/// debug, and built only when debug is on.
#[derive(Debug, Default)]
pub struct LogLines;

impl Observer for LogLines {
    fn wants(&self, kind: Kind) -> bool {
        matches!(kind, Kind::Login | Kind::Ban | Kind::DataFailed) || tracing::enabled!(tracing::Level::DEBUG)
    }

    fn observe(&self, event: &Event) {
        match event {
            Event::Login { peer, user, refused: None, .. } => tracing::info!(%peer, %user, "login"),
            Event::Login { peer, user, refused: Some(why), .. } => {
                tracing::info!(%peer, %user, cause = why.as_str(), "login refused")
            }
            Event::Ban { address, duration } => {
                tracing::warn!(peer = %address, seconds = duration.as_secs(), "address banned after failed logins")
            }
            Event::DataFailed { peer, user, cause, detail } => {
                tracing::info!(%peer, %user, cause = cause.as_str(), %detail, "data connection failed")
            }
            Event::Logout { peer, user, duration } => {
                tracing::debug!(%peer, %user, seconds = duration.as_secs(), "logout")
            }
            Event::Transfer(t) => tracing::debug!(
                peer = %t.peer,
                user = %t.user,
                direction = ?t.direction,
                path = %t.path,
                bytes = t.bytes,
                ms = t.duration.as_millis() as u64,
                mode = t.mode.as_str(),
                tls = t.tls,
                failure = ?t.failure,
                "transfer"
            ),
            Event::File { peer, user, op } => tracing::debug!(%peer, %user, ?op, "file changed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Recorder(Mutex<Vec<Event>>, Kind);

    impl Observer for Recorder {
        fn wants(&self, kind: Kind) -> bool {
            kind == self.1
        }
        fn observe(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn events_are_built_only_for_kinds_someone_wants() {
        let mut observers = Observers::default();
        let bans = Arc::new(Recorder(Mutex::new(Vec::new()), Kind::Ban));
        observers.add(bans.clone());
        let ban = Event::Ban { address: [127, 0, 0, 2].into(), duration: Duration::from_secs(9) };
        observers.emit(Kind::Ban, || ban.clone());
        observers.emit(Kind::Logout, || unreachable!("nobody wants logouts"));
        assert_eq!(*bans.0.lock().unwrap(), vec![ban]);
    }
}
