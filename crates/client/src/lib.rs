//! # ferroftp-client
//!
//! An async FTP client built for diagnosis as much as for transfers:
//!
//! - [`url`]: `ftp://user:password@host:port/path` URLs.
//! - [`control`]: the control channel, with a transcript of every line.
//! - [`data`]: PASV, EPSV, PORT and EPRT set-up, with typed failures.
//! - [`client`]: a logged-in [`Client`] for list, get and put with resume.
//! - [`probe`]: which data-connection modes work against a server, and why
//!   the others fail.

// Only the server's `sched` module may use `unsafe` (the workspace denies
// it; this crate forbids it outright).
#![forbid(unsafe_code)]

pub mod client;
pub mod control;
pub mod data;
pub mod url;

pub use client::{Client, TransferError};
pub use control::{ClientError, Control};
pub use data::DataMode;
pub use url::FtpUrl;
pub mod probe;
pub mod tls;
