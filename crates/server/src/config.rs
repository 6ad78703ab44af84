//! Server configuration: the TOML file as written ([`FileConfig`]) and the
//! validated settings the server runs with ([`Config`]).
//!
//! Flags override file values before validation, so one set of checks
//! covers both. Every validation error names the key at fault.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::parse_umask;
use crate::permissions::{Permission, Permissions};

/// Where ferroftp listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2121";
/// The seed's session timeout: idle control connections close after this.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
/// Most control connections at once, by default.
pub const DEFAULT_MAX_CLIENTS: usize = 2000;
/// Most control connections from one IP, by default.
pub const DEFAULT_MAX_PER_IP: usize = 50;
/// Failed logins within the window that ban an IP, by default.
pub const DEFAULT_BAN_FAILURES: u32 = 10;
/// How long a data connection may take to be opened.
pub const DEFAULT_DATA_TIMEOUT_SECS: u64 = 60;
/// Window in which failed logins count towards a ban, seconds.
pub const DEFAULT_BAN_WINDOW_SECS: u64 = 600;
/// How long a ban lasts, seconds.
pub const DEFAULT_BAN_DURATION_SECS: u64 = 900;
/// Time allowed to log in, seconds.
pub const DEFAULT_LOGIN_TIMEOUT_SECS: u64 = 60;
/// Delay after the first failed login on a connection, milliseconds.
pub const DEFAULT_LOGIN_FAILURE_DELAY_MS: u64 = 1000;
/// Longest delay after a failed login, milliseconds.
pub const MAX_LOGIN_FAILURE_DELAY_MS: u64 = 60_000;
/// Failed logins on one connection before it is closed.
pub const DEFAULT_MAX_LOGIN_FAILURES: u32 = 3;
/// RFC 959's source port for active data connections.
pub const DEFAULT_ACTIVE_SOURCE_PORT: u16 = 20;
/// File-creation mask for new files and directories.
pub const DEFAULT_UMASK: u32 = 0o022;

/// `batch_scheduling` as written: a boolean or a name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum BatchSchedulingSetting {
    /// true: every thread; false: none.
    Bool(bool),
    /// "transfers".
    Name(String),
}

/// Which of the server's threads run under SCHED_BATCH (see
/// [`crate::sched`] and docs/CONFIG.md for what was measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchScheduling {
    /// None: SCHED_OTHER throughout.
    Off,
    /// Threads that stream big transfers, while they do.
    Transfers,
    /// Every thread, set before the runtime starts.
    All,
}

/// Where files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// Directories on the local filesystem: the root, users' homes, mounts.
    Local,
    /// One in-memory tree holding at most `capacity` bytes: the root is
    /// its `/`, users' homes are the subtrees at their home paths.
    Memory {
        /// Most bytes held.
        capacity: u64,
    },
}

/// A config error, naming the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

