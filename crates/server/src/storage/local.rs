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

use std::io::{self, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use cap_std::fs::{Dir, DirBuilder, Metadata, OpenOptions, Permissions};
use cap_std::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use ferroftp_proto::listing::{EntryFacts, EntryKind, UniqueId};
use rustix::fs::{Mode, OFlags};

use super::{OpenFile, Reader, Storage, StorageError, WriteMode, Writer};
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

#[async_trait]
impl Storage for LocalFs {
    async fn metadata(&self, path: &VirtualPath) -> Result<EntryFacts, StorageError> {
        let rel = path.relative();
        let name = name_of(path);
        self.reading(move |root| root.metadata(&rel).map(|m| facts(name, &m))).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<Vec<EntryFacts>, StorageError> {
        let rel = path.relative();
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
        let rel = path.relative();
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

    async fn open_write(&self, path: &VirtualPath, mode: WriteMode, umask: u32) -> Result<Writer, StorageError> {
        let rel = path.relative();
        let open = move |root: &Dir| {
            let mut options = OpenOptions::new();
            options.write(true).mode(0o666 & !umask);
            match mode {
                WriteMode::Truncate => options.create(true).truncate(true),
                WriteMode::Append => options.create(true).append(true),
                WriteMode::At(_) => options.create(true),
                WriteMode::CreateNew => options.create_new(true),
            };
            let mut file = root.open_with(&rel, &options)?.into_std();
            if let WriteMode::At(offset) = mode {
                file.set_len(offset)?;
                file.seek(SeekFrom::Start(offset))?;
            }
            Ok(file)
        };
        let file = if mode == WriteMode::CreateNew { self.reading(open).await? } else { self.blocking(open).await? };
        Ok(Writer::new(file, Arc::clone(&self.root), mode == WriteMode::Append))
    }

    async fn mkdir(&self, path: &VirtualPath, umask: u32) -> Result<(), StorageError> {
        let rel = path.relative();
        self.blocking(move |root| {
            let mut builder = DirBuilder::new();
            builder.mode(0o777 & !umask);
            root.create_dir_with(&rel, &builder)
        })
        .await
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let rel = path.relative();
        self.blocking(move |root| root.remove_dir(&rel)).await
    }

    async fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let rel = path.relative();
        self.blocking(move |root| {
            if root.symlink_metadata(&rel)?.is_dir() {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            root.remove_file(&rel)
        })
        .await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        let (from, to) = (from.relative(), to.relative());
        self.blocking(move |root| root.rename(&from, root, &to)).await
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError> {
        let rel = path.relative();
        self.blocking(move |root| root.set_permissions(&rel, Permissions::from_mode(mode))).await
    }

    async fn set_mtime(&self, path: &VirtualPath, secs: i64) -> Result<(), StorageError> {
        let rel = path.relative();
        let when = if secs >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
        } else {
            std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
        };
        self.blocking(move |root| root.open(&rel)?.into_std().set_modified(when)).await
    }

    async fn available(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        let rel = path.relative();
        self.reading(move |root| {
            let dir = root.open_dir(&rel)?;
            let stat = rustix::fs::fstatvfs(&dir).map_err(io::Error::from)?;
            Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
        })
        .await
    }

    async fn truncate(&self, path: &VirtualPath, len: u64) -> Result<(), StorageError> {
        let rel = path.relative();
        self.blocking(move |root| root.open_with(&rel, OpenOptions::new().write(true))?.set_len(len)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Commit;
    use tokio::io::AsyncReadExt;

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
        assert!(fs.open_write(&p, WriteMode::Truncate, 0o022).await.is_err());
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
        let mut w = fs.open_write(&p, WriteMode::At(3), 0o022).await.unwrap();
        w.write_all(b"xy").unwrap();
        w.finish(None).unwrap();
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), b"012xy");
    }

    #[tokio::test]
    async fn a_finished_upload_is_renamed_into_place_beneath_its_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("target"), b"old").unwrap();
        let fs = LocalFs::open(root.path(), false).unwrap();
        let (temp, target) = (VirtualPath::root().resolve(".t"), VirtualPath::root().resolve("target"));
        let mut w = fs.open_write(&temp, WriteMode::CreateNew, 0o022).await.unwrap();
        w.write_all(b"new bytes").unwrap();
        assert_eq!(std::fs::read(root.path().join("target")).unwrap(), b"old", "not replaced before finish");
        w.finish(Some(&Commit { temp: temp.clone(), target: target.clone(), replaces: 3 })).unwrap();
        assert_eq!(std::fs::read(root.path().join("target")).unwrap(), b"new bytes");
        assert!(!root.path().join(".t").exists());
        // CreateNew (now opened in place) still refuses an existing name.
        assert!(fs.open_write(&target, WriteMode::CreateNew, 0o022).await.is_err());
    }

    #[test]
    fn replacing_a_symlink_to_outside_the_root_leaves_the_outside_alone() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"keep me").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, root.path().join("target")).unwrap();
        let fs = LocalFs::open(root.path(), false).unwrap();
        let (temp, target) = (VirtualPath::root().resolve(".t"), VirtualPath::root().resolve("target"));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut w = rt.block_on(fs.open_write(&temp, WriteMode::CreateNew, 0o022)).unwrap();
        w.write_all(b"new").unwrap();
        // The old name is held (or not) only as found beneath the root:
        // the symlink itself, never what it points to.
        w.finish(Some(&Commit { temp: temp.clone(), target, replaces: u64::MAX })).unwrap();
        assert_eq!(std::fs::read(root.path().join("target")).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(root.path().join("target")).unwrap().is_symlink());
        assert_eq!(std::fs::read(&secret).unwrap(), b"keep me");
    }
}
