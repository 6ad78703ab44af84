//! The local-directory backend, confined beneath its root by cap-std.
//!
//! Every operation resolves its path through a [`cap_std::fs::Dir`] opened
//! on the root, which refuses `..` above the root, absolute paths and
//! symlinks that point out of it (openat2 `RESOLVE_BENEATH` where the
//! kernel has it, checked component-by-component resolution elsewhere).
//!
//! Calls that only read (stat, open for reading, a directory listing, the
//! file's bytes) run in place by default: on a local disk they cost a few
//! microseconds, less than handing them to tokio's blocking pool and back
//! (two thread switches, which were half the server's CPU per small
//! download; docs/BENCHMARKS.md). With `storage_thread_pool` they run on
//! the blocking pool too, for roots on a network filesystem that can stall.
//!
//! Calls that change the filesystem run on the blocking pool: they can
//! wait for the disk. ext4 writes a file's data out when it is renamed
//! over another (`auto_da_alloc`), which made the atomic-upload rename
//! block for milliseconds (seen in perf: `ext4_rename` ->
//! `filemap_fdatawrite`), and writes can be throttled when dirty pages
//! pile up. In place, that would stall every session on the thread. One
//! exception: creating a new, empty file (`WriteMode::CreateNew`, the
//! atomic upload's temporary file) has no data to flush and runs like a
//! read; it saved 12% of the server's CPU per small upload.
//!
//! Atomic uploads' temporary files (`temp`) are this backend's own: they
//! are left out of listings, no client path can name one, and orphans
//! left by a crash are removed.

pub mod homes;
mod release;
mod temp;
mod upload;
mod writer;

use std::io::{self, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use cap_std::fs::{Dir, DirBuilder, Metadata, OpenOptions, Permissions};
use cap_std::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use ferroftp_proto::listing::{EntryFacts, EntryKind, UniqueId};
use rustix::fs::{Mode, OFlags};

use self::upload::{LocalUpload, Plan};
use self::writer::Writer;
use super::{Capabilities, OpenFile, Reader, Storage, StorageError, Upload, UploadOptions, WriteMode};
use crate::path::VirtualPath;

/// A directory on the local filesystem.
#[derive(Debug, Clone)]
pub struct LocalFs {
    /// The root; every path resolves beneath it.
    root: Arc<Dir>,
    /// Run the calls that only read on the blocking pool too, instead of
    /// in place.
    thread_pool: bool,
}

impl LocalFs {
    /// Opens `root` as a storage root.
    ///
    /// # Errors
    /// The I/O error if `root` cannot be opened as a directory.
    pub fn open(root: &Path, thread_pool: bool) -> io::Result<LocalFs> {
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
        Ok(LocalFs { root: Arc::new(dir), thread_pool })
    }

    /// The root directory's device and inode, which name it whatever its
    /// path has become since it was opened.
    ///
    /// # Errors
    /// The fstat's error.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let meta = self.root.dir_metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Removes the orphaned temporary files of uploads beneath the root
    /// (blocking: a walk of the whole tree); how many.
    pub fn sweep_orphans(&self) -> usize {
        temp::sweep(&self.root)
    }

    /// Runs a closure that only reads: in place, or on the blocking pool
    /// with `thread_pool`.
    async fn reading<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> io::Result<T> + Send + 'static,
    {
        if self.thread_pool {
            self.blocking(f).await
        } else {
            f(&self.root).map_err(StorageError::from)
        }
    }

    /// Runs a closure on the blocking pool (every call that changes the
    /// filesystem).
    async fn blocking<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> io::Result<T> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        match tokio::task::spawn_blocking(move || f(&root)).await {
            Ok(result) => result.map_err(StorageError::from),
            Err(join) => Err(StorageError::Io(io::Error::other(join.to_string()))),
        }
    }
}

