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
//! made anew is opened anew for the sessions that log in after it. While
//! a session holds a home, a `chmod 000` of it no longer refuses the next
//! logins (they share the open directory); moving it aside or removing
//! it does.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::LocalFs;

/// Entries the map holds before the first sweep of the ones no session
/// holds any more.
const SWEEP_FIRST: usize = 64;

/// The home directories open now, by path.
#[derive(Debug)]
pub struct Homes {
    /// Each path's directory, for as long as a session holds it.
    open: Mutex<Held>,
    /// Whether the directories' reading calls run on the blocking pool
    /// (`storage_thread_pool`).
    thread_pool: bool,
}

impl Homes {
    /// No directory open yet.
    pub fn new(thread_pool: bool) -> Homes {
        Homes { open: Mutex::new(Held { dirs: HashMap::new(), sweep_at: SWEEP_FIRST }), thread_pool }
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
        let held = self.lock().dirs.get(path).and_then(Weak::upgrade);
        if let Some(fs) = held {
            if fs.identity().is_ok_and(|id| id == (now.dev(), now.ino())) {
                return Ok(fs);
            }
        }
        let fs = Arc::new(LocalFs::open(path, self.thread_pool)?);
        let mut open = self.lock();
        // Swept when the map has doubled since the last sweep, so a burst
        // of logins to many homes costs no walk of the map each.
        if open.dirs.len() >= open.sweep_at {
            open.dirs.retain(|_, dir| dir.strong_count() > 0);
            open.sweep_at = SWEEP_FIRST.max(2 * open.dirs.len());
        }
        open.dirs.insert(path.to_path_buf(), Arc::downgrade(&fs));
        Ok(fs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The map and when it is next swept.
#[derive(Debug)]
struct Held {
    /// Each path's directory; dead entries wait for the next sweep.
    dirs: HashMap<PathBuf, Weak<LocalFs>>,
    /// The map's length that starts the next sweep.
    sweep_at: usize,
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
        drop((first, second, third));
        assert!(homes.open(&base.path().join("missing")).is_err());
    }

    #[test]
    fn homes_no_session_holds_are_swept() {
        let base = tempfile::tempdir().unwrap();
        let homes = Homes::new(false);
        let kept = homes.open(base.path()).unwrap();
        for i in 0..500 {
            let home = base.path().join(i.to_string());
            std::fs::create_dir(&home).unwrap();
            drop(homes.open(&home).unwrap());
            assert!(homes.lock().dirs.len() <= SWEEP_FIRST, "{} entries after {i}", homes.lock().dirs.len());
        }
        // The one still held survives the sweeps and is shared.
        assert!(Arc::ptr_eq(&kept, &homes.open(base.path()).unwrap()));
    }
}
