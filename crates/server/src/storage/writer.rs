//! An upload's target: a local file, written with plain blocking calls
//! that the transfer makes on the blocking pool in big batches (the last
//! one together with the rename that completes an atomic upload) or from
//! a streaming thread with splice(2).
//!
//! An upload written in batches, or streamed, reserves disk space ahead of
//! what it writes ([`Writer::reserve_ahead`]): the filesystem then
//! allocates big extents once instead of reserving blocks page by page as
//! the data arrives (ext4's delayed allocation: a quarter of the server's
//! CPU on a 1 GiB STOR), and a rename over another file does not make ext4
//! write the whole upload out first (`auto_da_alloc`, below). What was
//! reserved past the end is given back when the file is finished or
//! dropped.
//!
//! A whole small upload is written into space allocated for it first
//! ([`Writer::write_all_allocated`]) for the same reason: ext4 writes
//! delayed-allocation data out inside a rename over another file
//! (`auto_da_alloc`), which made every small atomic STOR wait for the
//! disk there. So nothing is written out before the kernel's usual delay
//! unless `sync_uploads` asks for it ([`Writer::sync_on_finish`]); a power
//! cut in between can leave a just-replaced file reading as zeros, as
//! docs/CONFIG.md says.
//!
//! An atomic upload that replaces a file keeps the old one open (O_PATH)
//! across its rename and hands it to [`super::release`], so the kernel
//! frees it beside the 226 reply instead of before it (a quarter of a
//! second for 1 GiB; a fifth more small STORs a second).

use std::io::{self, Seek};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptionsExt};

use crate::path::VirtualPath;

/// Most bytes reserved at a time ahead of an upload.
const RESERVE_AHEAD: u64 = 64 << 20;

/// Bytes first reserved ahead of an upload; each reservation after it
/// doubles, up to [`RESERVE_AHEAD`], so an upload of a few batches does
/// not reserve (and give back) 64 MiB.
const RESERVE_FIRST: u64 = 256 << 10;

/// No space is reserved on a filesystem with less than this free: there,
/// space held for one upload could make another fail.
const RESERVE_ONLY_ABOVE: u64 = 16 * RESERVE_AHEAD;

/// The rename that completes an atomic upload: the temporary file takes
/// the target's name only once every byte is written (beneath the root the
/// upload's file was opened in).
#[derive(Debug, Clone)]
pub struct Commit {
    /// The temporary file written.
    pub temp: VirtualPath,
    /// Its final name.
    pub target: VirtualPath,
    /// Bytes the final name held when the upload began (0 when none).
    pub replaces: u64,
}

/// The file an upload writes; see the module's notes.
#[derive(Debug)]
pub struct Writer {
    /// The open file.
    file: std::fs::File,
    /// The root it was opened beneath, for the completing rename.
    root: Arc<Dir>,
    /// Opened with O_APPEND (APPE): every write lands at the end.
    appends: bool,
    /// Reserved bytes not yet written; `None` once the filesystem refused
    /// to reserve (it is not asked again).
    reserved: Option<u64>,
    /// Space was reserved past the end: give back what was not written.
    trim: bool,
    /// Bytes the next reservation takes at least.
    next_reserve: u64,
    /// Flush data and rename to the disk in [`Writer::finish`].
    sync: bool,
    /// Dropped with the writer, which tells [`Closed`] the file is shut.
    _open: tokio::sync::oneshot::Sender<()>,
    /// The other end, until [`Writer::closed`] hands it out.
    closed: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Resolves once an upload's [`Writer`] is gone, so nothing writes to
/// the file any more (a write may still be running on the blocking pool
/// or a streaming thread after its transfer was dropped).
#[derive(Debug)]
pub struct Closed(tokio::sync::oneshot::Receiver<()>);

impl Closed {
    /// Waits until the writer is dropped.
    pub async fn wait(self) {
        let _ = self.0.await;
    }
}

impl Writer {
    /// Wraps an open file, positioned where the upload starts.
    pub(super) fn new(file: std::fs::File, root: Arc<Dir>, appends: bool) -> Writer {
        let (open, closed) = tokio::sync::oneshot::channel();
        Writer {
            file,
            root,
            appends,
            reserved: Some(0),
            trim: false,
            next_reserve: RESERVE_FIRST,
            sync: false,
            _open: open,
            closed: Some(closed),
        }
    }