/// The config file as written. Every field is optional; unknown keys are
/// errors, so a typo cannot silently leave a default in force.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on, `IP:PORT`.
    pub listen: Option<String>,
    /// Anonymous users' root directory.
    pub root: Option<PathBuf>,
    /// Whether anonymous login (USER anonymous / ftp) is allowed.
    pub anonymous: Option<bool>,
    /// Whether anonymous users may upload, make directories, delete, rename.
    pub anonymous_write: Option<bool>,
    /// Mount names (from `[mounts]`) anonymous users may SMNT.
    pub anonymous_mounts: Option<Vec<String>>,
    /// Whether anonymous users may upload (STOR, STOU, APPE).
    pub anonymous_upload: Option<bool>,
    /// Whether anonymous users may make directories.
    pub anonymous_mkdir: Option<bool>,
    /// Anonymous users' umask, octal.
    pub anonymous_umask: Option<String>,
    /// Most anonymous sessions at once.
    pub anonymous_max_sessions: Option<usize>,
    /// Anonymous upload limit per session, bytes per second.
    pub anonymous_upload_rate: Option<u64>,
    /// Anonymous download limit per session, bytes per second.
    pub anonymous_download_rate: Option<u64>,
    /// Upload limit per session for everyone, bytes per second.
    pub upload_rate: Option<u64>,
    /// Download limit per session for everyone, bytes per second.
    pub download_rate: Option<u64>,
    /// The users file (TOML, argon2id hashes).
    pub users: Option<PathBuf>,
    /// Passive port range, `"A-B"`.
    pub passive_ports: Option<String>,
    /// Address or host name announced in 227 replies (for NAT).
    pub public_address: Option<String>,
    /// Accept passive data connections only from the control peer's IP.
    pub passive_peer_check: Option<bool>,
    /// Source port for active (PORT/EPRT) connections; 0 for any.
    pub active_source_port: Option<u16>,
    /// Write STOR uploads under a temporary name, renamed on success.
    pub atomic_uploads: Option<bool>,
    /// Flush an upload (and its rename) to the disk before the 226.
    pub sync_uploads: Option<bool>,
    /// Run the filesystem calls that only read on a thread pool instead of
    /// in place (for network filesystems that can stall); calls that
    /// change files always run there.
    pub storage_thread_pool: Option<bool>,
    /// Where files live: "local" (default) or "memory".
    pub storage: Option<String>,
    /// Most bytes the memory storage holds.
    pub storage_capacity: Option<u64>,
    /// Threads running sessions (1-1024; default: half the cores).
    pub worker_threads: Option<usize>,
    /// Which threads run under SCHED_BATCH: true (all), false (none) or
    /// "transfers" (default: streaming threads while they stream).
    pub batch_scheduling: Option<BatchSchedulingSetting>,
    /// What happens to a broken upload: "keep" (for resume) or "delete".
    pub partial_uploads: Option<String>,
    /// Whether PASV and EPSV are offered.
    pub passive_enabled: Option<bool>,
    /// Whether PORT and EPRT are accepted.
    pub active_enabled: Option<bool>,
    /// Most control connections in all.
    pub max_clients: Option<usize>,
    /// Most control connections from one IP address.
    pub max_clients_per_ip: Option<usize>,
    /// Seconds a client has to log in.
    pub login_timeout: Option<u64>,
    /// Milliseconds of delay after the first failed login; it grows with
    /// each further failure on the connection.
    pub login_failure_delay_ms: Option<u64>,
    /// Failed logins after which the connection is closed.
    pub max_login_failures: Option<u32>,
    /// Failed logins from one IP within `ban_window` that ban it (0: never).
    pub ban_failures: Option<u32>,
    /// Seconds within which failed logins count toward a ban.
    pub ban_window: Option<u64>,
    /// Seconds a ban lasts.
    pub ban_duration: Option<u64>,
    /// Idle control-connection timeout, seconds.
    pub idle_timeout: Option<u64>,
    /// Data-connection open timeout, seconds.
    pub data_timeout: Option<u64>,
    /// Named mounts for SMNT: name = directory.
    pub mounts: Option<BTreeMap<String, PathBuf>>,
    /// Virtual hosts for HOST (RFC 7151): name = its own root and users.
    pub hosts: Option<BTreeMap<String, HostFileConfig>>,
    /// FTPS certificate chain, PEM.
    pub tls_cert: Option<PathBuf>,
    /// FTPS private key, PEM.
    pub tls_key: Option<PathBuf>,
    /// Data connections must resume the control connection's TLS session.
    pub tls_require_session_reuse: Option<bool>,
    /// Anonymous users must use TLS on the control connection (534).
    pub tls_required_control_anonymous: Option<bool>,
    /// Users must use TLS on the control connection (534).
    pub tls_required_control_users: Option<bool>,
    /// Anonymous users' data connections must be TLS, PROT P (521).
    pub tls_required_data_anonymous: Option<bool>,
    /// Users' data connections must be TLS, PROT P (521).
    pub tls_required_data_users: Option<bool>,
    /// Address of the implicit-FTPS listener (TLS from the first byte; 990 by convention).
    pub implicit_tls_listen: Option<String>,
    /// Whether CCC may end TLS on the control connection.
    pub tls_allow_ccc: Option<bool>,
}

/// Validated FTPS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// Data connections must resume the control connection's session.
    pub require_session_reuse: bool,
    /// Who must use TLS on the control connection.
    pub required_control: TlsRequired,
    /// Who must use TLS on data connections.
    pub required_data: TlsRequired,
    /// The implicit-FTPS listener, if any.
    pub implicit_listen: Option<SocketAddr>,
    /// CCC may end TLS on the control connection.
    pub allow_ccc: bool,
}

