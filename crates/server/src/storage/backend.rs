//! Where sessions' storage comes from: the kind of backend the server was
//! started with, which opens the anonymous root, mounts and users' homes.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{Capabilities, Homes, LocalFs, MemoryFs, Storage};
use crate::config::StorageKind;
use crate::path::VirtualPath;

/// The server's storage backend.
#[derive(Debug)]
pub enum Backend {
    /// Local directories; homes are opened once and shared.
    Local {
        /// The homes sessions hold now.
        homes: Homes,
        /// `storage_thread_pool`.
        thread_pool: bool,
    },
    /// One in-memory tree.
    Memory(MemoryFs),
}

impl Backend {
    /// The backend `kind` names.
    pub fn new(kind: StorageKind, thread_pool: bool) -> Backend {
        match kind {
            StorageKind::Local => Backend::Local { homes: Homes::new(thread_pool), thread_pool },
            StorageKind::Memory { capacity } => Backend::Memory(MemoryFs::new(capacity)),
        }
    }

    /// What storage from this backend can do.
    pub fn capabilities(&self) -> Capabilities {
        match self {
            Backend::Local { .. } => Capabilities::ALL,
            Backend::Memory(fs) => fs.capabilities(),
        }
    }

    /// A root (the anonymous root, a mount) at `path`: a directory, or in
    /// memory the subtree there (`.` is the tree's root).
    ///
    /// # Errors
    /// Why the directory cannot be opened.
    pub fn open_root(&self, path: &Path) -> io::Result<Arc<dyn Storage>> {
        match self {
            Backend::Local { thread_pool, .. } => Ok(Arc::new(LocalFs::open(path, *thread_pool)?)),
            Backend::Memory(fs) => memory_view(fs, path),
        }
    }

    /// A user's home: shared with the user's other sessions.
    ///
    /// # Errors
    /// Why the home cannot be opened (missing, out of descriptors).
    pub fn open_home(&self, path: &Path) -> io::Result<Arc<dyn Storage>> {
        match self {
            Backend::Local { homes, .. } => Ok(homes.open(path)?),
            Backend::Memory(fs) => memory_view(fs, path),
        }
    }
}

/// The subtree of `fs` at `path` (made when missing).
fn memory_view(fs: &MemoryFs, path: &Path) -> io::Result<Arc<dyn Storage>> {
    let path = path.to_str().ok_or_else(|| io::Error::other(format!("{} is not UTF-8", path.display())))?;
    let view = if path == "." {
        fs.clone()
    } else {
        fs.subtree(&VirtualPath::root().resolve(path)).map_err(io::Error::other)?
    };
    Ok(Arc::new(view))
}
