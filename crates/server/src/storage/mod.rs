//! Storage: the trait every backend implements, what a backend can do
//! ([`Capabilities`]), and its error type.
//!
//! The trait is shaped for a POSIX directory and an object store alike:
//! whole-path operations, reads from an offset, uploads behind
//! [`Upload`]. Paths are always [`VirtualPath`]s, already normalized.
//! Listing formats are not the backend's business: it returns
//! [`EntryFacts`] and the session formats. Names a backend uses for its
//! own work (the local backend's temporary upload files) never reach a
//! client: they are left out of listings and are not found by name.

mod backend;
pub mod local;
pub mod memory;
mod upload;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use ferroftp_proto::code;
use ferroftp_proto::listing::EntryFacts;
use tokio::io::{AsyncRead, ReadBuf};

use crate::path::VirtualPath;

pub use backend::Backend;
pub use local::homes::Homes;
pub use local::LocalFs;
pub use memory::MemoryFs;
pub use upload::{Ending, Pending, Settled, SettledSender, SpliceTarget, Upload, UploadOptions, WriteMode};

/// A byte stream read from storage.
pub enum Reader {
    /// A local file, read in place; a plain binary download sends it with
    /// sendfile(2), without copying it through the server.
    File(std::fs::File),
    /// Any other stream: a listing, a file read on the blocking pool.
    Stream(Box<dyn AsyncRead + Send + Unpin>),
}

impl Reader {
    /// A reader over bytes already in memory (a listing).
    pub fn bytes(bytes: Vec<u8>) -> Reader {
        Reader::Stream(Box::new(io::Cursor::new(bytes)))
    }
}

/// A file opened for reading, with its size (one open and one stat: a
/// download needs no separate metadata call).
pub struct OpenFile {
    /// The bytes, from the offset asked for.
    pub reader: Reader,
    /// The whole file's size when opened.
    pub size: u64,
}