/// Which logins a TLS requirement applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsRequired {
    /// Anonymous logins.
    pub anonymous: bool,
    /// Virtual users.
    pub users: bool,
}

impl TlsRequired {
    /// Whether it applies to this login.
    pub fn applies(self, anonymous: bool) -> bool {
        if anonymous {
            self.anonymous
        } else {
            self.users
        }
    }
}

/// One `[hosts.NAME]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFileConfig {
    /// The host's anonymous root.
    pub root: Option<PathBuf>,
    /// The host's users file.
    pub users: Option<PathBuf>,
    /// Whether anonymous login is allowed on this host (default: as the server).
    pub anonymous: Option<bool>,
}

/// A validated virtual host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The anonymous root, when anonymous login is allowed.
    pub root: Option<PathBuf>,
    /// The users file, if any.
    pub users: Option<PathBuf>,
}

impl FileConfig {
    /// Reads and parses a config file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] (naming the key).
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
    }
}

/// Anonymous access settings.
#[derive(Debug, Clone)]
pub struct AnonymousConfig {
    /// Whether anonymous login is allowed.
    pub enabled: bool,
    /// The anonymous root.
    pub root: PathBuf,
    /// Whether anonymous users may change files.
    pub write: bool,
    /// Mounts anonymous users may SMNT.
    pub mounts: Vec<String>,
    /// What anonymous users may do.
    pub permissions: Permissions,
    /// Anonymous users' umask.
    pub umask: u32,
    /// Most anonymous sessions at once.
    pub max_sessions: Option<usize>,
    /// Upload limit, bytes per second.
    pub upload_rate: Option<u64>,
    /// Download limit, bytes per second.
    pub download_rate: Option<u64>,
}

/// What happens to an upload that breaks off (network, ABOR, QUIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialUploads {
    /// Keep what arrived, so the client can resume with REST. With atomic
    /// uploads the partial file takes the target's name only if there was
    /// no file of that name: a good file is never replaced by a partial one.
    Keep,
    /// Delete what arrived.
    Delete,
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listening address.
    pub listen: SocketAddr,
    /// Anonymous access.
    pub anonymous: AnonymousConfig,
    /// Users file, if any.
    pub users_file: Option<PathBuf>,
    /// Upload limit per session unless the user has one, bytes per second.
    pub upload_rate: Option<u64>,
    /// Download limit per session unless the user has one, bytes per second.
    pub download_rate: Option<u64>,
    /// Passive ports; `None` lets the OS choose.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// Address announced in 227 (and checked to be IPv4 at bind time).
    pub public_address: Option<String>,
    /// Refuse passive data connections from other IPs than the control peer.
    pub passive_peer_check: bool,
    /// Source port for active connections (20 by RFC 959); 0 for any.
    pub active_source_port: u16,
    /// STOR writes a temporary file and renames it over the target.
    pub atomic_uploads: bool,
    /// An upload's data (and, for an atomic one, the rename) reach the
    /// disk before the 226.
    pub sync_uploads: bool,
    /// Read-only filesystem calls go to a thread pool rather than running
    /// in place.
    pub storage_thread_pool: bool,
    /// Where files live.
    pub storage: StorageKind,
    /// Threads running sessions (default: [`default_worker_threads`]).
    pub worker_threads: usize,
    /// Which threads run under SCHED_BATCH (see [`crate::sched`]); for
    /// whoever starts the runtime.
    pub batch_scheduling: BatchScheduling,
    /// What happens to a broken upload.
    pub partial_uploads: PartialUploads,
    /// PASV and EPSV offered.
    pub passive_enabled: bool,
    /// PORT and EPRT accepted.
    pub active_enabled: bool,
    /// Connection limits and bans.
    pub limits: crate::limits::LimitSettings,
    /// Time allowed to log in.
    pub login_timeout: Duration,
    /// Delay after the first failed login on a connection (then 2x, 3x...).
    pub login_failure_delay: Duration,
    /// Failed logins after which the connection is closed (421).
    pub max_login_failures: u32,
    /// Idle timeout of the control connection.
    pub idle_timeout: Duration,
    /// Time allowed to open a data connection.
    pub data_timeout: Duration,
    /// Named mounts for SMNT.
    pub mounts: BTreeMap<String, PathBuf>,
    /// Virtual hosts by lower-case name.
    pub hosts: BTreeMap<String, HostConfig>,
    /// FTPS, if a certificate is configured.
    pub tls: Option<TlsConfig>,
}

