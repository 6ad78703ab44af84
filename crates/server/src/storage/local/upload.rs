//! The local backend's uploads: a [`Writer`] and what ending the upload
//! does to the directory (rename into place, keep, cut back, remove).
//!
//! Every call that touches the disk runs on the blocking pool: the
//! transfer starts a batch's write there and reads the next batch
//! meanwhile. An upload dropped without an ending (ABOR, a lost client)
//! is aborted on the blocking pool too, and [`Settled`] tells the session
//! when that is done.
//!
//! An atomic upload that replaces a file keeps the old one open (O_PATH)
//! across its rename and hands it to [`super::release`], so the kernel
//! frees it beside the 226 reply instead of before it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptionsExt};

use super::writer::Writer;
use crate::storage::{Ending, Pending, Settled, SettledSender, SpliceTarget, StorageError, Upload};

/// Where an upload's bytes go and what its end does with them.
#[derive(Debug)]
pub(super) enum Plan {
    /// Written under a temporary name beside the target and renamed over
    /// it when complete.
    Atomic {
        /// The temporary file (locked while the writer is open).
        temp: PathBuf,
        /// The final name.
        target: PathBuf,
        /// The final name held a file when the upload began.
        replaces: bool,
    },
    /// Written at the target itself.
    InPlace {
        /// The file.
        target: PathBuf,
        /// Its length before the upload, to cut it back to when what
        /// arrived must go; `None` when the upload created it.
        original_len: Option<u64>,
    },
}

/// An upload that has not ended yet.
#[derive(Debug)]
struct Open {
    writer: Writer,
    root: Arc<Dir>,
    plan: Plan,
    /// Keep what arrived if the upload breaks.
    keep_partial: bool,
    /// Flush before the commit returns (`sync_uploads`).
    sync: bool,
    /// A write ran out of space or quota: nothing may be kept.
    out_of_space: bool,
    settled: SettledSender,
}

/// A local upload; see the module's notes.
#[derive(Debug)]
pub(super) struct LocalUpload {
    /// `None` once it has ended.
    open: Option<Open>,
    /// Until [`Upload::settled`] hands it out.
    settled: Option<Settled>,
}

impl LocalUpload {
    pub(super) fn new(writer: Writer, root: Arc<Dir>, plan: Plan, keep_partial: bool, sync: bool) -> LocalUpload {
        let (tx, rx) = Settled::channel();
        let open = Open { writer, root, plan, keep_partial, sync, out_of_space: false, settled: tx };
        LocalUpload { open: Some(open), settled: Some(rx) }
    }

    fn open(&mut self) -> io::Result<&mut Open> {
        self.open.as_mut().ok_or_else(|| io::Error::other("the upload has ended"))
    }
}

/// Whether a failed write means the disk or the quota is full.
fn out_of_space(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Runs `job` on the blocking pool, or here outside a runtime.
fn on_pool(job: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(job)),
        Err(_) => job(),
    }
}

/// A blocking job's result as a storage result.
fn pending<T: Send + 'static>(job: impl FnOnce() -> Result<T, StorageError> + Send + 'static) -> Pending<T> {
    let handle = tokio::task::spawn_blocking(job);
    Box::pin(async move {
        match handle.await {
            Ok(result) => result,
            Err(e) => Err(StorageError::Io(io::Error::other(e))),
        }
    })
}