fn facts(name: String, meta: &Metadata) -> EntryFacts {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Directory
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    };
    EntryFacts {
        name,
        kind,
        size: meta.len(),
        modified: meta.mtime(),
        mode: meta.mode() & 0o7777,
        nlink: meta.nlink(),
        unique: Some(UniqueId { device: meta.dev(), inode: meta.ino() }),
    }
}

/// A directory entry's facts from one statx(2) that asks only for what a
/// listing shows (no birth time, owner or block counts: 10,000 of these
/// are most of a listing's cost). `name` was read from `dir` and is not
/// followed if it is a symlink, so this cannot reach outside `dir`. The
/// facts' name is left empty for the caller.
fn entry_facts(dir: &Dir, name: &std::ffi::CStr) -> io::Result<EntryFacts> {
    use rustix::fs::{AtFlags, FileType, StatxFlags};
    let wanted = StatxFlags::TYPE | StatxFlags::MODE | StatxFlags::NLINK | StatxFlags::SIZE | StatxFlags::MTIME;
    let st = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, wanted | StatxFlags::INO)?;
    let kind = match FileType::from_raw_mode(u32::from(st.stx_mode)) {
        FileType::Directory => EntryKind::Directory,
        FileType::RegularFile => EntryKind::File,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    Ok(EntryFacts {
        name: String::new(),
        kind,
        size: st.stx_size,
        modified: st.stx_mtime.tv_sec,
        mode: u32::from(st.stx_mode) & 0o7777,
        nlink: u64::from(st.stx_nlink),
        unique: Some(UniqueId { device: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor), inode: st.stx_ino }),
    })
}

/// Bytes of directory entries read per getdents64 call in a listing:
/// about 1,600 entries with 14-byte names (40 bytes each).
const LIST_READ_BUFFER: usize = 64 * 1024;

fn name_of(path: &VirtualPath) -> String {
    path.file_name().unwrap_or("/").to_string()
}

/// The path beneath the root for a client's `path`, which must not name
/// one of our temporary files (as if it did not exist).
fn existing(path: &VirtualPath) -> Result<String, StorageError> {
    if path.components().any(|c| temp::is_temp_name(c.as_bytes())) {
        return Err(StorageError::NotFound);
    }
    Ok(path.relative())
}

/// The path beneath the root for a name a client creates, which must not
/// be one of our temporary names.
fn new_name(path: &VirtualPath) -> Result<String, StorageError> {
    existing(path).map_err(|_| StorageError::InvalidName)
}