    /// Makes [`Writer::finish`] wait until the data, and the rename that
    /// completes an atomic upload, are on the disk (`sync_uploads`).
    pub fn sync_on_finish(&mut self) {
        self.sync = true;
    }

    /// What resolves once this writer is dropped (once; `None` after).
    pub fn closed(&mut self) -> Option<Closed> {
        self.closed.take().map(Closed)
    }

    /// Whether the file was opened to append (splice(2) cannot write to
    /// such a file).
    pub fn appends(&self) -> bool {
        self.appends
    }

    /// Writes every byte (blocking), into reserved space (see
    /// [`Writer::reserve_ahead`]).
    ///
    /// Every batch is reserved for, not only a streaming upload's: a
    /// single batch written with delayed allocation (the first ones, before
    /// streaming starts) made ext4 write the whole file out inside the
    /// rename over the file it replaced (`auto_da_alloc`): 169 ms for 1 GiB,
    /// all before the 226.
    ///
    /// # Errors
    /// The write's error (no space, quota, I/O).
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reserve_ahead(bytes.len() as u64);
        io::Write::write_all(&mut self.file, bytes)
    }

    /// Writes every byte into space allocated for them first (blocking):
    /// for a whole small upload, which is then renamed over the file it
    /// replaces without ext4 writing it out inside the rename
    /// (`auto_da_alloc` flushes only delayed-allocation data). A failed
    /// write leaves the file as long as what was written. A file opened to
    /// append is written as usual: its position is not its end, and
    /// allocating there could lengthen it with zeros ahead of the bytes.
    ///
    /// # Errors
    /// The write's error (no space, quota, I/O).
    pub fn write_all_allocated(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.appends {
            return self.write_all(bytes);
        }
        let at = self.file.stream_position()?;
        let allocated =
            rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), at, bytes.len() as u64).is_ok();
        let written = io::Write::write_all(&mut self.file, bytes);
        if written.is_err() && allocated {
            let end = self.file.stream_position()?;
            self.file.set_len(end)?;
        }
        written
    }

    /// Makes sure the next `n` bytes written at the file's position fall
    /// in reserved space, reserving more when they do not (blocking):
    /// [`RESERVE_FIRST`] at first, twice as much each time after, up to
    /// [`RESERVE_AHEAD`]. A filesystem that cannot reserve, or has less than
    /// [`RESERVE_ONLY_ABOVE`] free, is simply written as usual (and not
    /// asked again): the writes then report what fails.
    ///
    /// A file opened to append is never reserved for (nor trimmed): its
    /// position says nothing about where its end is (it stays at 0 until a
    /// first write succeeds, and other sessions may append too), so giving
    /// space back there could cut the file.
    pub fn reserve_ahead(&mut self, n: u64) {
        if self.appends {
            return;
        }
        let Some(left) = self.reserved else { return };
        if n <= left {
            self.reserved = Some(left - n);
            return;
        }
        let len = self.next_reserve.max(n);
        self.next_reserve = (self.next_reserve * 2).min(RESERVE_AHEAD);
        let roomy = rustix::fs::fstatvfs(&self.file)
            .is_ok_and(|fs| fs.f_bavail.saturating_mul(fs.f_frsize) >= RESERVE_ONLY_ABOVE.saturating_add(len));
        let at = if roomy { self.file.stream_position().ok() } else { None };
        let reserved = at.is_some_and(|at| {
            rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::KEEP_SIZE, at, len).is_ok()
        });
        // Trimmed even when the reservation failed: a filesystem may keep
        // what it allocated before running out.
        self.trim |= at.is_some();
        self.reserved = reserved.then(|| len - n);
    }

    /// Gives back the space reserved past the end of what was written.
    fn trim(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.trim) {
            let end = self.file.stream_position()?;
            // Truncating to the same length frees the blocks past it.
            self.file.set_len(end)?;
        }
        Ok(())
    }

    /// Gives back unwritten reserved space and, given `commit`, moves the
    /// file into place (blocking); with [`Writer::sync_on_finish`], both
    /// reach the disk first. The file is closed when the writer is
    /// dropped.
    ///
    /// # Errors
    /// The rename's or the flush's error.
    pub fn finish(mut self, commit: Option<&Commit>) -> io::Result<()> {
        self.trim()?;
        if self.sync {
            self.file.sync_data()?;
        }
        let Some(commit) = commit else { return Ok(()) };
        let to = commit.target.relative();
        // Whatever holds the final name now (it may have changed since the
        // upload began); gone or unopenable, it is freed in the rename.
        let replaced = (commit.replaces > 0)
            .then(|| {
                let mut path_only = cap_std::fs::OpenOptions::new();
                path_only
                    .read(true)
                    .custom_flags((rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW).bits() as i32);
                self.root.open_with(&to, &path_only).ok()
            })
            .flatten();
        // The new name lives in the directory, opened (to read: cap-std
        // opens directories O_PATH, which fsync refuses) before the rename.
        // One that cannot be read (an upload-only drop box) is not flushed:
        // the file's own data is.
        let directory = if self.sync { self.root.open(commit.target.parent().relative()).ok() } else { None };
        self.root.rename(commit.temp.relative(), &self.root, &to)?;
        if let Some(replaced) = replaced {
            super::release::release_later(replaced);
        }
        // The upload has landed: a failed flush of the directory is no
        // reason to report it failed.
        if let Some(Err(e)) = directory.map(|d| d.sync_all()) {
            tracing::warn!(path = %commit.target, error = %e, "could not flush the directory of an upload");
        }
        Ok(())
    }
}