impl Open {
    /// Writes `last`, then renames an atomic upload into place.
    fn try_commit(&mut self, last: &[u8], whole: bool) -> io::Result<()> {
        if whole && !last.is_empty() {
            self.writer.write_all_allocated(last)?;
        } else {
            self.writer.write_all(last)?;
        }
        self.writer.finish(self.sync)?;
        let Plan::Atomic { temp, target, replaces } = &self.plan else { return Ok(()) };
        // Whatever holds the final name now (it may have changed since the
        // upload began); gone or unopenable, it is freed in the rename.
        let replaced = replaces
            .then(|| {
                let mut path_only = cap_std::fs::OpenOptions::new();
                path_only
                    .read(true)
                    .custom_flags((rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW).bits() as i32);
                self.root.open_with(target, &path_only).ok()
            })
            .flatten();
        // The new name lives in the directory, opened (to read: cap-std
        // opens directories O_PATH, which fsync refuses) before the rename.
        // One that cannot be read (an upload-only drop box) is not flushed:
        // the file's own data is.
        let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let directory = if self.sync { self.root.open(parent).ok() } else { None };
        self.root.rename(temp, &self.root, target)?;
        if let Some(replaced) = replaced {
            super::release::release_later(replaced);
        }
        // The upload has landed: a failed flush of the directory is no
        // reason to report it failed.
        if let Some(Err(e)) = directory.map(|d| d.sync_all()) {
            tracing::warn!(path = %target.display(), error = %e, "could not flush the directory of an upload");
        }
        Ok(())
    }

    /// Commits; a failed commit is aborted (removing everything when the
    /// disk or quota is full).
    fn commit(mut self, last: &[u8], whole: bool) -> io::Result<()> {
        match self.try_commit(last, whole) {
            Ok(()) => {
                self.settled.send(Ending::Committed);
                Ok(())
            }
            Err(e) => {
                self.out_of_space |= out_of_space(&e);
                self.abort(false);
                Err(e)
            }
        }
    }

    /// Keeps or removes what arrived; see [`Upload::abort`].
    fn abort(self, discard: bool) {
        let Open { mut writer, root, plan, keep_partial, out_of_space, settled, .. } = self;
        let keep = keep_partial && !discard && !out_of_space;
        // Reserved space goes back before anything is kept; the file is
        // closed (and its lock let go) before its name moves or goes.
        let _ = writer.finish(false);
        drop(writer);
        let ending = match plan {
            Plan::Atomic { temp, target, replaces } => {
                if keep && !replaces && root.rename(&temp, &root, &target).is_ok() {
                    Ending::Kept
                } else {
                    report(root.remove_file(&temp), &temp);
                    Ending::Discarded
                }
            }
            Plan::InPlace { .. } if keep => Ending::Kept,
            Plan::InPlace { target, original_len: Some(len) } => {
                let cut =
                    root.open_with(&target, cap_std::fs::OpenOptions::new().write(true)).and_then(|f| f.set_len(len));
                report(cut, &target);
                Ending::Discarded
            }
            Plan::InPlace { target, original_len: None } => {
                report(root.remove_file(&target), &target);
                Ending::Discarded
            }
        };
        settled.send(ending);
    }
}

fn report(result: io::Result<()>, path: &std::path::Path) {
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not remove a partial upload");
    }
}

impl Upload for LocalUpload {
    fn write(mut self: Box<Self>, mut batch: Vec<u8>) -> Pending<(Box<dyn Upload>, Vec<u8>)> {
        pending(move || {
            let open = self.open()?;
            if let Err(e) = open.writer.write_all(&batch) {
                open.out_of_space |= out_of_space(&e);
                return Err(e.into());
            }
            batch.clear();
            Ok((self as Box<dyn Upload>, batch))
        })
    }

    fn commit(mut self: Box<Self>, last: Vec<u8>, whole: bool) -> Pending<()> {
        let open = self.open.take();
        pending(move || match open {
            Some(open) => open.commit(&last, whole).map_err(StorageError::from),
            None => Err(StorageError::Io(io::Error::other("the upload has ended"))),
        })
    }

    fn abort(mut self: Box<Self>, discard: bool) -> Pending<()> {
        let open = self.open.take();
        pending(move || {
            if let Some(open) = open {
                open.abort(discard);
            }
            Ok(())
        })
    }

    fn settled(&mut self) -> Option<Settled> {
        self.settled.take()
    }

    fn splice_target(&mut self) -> Option<&mut dyn SpliceTarget> {
        // splice(2) refuses a file opened to append.
        let open = self.open.as_mut()?;
        (!open.writer.appends()).then_some(&mut open.writer as &mut dyn SpliceTarget)
    }
}

impl Drop for LocalUpload {
    /// Dropped without an ending: aborted, off the session's thread.
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            on_pool(move || open.abort(false));
        }
    }
}