#[async_trait]
impl Storage for LocalFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<EntryFacts, StorageError> {
        let rel = existing(path)?;
        let name = name_of(path);
        self.reading(move |root| root.metadata(&rel).map(|m| facts(name, &m))).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<Vec<EntryFacts>, StorageError> {
        let rel = existing(path)?;
        // Always on the pool: a listing stats every entry, and 10,000 of
        // them would hold a session thread (and every session waiting on
        // it) for 15 ms.
        self.blocking(move |root| {
            let dir = root.open_dir(&rel)?;
            let mut entries = Vec::new();
            // getdents64 straight into one buffer: each name is borrowed
            // from it for statx and copied once, into the listing's entry.
            // cap-std's `Dir` is opened O_PATH: read through a readable
            // descriptor of the same directory.
            let readable =
                rustix::fs::openat(&dir, c".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(io::Error::from)?;
            let mut buf = Vec::with_capacity(LIST_READ_BUFFER);
            let mut raw = rustix::fs::RawDir::new(readable, buf.spare_capacity_mut());
            while let Some(entry) = raw.next() {
                let entry = entry.map_err(io::Error::from)?;
                let file_name = entry.file_name();
                if matches!(file_name.to_bytes(), b"." | b"..") {
                    continue;
                }
                // Uploads in progress are not part of the directory yet;
                // one nobody owns any more is removed.
                if temp::is_temp_name(file_name.to_bytes()) {
                    temp::reap(&dir, std::ffi::OsStr::from_bytes(file_name.to_bytes()));
                    continue;
                }
                let name = String::from_utf8_lossy(file_name.to_bytes()).into_owned();
                // An entry may vanish between readdir and stat; skip it.
                // Where statx is missing (old kernels, seccomp), stat as
                // cap-std does.
                match entry_facts(&dir, file_name) {
                    Ok(facts) => entries.push(EntryFacts { name, ..facts }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(_) => {
                        let os_name = std::ffi::OsStr::from_bytes(file_name.to_bytes());
                        if let Ok(meta) = dir.symlink_metadata(os_name) {
                            entries.push(facts(name, &meta));
                        }
                    }
                }
            }
            // Names in a directory are unique: an unstable sort is exact.
            entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        })
        .await
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<OpenFile, StorageError> {
        let rel = existing(path)?;
        let (file, size) = self
            .reading(move |root| {
                let mut file = root.open(&rel)?.into_std();
                let meta = file.metadata()?;
                if meta.is_dir() {
                    return Err(io::Error::from(io::ErrorKind::IsADirectory));
                }
                if offset > 0 {
                    file.seek(SeekFrom::Start(offset))?;
                }
                Ok((file, meta.len()))
            })
            .await?;
        let reader = if self.thread_pool {
            Reader::Stream(Box::new(tokio::fs::File::from_std(file)))
        } else {
            Reader::File(file)
        };
        Ok(OpenFile { reader, size })
    }

    async fn open_write(&self, path: &VirtualPath, options: UploadOptions) -> Result<Box<dyn Upload>, StorageError> {
        let rel = new_name(path)?;
        let UploadOptions { mode, umask, atomic, keep_partial, sync } = options;
        let file_mode = 0o666 & !umask;
        let root = Arc::clone(&self.root);
        if atomic && mode == WriteMode::Truncate {
            // SECURITY: a broken, aborted or killed upload must never
            // truncate or replace a good file: write beside it, rename over
            // it only when complete. Creating an empty file runs like a read.
            let parent = path.parent().relative();
            let target = std::path::PathBuf::from(&rel);
            let (temp, file, replaces) = self
                .reading(move |root| {
                    let replaces = root.symlink_metadata(&target).is_ok();
                    let (temp, file) = temp::create(root, &parent, file_mode)?;
                    Ok((temp, file, replaces))
                })
                .await?;
            let plan = Plan::Atomic { temp, target: rel.into(), replaces };
            return Ok(Box::new(LocalUpload::new(Writer::new(file, false), root, plan, keep_partial, sync)));
        }
        let open = move |root: &Dir| {
            let mut options = OpenOptions::new();
            options.write(true).mode(file_mode);
            match mode {
                WriteMode::Truncate => options.create(true).truncate(true),
                WriteMode::Append => options.create(true).append(true),
                WriteMode::At(_) => options.create(true),
                WriteMode::CreateNew => options.create_new(true),
            };
            // What the file held before, for cutting it back.
            let before = match mode {
                WriteMode::Append | WriteMode::At(_) => root.metadata(&rel).ok().map(|m| m.len()),
                _ => None,
            };
            let mut file = root.open_with(&rel, &options)?.into_std();
            let original_len = match mode {
                WriteMode::At(offset) => {
                    file.set_len(offset)?;
                    file.seek(SeekFrom::Start(offset))?;
                    before.map(|_| offset)
                }
                WriteMode::Append => before,
                _ => None,
            };
            Ok((file, rel, original_len))
        };
        let (file, rel, original_len) =
            if mode == WriteMode::CreateNew { self.reading(open).await? } else { self.blocking(open).await? };
        let plan = Plan::InPlace { target: rel.into(), original_len };
        let writer = Writer::new(file, mode == WriteMode::Append);
        Ok(Box::new(LocalUpload::new(writer, root, plan, keep_partial, sync)))
    }

    async fn mkdir(&self, path: &VirtualPath, umask: u32) -> Result<(), StorageError> {
        let rel = new_name(path)?;
        self.blocking(move |root| {
            let mut builder = DirBuilder::new();
            builder.mode(0o777 & !umask);
            root.create_dir_with(&rel, &builder)
        })
        .await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let rel = existing(path)?;
        self.blocking(move |root| root.remove_dir(&rel)).await
    }

    async fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let rel = existing(path)?;
        self.blocking(move |root| {
            if root.symlink_metadata(&rel)?.is_dir() {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            root.remove_file(&rel)
        })
        .await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        // A directory cannot move beneath itself; said before the kernel
        // would say ENOENT or EINVAL, as every backend says it.
        if to.is_beneath(from) {
            return Err(StorageError::InvalidName);
        }
        let (from, to) = (existing(from)?, new_name(to)?);
        match self.blocking(move |root| root.rename(&from, root, &to)).await {
            // EINVAL: a directory renamed beneath itself, the client's doing.
            Err(StorageError::Io(e)) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                Err(StorageError::InvalidName)
            }
            other => other,
        }
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        let rel = existing(path)?;
        self.blocking(move |root| root.set_permissions(&rel, Permissions::from_mode(mode))).await
    }

    async fn set_mtime(&self, path: &VirtualPath, secs: i64) -> Result<(), StorageError> {
        let rel = existing(path)?;
        let when = if secs >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
        } else {
            std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
        };
        self.blocking(move |root| root.open(&rel)?.into_std().set_modified(when)).await
    }

    async fn available(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        let rel = existing(path)?;
        self.reading(move |root| {
            let dir = root.open_dir(&rel)?;
            let stat = rustix::fs::fstatvfs(&dir).map_err(io::Error::from)?;
            Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Ending;
    use tokio::io::AsyncReadExt;

    fn options(mode: WriteMode, atomic: bool, keep_partial: bool) -> UploadOptions {
        UploadOptions { mode, umask: 0o022, atomic, keep_partial, sync: false }
    }

    /// Names in the root directory, as the filesystem has them.
    fn names(root: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn symlink_out_of_root_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("passwd")).unwrap();
        let fs = LocalFs::open(root.path(), false).unwrap();
        let p = VirtualPath::root().resolve("escape/secret");
        assert!(fs.open_read(&p, 0).await.is_err());
        assert!(fs.open_read(&VirtualPath::root().resolve("passwd"), 0).await.is_err());
        assert!(fs.list(&VirtualPath::root().resolve("escape")).await.is_err());
        assert!(fs.open_write(&p, options(WriteMode::Truncate, false, false)).await.is_err());
        assert!(fs.open_write(&p, options(WriteMode::Truncate, true, false)).await.is_err());
        assert_eq!(std::fs::read(outside.path().join("secret")).unwrap(), b"secret");
    }

    #[tokio::test]
    async fn read_from_offset_and_write_at_offset() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), b"0123456789").unwrap();
        let fs = LocalFs::open(root.path(), false).unwrap();
        let p = VirtualPath::root().resolve("f");
        let mut opened = fs.open_read(&p, 4).await.unwrap();
        assert_eq!(opened.size, 10, "the whole file's size, not what is left after the offset");
        let mut s = Vec::new();
        opened.reader.read_to_end(&mut s).await.unwrap();
        assert_eq!(s, b"456789");
        let w = fs.open_write(&p, options(WriteMode::At(3), false, true)).await.unwrap();
        let (w, _) = w.write(b"xy".to_vec()).await.unwrap();
        w.commit(b"z".to_vec(), false).await.unwrap();
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), b"012xyz");
    }

    #[tokio::test]
    async fn an_atomic_upload_replaces_its_target_only_when_committed() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("target"), b"old").unwrap();
        let fs = LocalFs::open(root.path(), false).unwrap();
        let target = VirtualPath::root().resolve("target");
        let mut w = fs.open_write(&target, options(WriteMode::Truncate, true, true)).await.unwrap();
        let settled = w.settled().unwrap();
        let (w, _) = w.write(b"new ".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(root.path().join("target")).unwrap(), b"old", "replaced before the commit");
        // The temporary file is the backend's own: not listed, not found.
        let listed = fs.list(&VirtualPath::root()).await.unwrap();
        assert_eq!(listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["target"]);
        let temp = names(root.path()).into_iter().find(|n| n.starts_with(temp::PREFIX)).expect("no temporary file");
        let by_name = VirtualPath::root().resolve(&temp);
        assert!(matches!(fs.metadata(&by_name).await, Err(StorageError::NotFound)));
        assert!(matches!(fs.delete(&by_name).await, Err(StorageError::NotFound)));
        assert!(matches!(fs.open_read(&by_name, 0).await, Err(StorageError::NotFound)));
        assert!(fs.open_write(&by_name, options(WriteMode::Truncate, false, false)).await.is_err());
        w.commit(b"bytes".to_vec(), false).await.unwrap();
        assert_eq!(settled.wait().await, Ending::Committed);
        assert_eq!(std::fs::read(root.path().join("target")).unwrap(), b"new bytes");
        assert_eq!(names(root.path()), ["target"]);
    }

    #[tokio::test]
    async fn a_broken_upload_is_kept_or_removed_as_it_was_opened_to_do() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("old"), b"old").unwrap();
        let fs = LocalFs::open(root.path(), false).unwrap();
        // A new name, partial uploads kept: the part takes the name.
        let mut w =
            fs.open_write(&VirtualPath::root().resolve("new"), options(WriteMode::Truncate, true, true)).await.unwrap();
        let settled = w.settled().unwrap();
        let (w, _) = w.write(b"part".to_vec()).await.unwrap();
        drop(w);
        assert_eq!(settled.wait().await, Ending::Kept);
        assert_eq!(std::fs::read(root.path().join("new")).unwrap(), b"part");
        // Replacing: the old file stays whole, the part goes.
        let mut w =
            fs.open_write(&VirtualPath::root().resolve("old"), options(WriteMode::Truncate, true, true)).await.unwrap();
        let settled = w.settled().unwrap();
        let (w, _) = w.write(b"part".to_vec()).await.unwrap();
        w.abort(false).await.unwrap();
        assert_eq!(settled.wait().await, Ending::Discarded);
        assert_eq!(std::fs::read(root.path().join("old")).unwrap(), b"old");
        // An append that ran out of space is cut back to where it began.
        let mut w =
            fs.open_write(&VirtualPath::root().resolve("old"), options(WriteMode::Append, false, true)).await.unwrap();
        let settled = w.settled().unwrap();
        let (w, _) = w.write(b" and more".to_vec()).await.unwrap();
        w.abort(true).await.unwrap();
        assert_eq!(settled.wait().await, Ending::Discarded);
        assert_eq!(std::fs::read(root.path().join("old")).unwrap(), b"old");
        assert_eq!(names(root.path()), ["new", "old"]);
    }

    #[tokio::test]
    async fn replacing_a_symlink_to_outside_the_root_leaves_the_outside_alone() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"keep me").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, root.path().join("target")).unwrap();
        let fs = LocalFs::open(root.path(), false).unwrap();
        let target = VirtualPath::root().resolve("target");
        // The symlink itself is replaced, never what it points to.
        let w = fs.open_write(&target, options(WriteMode::Truncate, true, false)).await.unwrap();
        w.commit(b"new".to_vec(), true).await.unwrap();
        assert_eq!(std::fs::read(root.path().join("target")).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(root.path().join("target")).unwrap().is_symlink());
        assert_eq!(std::fs::read(&secret).unwrap(), b"keep me");
    }
}
