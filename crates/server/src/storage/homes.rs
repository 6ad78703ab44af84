//! Virtual users' home directories, opened once and shared by every
//! session logged in to them.
//!
//! A session used to open its user's home directory for itself: one
//! descriptor per session besides its socket, so 10,000 sessions of one
//! account (a fleet of cameras sharing a login) needed 20,000 descriptors,
//! and past the open-files limit logins failed. Sessions now take the
//! directory another session already holds open, as anonymous sessions
//! share the anonymous root. A directory is shared only while it is still
//! the one at its path (same device and inode): a home moved aside and
//! made anew is opened anew for the sessions that log in after it.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::LocalFs;

/// The home directories open now, by path.
#[derive(Debug)]
pub struct Homes {
    /// Each path's directory, for as long as a session holds it.
    open: Mutex<HashMap<PathBuf, Weak<LocalFs>>>,
    /// Whether the directories' reading calls run on the blocking pool
    /// (`storage_thread_pool`).
    thread_pool: bool,
}

impl Homes {
    /// No directory open yet.
    pub fn new(thread_pool: bool) -> Homes {
        Homes { open: Mutex::new(HashMap::new()), thread_pool }
    }

    /// The directory at `path`: the one a session already holds when it is
    /// still what the path names, else opened now.
    ///
    /// # Errors
    /// The I/O error of looking the path up or opening it (missing, not a
    /// directory, no permission, too many open files).
    pub fn open(&self, path: &Path) -> io::Result<Arc<LocalFs>> {
        // Followed like the open below follows it: a home may be a symlink.
        let now = std::fs::metadata(path)?;
        let held = self.lock().get(path).and_then(Weak::upgrade);
        if let Some(fs) = held {
            if fs.identity().is_ok_and(|id| id == (now.dev(), now.ino())) {
                return Ok(fs);
            }
        }
        let fs = Arc::new(LocalFs::open(path, self.thread_pool)?);
        let mut open = self.lock();
        open.retain(|_, dir| dir.strong_count() > 0);
        open.insert(path.to_path_buf(), Arc::downgrade(&fs));
        Ok(fs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Weak<LocalFs>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_is_shared_while_it_is_held_and_still_at_its_path() {
        let base = tempfile::tempdir().unwrap();
        let home = base.path().join("bob");
        std::fs::create_dir(&home).unwrap();
        let homes = Homes::new(false);
        let first = homes.open(&home).unwrap();
        let second = homes.open(&home).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "a second session opened the home again");
        // Moved aside and made anew: the next session gets the new one.
        std::fs::rename(&home, base.path().join("bob.old")).unwrap();
        std::fs::create_dir(&home).unwrap();
        let third = homes.open(&home).unwrap();
        assert!(!Arc::ptr_eq(&first, &third), "the moved directory was handed out");
        let meta = std::fs::metadata(&home).unwrap();
        assert_eq!(third.identity().unwrap(), (meta.dev(), meta.ino()));
        // Once no session holds it, nothing is kept open.
        drop((first, second, third));
        assert!(homes.lock().values().all(|dir| dir.strong_count() == 0));
        assert!(homes.open(&base.path().join("missing")).is_err());
    }
}
