//! Replaced files, let go on a thread of their own.
//!
//! When an atomic upload's rename replaces a file, the kernel frees the
//! old file (its pages, its blocks, its inode) as its last reference
//! goes: inside the rename, before the client gets its 226, unless
//! something else still holds it. The writer holds it (an O_PATH
//! descriptor taken just before the rename) and hands it here; one thread
//! closes what it is given, a burst at a time, so the freeing happens
//! beside the replies instead of before them (the idea of XFS's
//! background inode inactivation). The thread waits without waking while
//! there is nothing to release. At most [`QUEUE`] files wait for it: past
//! that (big files replaced faster than they can be freed) the upload
//! frees its own, as without this thread, so descriptors and unfreed
//! space stay bounded.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// How long the thread lets replaced files gather after the first of a
/// burst, so a steady stream of uploads wakes it about 200 times a second
/// at most rather than once per file.
const GATHER: Duration = Duration::from_millis(5);

/// Most replaced files waiting for the thread.
const QUEUE: usize = 256;

/// Closes `file` on the release thread; in place when the thread could
/// not be started.
pub(super) fn release_later(file: cap_std::fs::File) {
    static RELEASER: OnceLock<Option<SyncSender<cap_std::fs::File>>> = OnceLock::new();
    let releaser = RELEASER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<cap_std::fs::File>(QUEUE);
        let started = std::thread::Builder::new().name("ferroftp-release".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                drop(first);
                std::thread::sleep(GATHER);
                rx.try_iter().for_each(drop);
            }
        });
        started.ok().map(|_| tx)
    });
    match releaser {
        Some(tx) => {
            // A full queue, or (never while the process runs) a thread
            // gone: the file comes back in the error and is closed here.
            if let Err(TrySendError::Full(file) | TrySendError::Disconnected(file)) = tx.try_send(file) {
                drop(file);
            }
        }
        None => drop(file),
    }
}
