//! # ferroftp-proto
//!
//! The FTP wire protocol with no I/O, so it can be unit-tested and fuzzed:
//!
//! - [`line`]: Telnet-aware, bounded line decoding of the control connection.
//! - [`command`]: [`Command`] and its parser; every failure is a typed
//!   [`ParseError`] that names its reply code.
//! - [`reply`]: [`Reply`] and the named reply [`code`]s.
//! - [`hostport`]: PORT/PASV and EPRT/EPSV address encodings.
//! - [`listing`]: `ls -l` lines and timestamps.
//! - [`ascii`]: TYPE A line-end conversion.

// Only the server's `sched` module may use `unsafe` (the workspace denies
// it; this crate forbids it outright).
#![forbid(unsafe_code)]

pub mod ascii;
pub mod command;
pub mod hostport;
pub mod line;
pub mod listing;
pub mod reply;

pub use command::{AuthMechanism, Command, OptsArg, ParseError, Password, ProtLevel, SiteCommand, TransferType};
pub use line::{LineDecoder, LineEvent};
pub use reply::{code, Reply};