impl Config {
    /// Validates a file config (with flags already applied).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn from_file(file: FileConfig) -> Result<Config, ConfigError> {
        let listen_text = file.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid("listen", format!("{listen_text:?} is not IP:PORT (e.g. 127.0.0.1:2121 or [::1]:2121)"))
        })?;
        let storage = match (file.storage.as_deref(), file.storage_capacity) {
            (None | Some("local"), None) => StorageKind::Local,
            (None | Some("local"), Some(_)) => {
                return Err(invalid("storage_capacity", "applies only to storage = \"memory\""))
            }
            (Some("memory"), capacity) => {
                StorageKind::Memory { capacity: capacity.unwrap_or(crate::storage::memory::DEFAULT_CAPACITY) }
            }
            (Some(other), _) => return Err(invalid("storage", format!("{other:?} is not \"local\" or \"memory\""))),
        };
        let root = file.root.unwrap_or_else(|| PathBuf::from("."));
        let anonymous_enabled = file.anonymous.unwrap_or(true);
        if anonymous_enabled && storage == StorageKind::Local && !root.is_dir() {
            return Err(invalid("root", format!("{} is not a directory", root.display())));
        }
        let passive_ports = file.passive_ports.as_deref().map(parse_port_range).transpose()?;
        let idle = file.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS);
        if idle == 0 || idle > 86_400 {
            return Err(invalid("idle_timeout", "must be 1-86400 seconds"));
        }
        let data = file.data_timeout.unwrap_or(DEFAULT_DATA_TIMEOUT_SECS);
        if data == 0 || data > 3600 {
            return Err(invalid("data_timeout", "must be 1-3600 seconds"));
        }
        let mounts = file.mounts.unwrap_or_default();
        for (name, dir) in &mounts {
            if name.is_empty() || name.contains(['/', ' ']) {
                return Err(invalid("mounts", format!("mount name {name:?} must be a plain word")));
            }
            if storage == StorageKind::Local && !dir.is_dir() {
                return Err(invalid("mounts", format!("mount {name:?}: {} is not a directory", dir.display())));
            }
        }
        if file.passive_enabled == Some(false) && file.active_enabled == Some(false) {
            return Err(invalid(
                "active_enabled",
                "passive_enabled and active_enabled cannot both be false: no transfer could work",
            ));
        }
        let anonymous_mounts = file.anonymous_mounts.unwrap_or_default();
        if let Some(unknown) = anonymous_mounts.iter().find(|m| !mounts.contains_key(*m)) {
            return Err(invalid("anonymous_mounts", format!("no mount named {unknown:?} in [mounts]")));
        }
        let mut hosts = BTreeMap::new();
        for (name, host) in file.hosts.clone().unwrap_or_default() {
            let anonymous = host.anonymous.unwrap_or(anonymous_enabled);
            let root = match (anonymous, host.root) {
                (true, Some(root)) if storage != StorageKind::Local || root.is_dir() => Some(root),
                (true, Some(root)) => {
                    return Err(invalid("hosts", format!("host {name:?}: root {} is not a directory", root.display())))
                }
                (true, None) => return Err(invalid("hosts", format!("host {name:?}: anonymous login needs a root"))),
                (false, _) => None,
            };
            if let Some(users) = &host.users {
                if !users.is_file() {
                    return Err(invalid("hosts", format!("host {name:?}: users {} is not a file", users.display())));
                }
            }
            hosts.insert(name.to_ascii_lowercase(), HostConfig { root, users: host.users });
        }
        if let Some(users) = &file.users {
            if !users.is_file() {
                return Err(invalid("users", format!("{} is not a file", users.display())));
            }
        }
        if let Some(addr) = &file.public_address {
            if addr.trim().is_empty() {
                return Err(invalid("public_address", "must not be empty"));
            }
        }
        Ok(Config {
            listen,
            anonymous: AnonymousConfig {
                enabled: anonymous_enabled,
                root,
                write: file.anonymous_write.unwrap_or(false),
                mounts: anonymous_mounts,
                permissions: if file.anonymous_write.unwrap_or(false) {
                    Permissions::ALL
                } else {
                    let mut p = Permissions::READ_ONLY;
                    if file.anonymous_upload.unwrap_or(false) {
                        p = p.with(Permissions::of(&[Permission::Write, Permission::Append]));
                    }
                    if file.anonymous_mkdir.unwrap_or(false) {
                        p = p.with(Permissions::of(&[Permission::Mkdir]));
                    }
                    p
                },
                umask: match &file.anonymous_umask {
                    Some(u) => parse_umask(u).map_err(|e| invalid("anonymous_umask", e))?,
                    None => DEFAULT_UMASK,
                },
                max_sessions: file.anonymous_max_sessions.map(|n| positive("anonymous_max_sessions", n)).transpose()?,
                upload_rate: file.anonymous_upload_rate.filter(|r| *r > 0),
                download_rate: file.anonymous_download_rate.filter(|r| *r > 0),
            },
            upload_rate: file.upload_rate.filter(|r| *r > 0),
            download_rate: file.download_rate.filter(|r| *r > 0),
            users_file: file.users,
            passive_ports,
            public_address: file.public_address,
            passive_peer_check: file.passive_peer_check.unwrap_or(true),
            active_source_port: file.active_source_port.unwrap_or(DEFAULT_ACTIVE_SOURCE_PORT),
            atomic_uploads: file.atomic_uploads.unwrap_or(true),
            sync_uploads: file.sync_uploads.unwrap_or(false),
            storage_thread_pool: file.storage_thread_pool.unwrap_or(false),
            storage,
            worker_threads: match file.worker_threads {
                Some(n) if !(1..=1024).contains(&n) => return Err(invalid("worker_threads", "must be 1-1024")),
                n => n.unwrap_or_else(default_worker_threads),
            },
            batch_scheduling: match file.batch_scheduling {
                None => BatchScheduling::Transfers,
                Some(BatchSchedulingSetting::Bool(true)) => BatchScheduling::All,
                Some(BatchSchedulingSetting::Bool(false)) => BatchScheduling::Off,
                Some(BatchSchedulingSetting::Name(name)) if name == "transfers" => BatchScheduling::Transfers,
                Some(BatchSchedulingSetting::Name(other)) => {
                    return Err(invalid("batch_scheduling", format!("{other:?} is not true, false or \"transfers\"")))
                }
            },
            partial_uploads: match file.partial_uploads.as_deref() {
                None | Some("keep") => PartialUploads::Keep,
                Some("delete") => PartialUploads::Delete,
                Some(other) => {
                    return Err(invalid("partial_uploads", format!("{other:?} is not \"keep\" or \"delete\"")))
                }
            },
            passive_enabled: file.passive_enabled.unwrap_or(true),
            active_enabled: file.active_enabled.unwrap_or(true),
            limits: crate::limits::LimitSettings {
                max_clients: positive("max_clients", file.max_clients.unwrap_or(DEFAULT_MAX_CLIENTS))?,
                max_clients_per_ip: positive(
                    "max_clients_per_ip",
                    file.max_clients_per_ip.unwrap_or(DEFAULT_MAX_PER_IP),
                )?,
                ban_failures: file.ban_failures.unwrap_or(DEFAULT_BAN_FAILURES),
                ban_window: Duration::from_secs(positive(
                    "ban_window",
                    file.ban_window.unwrap_or(DEFAULT_BAN_WINDOW_SECS),
                )?),
                ban_duration: Duration::from_secs(positive(
                    "ban_duration",
                    file.ban_duration.unwrap_or(DEFAULT_BAN_DURATION_SECS),
                )?),
            },
            login_timeout: Duration::from_secs(positive(
                "login_timeout",
                file.login_timeout.unwrap_or(DEFAULT_LOGIN_TIMEOUT_SECS),
            )?),
            login_failure_delay: Duration::from_millis(
                file.login_failure_delay_ms.unwrap_or(DEFAULT_LOGIN_FAILURE_DELAY_MS).min(MAX_LOGIN_FAILURE_DELAY_MS),
            ),
            max_login_failures: positive(
                "max_login_failures",
                file.max_login_failures.unwrap_or(DEFAULT_MAX_LOGIN_FAILURES),
            )?,
            idle_timeout: Duration::from_secs(idle),
            data_timeout: Duration::from_secs(data),
            mounts,
            hosts,
            tls: match (file.tls_cert, file.tls_key) {
                (Some(cert), Some(key)) => Some(TlsConfig {
                    cert,
                    key,
                    require_session_reuse: file.tls_require_session_reuse.unwrap_or(true),
                    required_control: TlsRequired {
                        anonymous: file.tls_required_control_anonymous.unwrap_or(false),
                        users: file.tls_required_control_users.unwrap_or(false),
                    },
                    required_data: TlsRequired {
                        anonymous: file.tls_required_data_anonymous.unwrap_or(false),
                        users: file.tls_required_data_users.unwrap_or(false),
                    },
                    implicit_listen: file
                        .implicit_tls_listen
                        .as_deref()
                        .map(|a| a.parse().map_err(|_| invalid("implicit_tls_listen", format!("{a:?} is not IP:PORT"))))
                        .transpose()?,
                    allow_ccc: file.tls_allow_ccc.unwrap_or(true),
                }),
                (None, None) if file.implicit_tls_listen.is_some() => {
                    return Err(invalid("implicit_tls_listen", "implicit FTPS needs tls_cert and tls_key"))
                }
                (None, None) => None,
                (Some(_), None) => return Err(invalid("tls_key", "tls_cert is set but tls_key is not")),
                (None, Some(_)) => return Err(invalid("tls_cert", "tls_key is set but tls_cert is not")),
            },
        })
    }
}

