//! Noticing that a client closed its control connection while the session
//! is not reading it.
//!
//! While a transfer runs, commands that arrive wait in a bounded queue;
//! once it is full the connection is not read (back-pressure). A client
//! that then closes is not seen by reading, so its session (and the data
//! connection it holds open) would wait for the transfer's timeout. The
//! watch looks at the socket through a duplicate descriptor registered on
//! its own: its readiness can be waited for and cleared without touching
//! what the session's reads rely on, it wakes only when something arrives
//! (a segment or the FIN), and poll(2) then says whether the peer hung up,
//! whatever unread bytes are still queued ahead of the FIN.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::stream::ControlReader;

/// A watch on a plain control connection for the client's hang-up: the
/// same socket, registered a second time.
pub(super) struct HangupWatch(TcpStream);

impl HangupWatch {
    /// A watch on `reader`'s socket; `None` for a TLS connection (its
    /// socket is inside the TLS stream) or when no descriptor can be had.
    pub(super) fn new(reader: &ControlReader) -> Option<HangupWatch> {
        let ControlReader::Plain(plain) = reader else { return None };
        let tcp: &TcpStream = plain.as_ref();
        let fd: OwnedFd = tcp.as_fd().try_clone_to_owned().ok()?;
        TcpStream::from_std(std::net::TcpStream::from(fd)).ok().map(HangupWatch)
    }

    /// Resolves once the client has closed its end, or the socket failed.
    pub(super) async fn closed(&self) {
        loop {
            if self.0.ready(Interest::READABLE).await.is_err() || hung_up(&self.0).unwrap_or(true) {
                return;
            }
            // Only data so far: forget this registration's readiness (the
            // session's own is untouched) and wait for the next arrival.
            let _ = self.0.try_io(Interest::READABLE, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
        }
    }
}

/// Whether the peer has shut down its sending side (or the socket has an
/// error), without reading anything.
fn hung_up(fd: &impl AsFd) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::RDHUP)];
    poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 }))?;
    let seen = fds[0].revents();
    Ok(seen.intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR))
}

/// Waits on `watch` when there is one; never resolves otherwise.
pub(super) async fn wait(watch: &Option<HangupWatch>) {
    match watch {
        Some(w) => w.closed().await,
        None => std::future::pending().await,
    }
}