// Local files are read in place: a read of the page cache takes
// microseconds, far less than handing it to another thread and back
// (measured in docs/BENCHMARKS.md). Backends that can stall return
// `Stream` instead.
impl AsyncRead for Reader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Reader::File(file) => {
                let n = io::Read::read(file, buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Reader::Stream(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

/// What went wrong in a storage operation, and the reply it maps to.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such file or directory: 550.
    #[error("No such file or directory")]
    NotFound,
    /// Permission denied, or the path would leave the root: 550.
    #[error("Permission denied")]
    PermissionDenied,
    /// The name exists already: 550 (553 for STOU name choice).
    #[error("File exists")]
    AlreadyExists,
    /// A directory was expected: 550.
    #[error("Not a directory")]
    NotADirectory,
    /// A file was expected: 550.
    #[error("Is a directory")]
    IsADirectory,
    /// RMD of a directory that still has entries: 550.
    #[error("Directory not empty")]
    DirectoryNotEmpty,
    /// The disk is full: 452.
    #[error("Insufficient storage space")]
    NoSpace,
    /// A quota was exceeded: 552.
    #[error("Exceeded storage allocation")]
    QuotaExceeded,
    /// The name cannot be stored: 553.
    #[error("File name not allowed")]
    InvalidName,
    /// The backend cannot do this (see [`Capabilities`]): 502.
    #[error("{0} is not supported by this storage")]
    Unsupported(&'static str),
    /// Any other I/O failure: 451.
    #[error("Local error: {0}")]
    Io(io::Error),
}

impl StorageError {
    /// The reply code for this error.
    pub fn reply_code(&self) -> u16 {
        match self {
            StorageError::NotFound
            | StorageError::PermissionDenied
            | StorageError::AlreadyExists
            | StorageError::NotADirectory
            | StorageError::IsADirectory
            | StorageError::DirectoryNotEmpty => code::FILE_UNAVAILABLE,
            StorageError::NoSpace => code::INSUFFICIENT_STORAGE,
            StorageError::QuotaExceeded => code::EXCEEDED_STORAGE,
            StorageError::InvalidName => code::FILE_NAME_NOT_ALLOWED,
            StorageError::Unsupported(_) => code::NOT_IMPLEMENTED,
            StorageError::Io(_) => code::LOCAL_ERROR,
        }
    }

    /// Whether an upload that failed with this error must leave nothing
    /// behind, whatever `partial_uploads` says: a part kept on a full disk
    /// or over a quota would make the next upload fail too.
    pub fn discards_partial(&self) -> bool {
        matches!(self, StorageError::NoSpace | StorageError::QuotaExceeded)
    }
}

/// What a backend can do beyond reading, listing, creating, deleting and
/// whole-file uploads. A command that needs a missing capability is
/// refused with a reply naming why, and FEAT and HELP leave it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Add to the end of a file (APPE).
    pub append: bool,
    /// Continue an upload at an offset inside a file (REST + STOR).
    pub write_at: bool,
    /// Rename a file (RNFR/RNTO).
    pub rename_files: bool,
    /// Rename a directory with everything in it.
    pub rename_dirs: bool,
    /// Set permission bits (SITE CHMOD).
    pub chmod: bool,
    /// Set a file's modification time (MFMT).
    pub set_mtime: bool,
    /// Tell the free space (AVBL).
    pub free_space: bool,
}

impl Capabilities {
    /// Everything: a POSIX directory.
    pub const ALL: Capabilities = Capabilities {
        append: true,
        write_at: true,
        rename_files: true,
        rename_dirs: true,
        chmod: true,
        set_mtime: true,
        free_space: true,
    };
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        use io::ErrorKind as K;
        match e.kind() {
            K::NotFound => StorageError::NotFound,
            K::PermissionDenied => StorageError::PermissionDenied,
            K::AlreadyExists => StorageError::AlreadyExists,
            K::NotADirectory => StorageError::NotADirectory,
            K::IsADirectory => StorageError::IsADirectory,
            K::DirectoryNotEmpty => StorageError::DirectoryNotEmpty,
            K::StorageFull => StorageError::NoSpace,
            K::QuotaExceeded => StorageError::QuotaExceeded,
            K::InvalidFilename => StorageError::InvalidName,
            _ => match e.raw_os_error() {
                // cap-std reports an escape attempt (a symlink pointing out
                // of the root, say) as EPERM/EACCES or its own error.
                Some(1) | Some(13) => StorageError::PermissionDenied,
                Some(36) => StorageError::InvalidName,
                Some(40) => StorageError::PermissionDenied, // ELOOP
                _ => StorageError::Io(e),
            },
        }
    }
}

/// A place files live: a local directory, memory, an object store.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// What this backend can do; the others' methods answer
    /// [`StorageError::Unsupported`].
    fn capabilities(&self) -> Capabilities;
    /// Facts about one entry (following symlinks that stay inside).
    async fn metadata(&self, path: &VirtualPath) -> Result<EntryFacts, StorageError>;
    /// The entries of a directory, sorted by name.
    async fn list(&self, path: &VirtualPath) -> Result<Vec<EntryFacts>, StorageError>;
    /// Opens a file for reading from `offset`; a directory is
    /// [`StorageError::IsADirectory`].
    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<OpenFile, StorageError>;
    /// Starts an upload to `path`.
    async fn open_write(&self, path: &VirtualPath, options: UploadOptions) -> Result<Box<dyn Upload>, StorageError>;
    /// Creates a directory.
    async fn mkdir(&self, path: &VirtualPath, umask: u32) -> Result<(), StorageError>;
    /// Removes an empty directory.
    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Deletes a file.
    async fn delete(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Renames a file or directory.
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError>;
    /// Sets permission bits.
    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<(), StorageError>;
    /// Sets the modification time, seconds since the epoch (MFMT).
    async fn set_mtime(&self, path: &VirtualPath, secs: i64) -> Result<(), StorageError>;
    /// Bytes free for new data beneath `path` (AVBL).
    async fn available(&self, path: &VirtualPath) -> Result<u64, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_the_right_replies() {
        let code_of = |kind: io::ErrorKind| StorageError::from(io::Error::from(kind)).reply_code();
        assert_eq!(code_of(io::ErrorKind::NotFound), 550);
        assert_eq!(code_of(io::ErrorKind::PermissionDenied), 550); // EACCES
        assert_eq!(code_of(io::ErrorKind::StorageFull), 452); // ENOSPC
        assert_eq!(code_of(io::ErrorKind::QuotaExceeded), 552); // EDQUOT
        assert_eq!(code_of(io::ErrorKind::InvalidFilename), 553);
        assert_eq!(code_of(io::ErrorKind::Other), 451);
        assert_eq!(StorageError::from(io::Error::from_raw_os_error(13)).reply_code(), 550); // EACCES
        assert_eq!(StorageError::from(io::Error::from_raw_os_error(28)).reply_code(), 452); // ENOSPC
        assert_eq!(StorageError::from(io::Error::from_raw_os_error(122)).reply_code(), 552); // EDQUOT
        assert_eq!(StorageError::from(io::Error::from_raw_os_error(36)).reply_code(), 553); // ENAMETOOLONG
        assert_eq!(StorageError::from(io::Error::from_raw_os_error(5)).reply_code(), 451);
        // EIO
    }
}
