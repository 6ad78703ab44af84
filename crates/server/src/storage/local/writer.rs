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
//! unless `sync_uploads` asks for it ([`Writer::finish`]); a power
//! cut in between can leave a just-replaced file reading as zeros, as
//! docs/CONFIG.md says.

use std::io::{self, Seek};

/// Most bytes reserved at a time ahead of an upload.
const RESERVE_AHEAD: u64 = 64 << 20;

/// Bytes first reserved ahead of an upload; each reservation after it
/// doubles, up to [`RESERVE_AHEAD`], so an upload of a few batches does
/// not reserve (and give back) 64 MiB.
const RESERVE_FIRST: u64 = 256 << 10;

/// No space is reserved on a filesystem with less than this free: there,
/// space held for one upload could make another fail.
const RESERVE_ONLY_ABOVE: u64 = 16 * RESERVE_AHEAD;

/// The file an upload writes; see the module's notes.
#[derive(Debug)]
pub(super) struct Writer {
    /// The open file.
    file: std::fs::File,
    /// Opened with O_APPEND (APPE): every write lands at the end.
    appends: bool,
    /// Reserved bytes not yet written; `None` once the filesystem refused
    /// to reserve (it is not asked again).
    reserved: Option<u64>,
    /// Space was reserved past the end: give back what was not written.
    trim: bool,
    /// Bytes the next reservation takes at least.
    next_reserve: u64,
}

impl Writer {
    /// Wraps an open file, positioned where the upload starts.
    pub(super) fn new(file: std::fs::File, appends: bool) -> Writer {
        Writer { file, appends, reserved: Some(0), trim: false, next_reserve: RESERVE_FIRST }
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

    /// Gives back unwritten reserved space and, with `sync`, waits until
    /// the data is on the disk (blocking).
    ///
    /// # Errors
    /// The truncate's or the flush's error.
    pub fn finish(&mut self, sync: bool) -> io::Result<()> {
        self.trim()?;
        if sync {
            self.file.sync_data()?;
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

impl crate::storage::SpliceTarget for Writer {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Writer::write_all(self, bytes)
    }

    fn reserve_ahead(&mut self, n: u64) {
        Writer::reserve_ahead(self, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn writer(dir: &std::path::Path) -> Writer {
        Writer::new(std::fs::File::create(dir.join("f")).unwrap(), false)
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
        w.finish(false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"hello");
        assert!(allocated(&dir.path().join("f")) < 1 << 20);
    }

    #[test]
    fn a_whole_small_upload_is_written_into_allocated_space() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        w.write_all_allocated(&bytes).unwrap();
        w.finish(false).unwrap();
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
        w.finish(false).unwrap();
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
        let file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut w = Writer::new(file, true);
        w.write_all(b"more ").unwrap();
        assert!(!w.trim, "an append reserved space");
        // A whole upload appended: allocating at the position (0 here)
        // would have lengthened the file with zeros first.
        w.write_all_allocated(b"and a whole upload").unwrap();
        w.finish(false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"was more and a whole upload");
    }
}
