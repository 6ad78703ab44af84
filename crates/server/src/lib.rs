//! # ferroftp-server
//!
//! The FTP server. [`Server::bind`] takes a validated [`Config`], and
//! [`Server::run`] serves until a shutdown future completes, so tests start
//! a real server in-process on `127.0.0.1:0`.
//!
//! - [`config`]: the TOML file and validated settings.
//! - [`accounts`]: the authenticator trait and the accounts it returns.
//! - [`auth`]: the users file and argon2id checks.
//! - [`events`]: typed events of what sessions do, for observers.
//! - [`storage`]: the storage trait, its capabilities and uploads; the
//!   confined local backend and the in-memory one.
//! - [`tls`]: FTPS certificates and per-connection TLS configurations.
//! - [`path`]: virtual paths that never climb above the root.
//! - [`permissions`]: what a user may do.
//! - [`quota`]: bytes and files a user's home may hold.
//! - [`hashing`]: the HASH algorithms.
//! - [`limits`]: connection limits and bans after failed logins.
//! - [`transfer`]: the data channel: passive and active data connections
//!   ([`transfer::connection`]) and copying between them and storage.
//! - [`sched`]: the scheduling policy the server runs under.
//! - `session`: one control connection's state machine and handlers.
//! - `context`: what every session of a server shares.
//! - `server`: the listener and admission.

pub mod accounts;
pub mod auth;
pub mod config;
mod context;
pub mod descriptors;
pub mod events;
pub mod hashing;
pub mod limits;
pub mod path;
pub mod permissions;
pub mod quota;
pub mod sched;
mod server;
mod session;
pub mod storage;
pub mod tls;
pub mod transfer;

pub use config::{Config, ConfigError, FileConfig};
pub use server::{Server, ServerError};

/// The version shown in the greeting and in STAT.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