impl Drop for Writer {
    /// An upload that ended early keeps no reserved space either.
    fn drop(&mut self) {
        let _ = self.trim();
    }
}

impl std::os::fd::AsFd for Writer {
    /// The open file, for splice(2) into it.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn writer(dir: &std::path::Path) -> Writer {
        let root = Dir::open_ambient_dir(dir, cap_std::ambient_authority()).unwrap();
        let file = root.create("f").unwrap().into_std();
        Writer::new(file, Arc::new(root), false)
    }

    /// Bytes the file occupies on disk.
    fn allocated(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn reserved_space_is_given_back_when_the_upload_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.write_all(b"hello").unwrap();
        assert!(allocated(&dir.path().join("f")) >= RESERVE_FIRST, "nothing was reserved");
        // Within the reservation: no new one.
        w.reserve_ahead(RESERVE_FIRST - 5);
        assert_eq!(w.reserved, Some(0));
        // Past it: twice as much.
        w.reserve_ahead(1);
        assert_eq!(w.reserved, Some(2 * RESERVE_FIRST - 1));
        w.finish(None).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"hello");
        assert!(allocated(&dir.path().join("f")) < 1 << 20);
    }

    #[test]
    fn a_whole_small_upload_is_written_into_allocated_space() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        w.write_all_allocated(&bytes).unwrap();
        w.finish(None).unwrap();
        let path = dir.path().join("f");
        assert!(std::fs::read(&path).unwrap() == bytes, "stored bytes differ");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 5000);
        assert!(allocated(&path) >= 5000, "the space was not allocated");
    }

    #[test]
    fn an_upload_that_ends_early_keeps_no_reserved_space() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.write_all(b"abc").unwrap();
        assert!(allocated(&dir.path().join("f")) >= RESERVE_FIRST);
        drop(w);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"abc");
        assert!(allocated(&dir.path().join("f")) < 1 << 20);
    }

    /// No byte of a batched upload waits for delayed allocation: had one,
    /// ext4 would write the whole file out inside the rename over the file
    /// it replaces. `filefrag -v` (e2fsprogs) flags such extents
    /// `delalloc` until they are written back.
    #[test]
    fn batches_are_written_into_reserved_space_not_delayed_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let batch = vec![7u8; 300 << 10];
        for _ in 0..4 {
            w.write_all(&batch).unwrap();
        }
        let path = dir.path().join("f");
        let map = std::process::Command::new("filefrag").arg("-v").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&map.stdout);
        assert!(map.status.success() && text.contains("extent"), "filefrag failed: {text}");
        assert!(!text.contains("delalloc"), "delayed allocation left:\n{text}");
        w.finish(None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 * batch.len() as u64);
        assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 7));
    }

    /// An appending writer reserves nothing, so finishing it never cuts
    /// the file back to its position (which under O_APPEND is not its end).
    #[test]
    fn an_append_reserves_nothing_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"was ").unwrap();
        let root = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut w = Writer::new(file, Arc::new(root), true);
        w.write_all(b"more ").unwrap();
        assert!(!w.trim, "an append reserved space");
        // A whole upload appended: allocating at the position (0 here)
        // would have lengthened the file with zeros first.
        w.write_all_allocated(b"and a whole upload").unwrap();
        w.finish(None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"was more and a whole upload");
    }
}