fn positive<T: PartialOrd + Default + Copy>(key: &'static str, value: T) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(invalid(key, "must be greater than 0"))
    }
}

/// Session threads when the config names none: half the cores, at least
/// one. Sessions mostly wait on sockets; the kernel's network work, the
/// file pool and the big-transfer threads need the other half, and fewer
/// session threads wake one another less (docs/CONFIG.md has the figures).
#[must_use]
pub fn default_worker_threads() -> usize {
    (cores() / 2).max(1)
}

/// Cores this process may use (its CPU affinity and cgroup limit), 2 when
/// the system cannot tell: what the thread counts are sized by.
#[must_use]
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Parses `"A-B"` into a port range, 1024 <= A <= B.
///
/// # Errors
/// [`ConfigError::Invalid`] for key `passive_ports`.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, ConfigError> {
    let bad = || invalid("passive_ports", format!("{text:?} is not a range A-B of ports 1024-65535"));
    let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a < 1024 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sensible() {
        let c = Config::from_file(FileConfig::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.anonymous.enabled && !c.anonymous.write);
        assert_eq!(c.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.batch_scheduling, BatchScheduling::Transfers, "SCHED_BATCH for streaming threads by default");
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(c.worker_threads, (cores / 2).max(1), "half the cores, at least one");
        let named = Config::from_file(FileConfig { worker_threads: Some(7), ..Default::default() }).unwrap();
        assert_eq!(named.worker_threads, 7);
    }

    #[test]
    fn errors_name_the_key() {
        let e = toml::from_str::<FileConfig>("listn = \"x\"").unwrap_err().to_string();
        assert!(e.contains("listn"), "{e}");
        let cases = [
            (FileConfig { listen: Some("nope".into()), ..Default::default() }, "listen"),
            (FileConfig { passive_ports: Some("2000-1000".into()), ..Default::default() }, "passive_ports"),
            (FileConfig { idle_timeout: Some(0), ..Default::default() }, "idle_timeout"),
            (FileConfig { worker_threads: Some(0), ..Default::default() }, "worker_threads"),
            (FileConfig { worker_threads: Some(5000), ..Default::default() }, "worker_threads"),
            (FileConfig { root: Some("/nonexistent/dir".into()), ..Default::default() }, "root"),
            (FileConfig { tls_cert: Some("c.pem".into()), ..Default::default() }, "tls_key"),
            (FileConfig { tls_key: Some("k.pem".into()), ..Default::default() }, "tls_cert"),
        ];
        for (file, key) in cases {
            let e = Config::from_file(file).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("50000-50100").unwrap(), 50000..=50100);
        assert!(parse_port_range("80-90").is_err());
        assert!(parse_port_range("5000").is_err());
    }
}
