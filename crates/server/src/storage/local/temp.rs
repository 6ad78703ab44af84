//! Temporary files of atomic uploads, and finding the ones nobody owns.
//!
//! An atomic upload is written under a temporary name beside its target
//! and renamed over it when complete. A server killed mid-upload (kill -9,
//! a power cut) leaves that file behind, and nothing else would ever
//! remove it: it would fill the disk and count against a quota.
//!
//! Ownership is an exclusive `flock(2)` on the temporary file, taken by
//! the upload right after creating it and held until the file is closed.
//! The kernel drops it when the owner dies, whatever the cause, and over
//! NFS the lock is seen by every node (Linux maps flock to NFS locks), so
//! several nodes sharing a directory never take each other's live
//! uploads. A temporary whose lock can be taken is an orphan and is
//! removed, while holding the lock. The one window (created, not yet
//! locked) is closed on the uploader's side: after locking it checks the
//! file still has its name, and starts over under a new name if a reaper
//! got there first.
//!
//! Orphans are looked for at start (every root and home, on a thread of
//! its own) and whenever a listing meets one.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use rustix::fs::{AtFlags, FlockOperation};

/// Prefix of the temporary names atomic uploads are written under.
pub const PREFIX: &str = ".ferroftp-upload-";

/// Names tried before giving up on creating a temporary file: only a
/// reaper that keeps winning the race (or a directory full of names)
/// gets that far.
const CREATE_TRIES: usize = 8;

/// Whether `name` is one of our temporary names.
pub fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(PREFIX.as_bytes())
}

/// Creates and locks a new temporary file in `parent` (beneath `root`),
/// with `mode`; its path and the open file.
///
/// # Errors
/// The create's error (no such directory, permission, no space).
pub fn create(root: &Dir, parent: &str, mode: u32) -> io::Result<(PathBuf, std::fs::File)> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(mode);
    for _ in 0..CREATE_TRIES {
        let path = Path::new(parent).join(format!("{PREFIX}{:016x}.tmp", rand::random::<u64>()));
        let file = match root.open_with(&path, &options) {
            Ok(f) => f.into_std(),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        // A reaper holding the lock is about to remove the name; one that
        // held it already removed it. Either way, a fresh name.
        if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        if rustix::fs::fstat(&file).map_err(io::Error::from)?.st_nlink == 0 {
            continue;
        }
        return Ok((path, file));
    }
    Err(io::Error::other("could not create a temporary upload file"))
}

/// Removes the temporary file `name` in `dir` if no upload owns it.
/// True when it was removed.
pub fn reap(dir: &Dir, name: &OsStr) -> bool {
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    let Ok(file) = dir.open_with(name, &options) else { return false };
    if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return false;
    }
    // Still the file the name leads to (not one renamed over it since).
    let same = match (rustix::fs::fstat(&file), rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)) {
        (Ok(open), Ok(named)) => (open.st_dev, open.st_ino) == (named.st_dev, named.st_ino),
        _ => false,
    };
    let removed = same && rustix::fs::unlinkat(dir, name, AtFlags::empty()).is_ok();
    if removed {
        tracing::info!(name = %name.to_string_lossy(), "removed an orphaned upload file");
    }
    removed
}

/// Removes every orphaned temporary file beneath `root`; how many. Walks
/// the whole tree (blocking): run it on a thread of its own.
pub fn sweep(root: &Dir) -> usize {
    let mut removed = 0;
    let mut stack: Vec<PathBuf> = vec![PathBuf::from(".")];
    while let Some(path) = stack.pop() {
        let Ok(dir) = root.open_dir(&path) else { continue };
        let Ok(entries) = dir.entries() else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path.join(&name));
            } else if is_temp_name(name.as_bytes()) && reap(&dir, &name) {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(path: &Path) -> Dir {
        Dir::open_ambient_dir(path, cap_std::ambient_authority()).unwrap()
    }

    #[test]
    fn a_locked_temporary_is_left_and_an_orphan_is_removed() {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir(base.path().join("sub")).unwrap();
        let dir = root(base.path());
        let (live, _held) = create(&dir, "sub", 0o644).unwrap();
        let (dead, file) = create(&dir, ".", 0o644).unwrap();
        drop(file);
        // A file that only looks like ours is an orphan too; others stay.
        std::fs::write(base.path().join("sub/.ferroftp-upload-0000000000000001.tmp"), b"x").unwrap();
        std::fs::write(base.path().join("sub/keep.txt"), b"y").unwrap();
        assert_eq!(sweep(&dir), 2);
        assert!(base.path().join(&live).exists(), "a live upload's file was removed");
        assert!(!base.path().join(&dead).exists());
        assert!(base.path().join("sub/keep.txt").exists());
        assert!(!reap(&root(&base.path().join("sub")), live.file_name().unwrap()));
    }

    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_temp_name(b".ferroftp-upload-00ab.tmp"));
        assert!(!is_temp_name(b"ferroftp-upload-00ab.tmp"));
        assert!(!is_temp_name(b"notes.txt"));
    }
}
