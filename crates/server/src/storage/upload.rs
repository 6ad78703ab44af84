//! Uploads behind the storage boundary: what a backend hands back from
//! `open_write`, and how an upload ends.
//!
//! An upload is written in batches and ends in one of three ways: it is
//! committed (the bytes become the file under its name), aborted (what
//! arrived is kept or dropped, as the upload was opened to do, or always
//! dropped when space or quota ran out), or dropped without either (ABOR,
//! a lost client), which the backend treats as an abort. However it ends,
//! [`Settled`] resolves once the backend has finished with it, so the
//! session replies only after a kept partial file is in place or a dropped
//! one is gone. How a backend makes a replacing upload atomic (a temporary
//! name, a multipart upload) stays inside the backend.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;

use super::StorageError;

/// Work a backend has started: it goes on whether or not the future is
/// polled, and the future says how it ended.
pub type Pending<T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send>>;

/// How an upload opens its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Create, or replace an existing file (STOR).
    Truncate,
    /// Create, or add to the end of an existing file (APPE).
    Append,
    /// Continue at this offset, dropping anything after it (REST + STOR).
    At(u64),
    /// Create a new file; fail if the name exists (STOU).
    CreateNew,
}

/// What an upload is to do, decided by the session before it opens.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// How the target is opened.
    pub mode: WriteMode,
    /// Bits cleared from a new file's mode.
    pub umask: u32,
    /// For [`WriteMode::Truncate`]: readers see the old file or the whole
    /// new one, never a part, and a broken upload leaves the old file as
    /// it was.
    pub atomic: bool,
    /// Keep what arrived when the upload breaks (for a resume). An atomic
    /// upload that would replace a file never keeps a part in its place.
    pub keep_partial: bool,
    /// The bytes are on stable storage before `commit` returns.
    pub sync: bool,
}

/// How an upload that was not committed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It was committed.
    Committed,
    /// What arrived was kept under the target's name.
    Kept,
    /// What arrived was removed (an in-place upload cut back to where it
    /// began).
    Discarded,
}

/// Resolves once an upload has ended and its backend is done with it.
#[derive(Debug)]
pub struct Settled(tokio::sync::oneshot::Receiver<Ending>);

/// The backend's end of [`Settled`].
#[derive(Debug)]
pub struct SettledSender(tokio::sync::oneshot::Sender<Ending>);

impl Settled {
    /// A pair: the backend keeps the sender and reports through it.
    pub fn channel() -> (SettledSender, Settled) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (SettledSender(tx), Settled(rx))
    }

    /// Waits for the upload to end. An upload whose backend went away
    /// without a word is reported as discarded.
    pub async fn wait(self) -> Ending {
        self.0.await.unwrap_or(Ending::Discarded)
    }
}

impl SettledSender {
    /// Reports how the upload ended.
    pub fn send(self, ending: Ending) {
        let _ = self.0.send(ending);
    }
}

/// A file descriptor an upload can be spliced into: the zero-copy path
/// a backend may offer (the local one does, for files not opened to
/// append). Its calls block: they run on a streaming thread.
pub trait SpliceTarget: AsFd + Send {
    /// Writes every byte at the current position.
    ///
    /// # Errors
    /// The write's error.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Prepares for `n` more bytes to be spliced in at the position.
    fn reserve_ahead(&mut self, n: u64);
}

/// An upload in progress; see the module's notes. Dropped without
/// [`Upload::commit`] or [`Upload::abort`], it is aborted by its backend.
pub trait Upload: Send {
    /// Starts writing `batch` at once: the write goes on while the caller
    /// reads the next batch. Resolves to the upload and the emptied buffer.
    fn write(self: Box<Self>, batch: Vec<u8>) -> Pending<(Box<dyn Upload>, Vec<u8>)>;
    /// Writes `last` and makes the upload the file under its name. `whole`
    /// says `last` is every byte of the upload (a backend may store it in
    /// one piece).
    fn commit(self: Box<Self>, last: Vec<u8>, whole: bool) -> Pending<()>;
    /// Ends the upload without completing it: what arrived is kept or
    /// removed as it was opened to do; with `discard` (no space, quota
    /// exceeded) always removed.
    fn abort(self: Box<Self>, discard: bool) -> Pending<()>;
    /// What resolves once the upload has ended (once; `None` after).
    fn settled(&mut self) -> Option<Settled>;
    /// The zero-copy path, when the backend offers one for this upload.
    fn splice_target(&mut self) -> Option<&mut dyn SpliceTarget> {
        None
    }
}
