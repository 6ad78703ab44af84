//! Storage quotas: how many bytes and files a user's home may hold.
//!
//! Usage is counted once, by walking the home through the storage trait
//! (so any backend can hold a quota'd home) when the user logs in with no
//! other session open, and then kept up to date by the sessions:
//! uploads charge every byte before it is written (so an upload stops the
//! moment it would exceed the quota), deletes and replacements credit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferroftp_proto::listing::EntryKind;

use crate::path::VirtualPath;
use crate::storage::Storage;

/// Bytes and files in use.
#[derive(Debug, Default)]
pub struct Usage {
    bytes: AtomicU64,
    files: AtomicU64,
}

impl Usage {
    /// Counts the regular files beneath the root of `storage` (symlinks
    /// not followed). A directory that cannot be listed counts as empty.
    pub async fn measure(storage: &dyn Storage) -> Usage {
        let (mut bytes, mut files) = (0u64, 0u64);
        let mut stack = vec![VirtualPath::root()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = storage.list(&dir).await else { continue };
            for entry in entries {
                match entry.kind {
                    EntryKind::Directory => stack.push(dir.join(&entry.name)),
                    EntryKind::File => {
                        bytes += entry.size;
                        files += 1;
                    }
                    EntryKind::Symlink | EntryKind::Other => {}
                }
            }
        }
        Usage { bytes: AtomicU64::new(bytes), files: AtomicU64::new(files) }
    }

    /// Bytes in use.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Files in use.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }
}

/// A user's limits and shared usage.
#[derive(Debug, Clone)]
pub struct Quota {
    /// Shared by all sessions of the user.
    pub usage: Arc<Usage>,
    /// Most bytes.
    pub max_bytes: Option<u64>,
    /// Most files.
    pub max_files: Option<u64>,
}

impl Quota {
    /// True if one more file fits.
    pub fn file_fits(&self) -> bool {
        self.max_files.is_none_or(|max| self.usage.files() < max)
    }

    /// Charges `n` bytes, allowing `credit` bytes over the limit (the size
    /// of a file this upload replaces). False, charging nothing, if they
    /// do not fit.
    pub fn charge(&self, n: u64, credit: u64) -> bool {
        let Some(max) = self.max_bytes else {
            self.usage.bytes.fetch_add(n, Ordering::Relaxed);
            return true;
        };
        self.usage
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let next = used.checked_add(n)?;
                (next <= max.saturating_add(credit)).then_some(next)
            })
            .is_ok()
    }

    /// Credits freed bytes and files.
    pub fn release(&self, bytes: u64, files: u64) {
        let sub = |a: &AtomicU64, v: u64| {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| Some(cur.saturating_sub(v)));
        };
        sub(&self.usage.bytes, bytes);
        sub(&self.usage.files, files);
    }

    /// Counts a new file.
    pub fn add_file(&self) {
        self.usage.files.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one upload has charged, so it can be settled when it ends.
#[derive(Debug)]
pub struct UploadCharge {
    /// The quota charged.
    pub quota: Quota,
    /// Bytes of the file this upload replaces (credited on success).
    pub replaces: u64,
    /// True when the upload creates a new file.
    pub new_file: bool,
    /// Bytes charged so far.
    pub written: AtomicU64,
}

impl UploadCharge {
    /// Charges `n` more bytes; false if the quota does not allow them.
    pub fn charge(&self, n: u64) -> bool {
        let ok = self.quota.charge(n, self.replaces);
        if ok {
            self.written.fetch_add(n, Ordering::Relaxed);
        }
        ok
    }

    /// The upload completed: the replaced file's bytes are freed, a new
    /// file counts.
    pub fn completed(&self) {
        self.quota.release(self.replaces, 0);
        if self.new_file {
            self.quota.add_file();
        }
    }

    /// The upload's bytes were removed again.
    pub fn discarded(&self) {
        self.quota.release(self.written.load(Ordering::Relaxed), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_within_limits() {
        let q = Quota { usage: Arc::new(Usage::default()), max_bytes: Some(100), max_files: Some(1) };
        assert!(q.charge(60, 0));
        assert!(!q.charge(50, 0));
        assert!(q.charge(50, 20), "credit for a replaced file");
        assert_eq!(q.usage.bytes(), 110);
        q.release(110, 0);
        assert!(q.file_fits());
        q.add_file();
        assert!(!q.file_fits());
    }

    #[tokio::test]
    async fn measures_a_tree_through_the_storage_trait() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"12345").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/b"), b"123").unwrap();
        // An orphaned upload file is not the user's: not counted.
        std::fs::write(d.path().join("sub/.ferroftp-upload-0000000000000001.tmp"), b"1234567").unwrap();
        let local = crate::storage::LocalFs::open(d.path(), false).unwrap();
        let u = Usage::measure(&local).await;
        assert_eq!((u.bytes(), u.files()), (8, 2));
        let memory = crate::storage::MemoryFs::new(1 << 20);
        memory.mkdir(&VirtualPath::root().join("sub"), 0).await.unwrap();
        for (name, bytes) in [("a", &b"12345"[..]), ("sub/b", b"123")] {
            let options = crate::storage::UploadOptions {
                mode: crate::storage::WriteMode::Truncate,
                umask: 0,
                atomic: true,
                keep_partial: false,
                sync: false,
            };
            let upload = memory.open_write(&VirtualPath::root().resolve(name), options).await.unwrap();
            upload.commit(bytes.to_vec(), true).await.unwrap();
        }
        let u = Usage::measure(&memory).await;
        assert_eq!((u.bytes(), u.files()), (8, 2));
    }
}
