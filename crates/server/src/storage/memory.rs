//! An in-memory tree of directories and files: ephemeral storage for
//! tests, demos and scratch drop boxes (`ferroftp serve --storage memory`).
//!
//! It makes no POSIX assumptions, which is what it is for besides its
//! uses: a second backend that keeps the storage boundary honest. Files
//! are shared byte buffers; an upload gathers its bytes apart and lands
//! in one step when it ends, so every upload is atomic here. The tree is
//! bounded: bytes stored plus bytes of uploads in flight never pass the
//! capacity (a full tree answers 452, as a full disk does). Permission
//! bits are not kept (SITE CHMOD is refused as unsupported).
//!
//! Several [`MemoryFs`] can share one tree, each seeing the subtree at its
//! base: virtual users' homes are such views.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use ferroftp_proto::listing::{EntryFacts, EntryKind, UniqueId};

use super::{
    Capabilities, Ending, OpenFile, Pending, Reader, Settled, SettledSender, Storage, StorageError, Upload,
    UploadOptions, WriteMode,
};
use crate::path::VirtualPath;

/// Capacity when none is given: big enough for a demo, small enough that
/// a forgotten test server cannot take the machine's memory.
pub const DEFAULT_CAPACITY: u64 = 1 << 30;

/// Longest name of an entry, in bytes, as on the local filesystems the
/// tree's files may be copied to.
const NAME_MAX: usize = 255;

/// What an entry costs against the capacity besides its bytes: names and
/// directories take memory too, so MKD alone cannot grow the tree
/// without bound.
pub const ENTRY_OVERHEAD: u64 = 64;

/// The capacity an entry named `name` takes besides its bytes.
fn entry_cost(name: &str) -> u64 {
    ENTRY_OVERHEAD + name.len() as u64
}

/// `name` as a new entry's name, or [`StorageError::InvalidName`].
fn new_name(name: &str) -> Result<&str, StorageError> {
    if name.len() > NAME_MAX {
        return Err(StorageError::InvalidName);
    }
    Ok(name)
}

/// The mode bits listings show (none are kept).
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// An entry of the tree.
#[derive(Debug)]
enum Node {
    Dir(Directory),
    File(File),
}

#[derive(Debug, Default)]
struct Directory {
    entries: BTreeMap<String, Node>,
    modified: i64,
    id: u64,
}

#[derive(Debug)]
struct File {
    bytes: Arc<Vec<u8>>,
    modified: i64,
    id: u64,
}

/// The tree and its accounting.
#[derive(Debug)]
struct Tree {
    root: Directory,
    /// Bytes in files plus bytes held by uploads in flight.
    used: u64,
    capacity: u64,
    /// The next entry's identifier (the MLSx `unique` fact).
    next_id: u64,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Tree {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn dir(&self, path: &[String]) -> Result<&Directory, StorageError> {
        let mut dir = &self.root;
        for name in path {
            dir = match dir.entries.get(name) {
                Some(Node::Dir(d)) => d,
                Some(Node::File(_)) => return Err(StorageError::NotADirectory),
                None => return Err(StorageError::NotFound),
            };
        }
        Ok(dir)
    }

    fn dir_mut(&mut self, path: &[String]) -> Result<&mut Directory, StorageError> {
        let mut dir = &mut self.root;
        for name in path {
            dir = match dir.entries.get_mut(name) {
                Some(Node::Dir(d)) => d,
                Some(Node::File(_)) => return Err(StorageError::NotADirectory),
                None => return Err(StorageError::NotFound),
            };
        }
        Ok(dir)
    }

    /// The directory holding `path` and `path`'s last name (`None` for the
    /// root itself).
    fn parent_mut<'p>(&mut self, path: &'p [String]) -> Result<(&mut Directory, Option<&'p str>), StorageError> {
        match path.split_last() {
            Some((name, parent)) => Ok((self.dir_mut(parent)?, Some(name))),
            None => Ok((&mut self.root, None)),
        }
    }

    fn file(&self, path: &[String]) -> Result<&File, StorageError> {
        let (name, parent) = path.split_last().ok_or(StorageError::IsADirectory)?;
        match self.dir(parent)?.entries.get(name) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(StorageError::IsADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    /// Takes `n` more bytes of the capacity, or says the tree is full.
    fn take(&mut self, n: u64) -> Result<(), StorageError> {
        match self.used.checked_add(n) {
            Some(next) if next <= self.capacity => {
                self.used = next;
                Ok(())
            }
            _ => Err(StorageError::NoSpace),
        }
    }

    fn give_back(&mut self, n: u64) {
        self.used = self.used.saturating_sub(n);
    }

    /// Puts `bytes` at `path`, replacing a file there (the caller counts
    /// the bytes).
    fn store(&mut self, path: &[String], bytes: Vec<u8>) -> Result<(), StorageError> {
        let id = self.id();
        let (name, parent) = path.split_last().ok_or(StorageError::IsADirectory)?;
        let dir = self.dir_mut(parent)?;
        if let Some(Node::Dir(_)) = dir.entries.get(name) {
            return Err(StorageError::IsADirectory);
        }
        let file = File { bytes: Arc::new(bytes), modified: now(), id };
        dir.entries.insert(name.clone(), Node::File(file));
        dir.modified = now();
        Ok(())
    }
}

fn facts(name: &str, node: &Node) -> EntryFacts {
    let (kind, size, modified, mode, nlink, id) = match node {
        Node::Dir(d) => (EntryKind::Directory, 0, d.modified, DIR_MODE, 2, d.id),
        Node::File(f) => (EntryKind::File, f.bytes.len() as u64, f.modified, FILE_MODE, 1, f.id),
    };
    EntryFacts {
        name: name.to_string(),
        kind,
        size,
        modified,
        mode,
        nlink,
        unique: Some(UniqueId { device: 0, inode: id }),
    }
}

/// A view of an in-memory tree at a base directory.
#[derive(Debug, Clone)]
pub struct MemoryFs {
    tree: Arc<Mutex<Tree>>,
    /// Where this view's `/` is in the tree.
    base: Vec<String>,
}

impl MemoryFs {
    /// An empty tree holding at most `capacity` bytes.
    pub fn new(capacity: u64) -> MemoryFs {
        let tree = Tree { root: Directory { modified: now(), ..Default::default() }, used: 0, capacity, next_id: 0 };
        MemoryFs { tree: Arc::new(Mutex::new(tree)), base: Vec::new() }
    }

    /// The view of the same tree at `path` (a home), made with its parents
    /// when missing.
    ///
    /// # Errors
    /// [`StorageError::NotADirectory`] when a file is in the way.
    pub fn subtree(&self, path: &VirtualPath) -> Result<MemoryFs, StorageError> {
        let mut tree = self.lock();
        let id = tree.id();
        let mut dir = tree.dir_mut(&self.base)?;
        for name in path.components() {
            let node = dir
                .entries
                .entry(name.to_string())
                .or_insert_with(|| Node::Dir(Directory { entries: BTreeMap::new(), modified: now(), id }));
            dir = match node {
                Node::Dir(d) => d,
                Node::File(_) => return Err(StorageError::NotADirectory),
            };
        }
        let mut base = self.base.clone();
        base.extend(path.components().map(String::from));
        Ok(MemoryFs { tree: Arc::clone(&self.tree), base })
    }

    fn lock(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `path` as names from the tree's root.
    fn full(&self, path: &VirtualPath) -> Vec<String> {
        self.base.iter().cloned().chain(path.components().map(String::from)).collect()
    }
}

/// A shared file's bytes, read through a cursor.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[async_trait]
impl Storage for MemoryFs {
    fn capabilities(&self) -> Capabilities {
        Capabilities { chmod: false, ..Capabilities::ALL }
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<EntryFacts, StorageError> {
        let full = self.full(path);
        let tree = self.lock();
        match full.split_last() {
            None => Ok(facts("/", &Node::Dir(Directory { modified: tree.root.modified, ..Default::default() }))),
            Some((name, parent)) => {
                tree.dir(parent)?.entries.get(name).map(|n| facts(name, n)).ok_or(StorageError::NotFound)
            }
        }
    }

    async fn list(&self, path: &VirtualPath) -> Result<Vec<EntryFacts>, StorageError> {
        let full = self.full(path);
        let tree = self.lock();
        Ok(tree.dir(&full)?.entries.iter().map(|(name, node)| facts(name, node)).collect())
    }

    async fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<OpenFile, StorageError> {
        let bytes = Arc::clone(&self.lock().file(&self.full(path))?.bytes);
        let size = bytes.len() as u64;
        let mut cursor = io::Cursor::new(SharedBytes(bytes));
        cursor.set_position(offset.min(size));
        Ok(OpenFile { reader: Reader::Stream(Box::new(cursor)), size })
    }

    async fn open_write(&self, path: &VirtualPath, options: UploadOptions) -> Result<Box<dyn Upload>, StorageError> {
        let full = self.full(path);
        let mut tree = self.lock();
        let (name, parent) = full.split_last().ok_or(StorageError::IsADirectory)?;
        new_name(name)?;
        let id = tree.id();
        let existed = match tree.dir(parent)?.entries.get(name) {
            Some(Node::Dir(_)) => return Err(StorageError::IsADirectory),
            Some(Node::File(_)) if options.mode == WriteMode::CreateNew => return Err(StorageError::AlreadyExists),
            Some(Node::File(_)) => true,
            None => false,
        };
        // A unique name (STOU) is taken at once, empty until the upload lands.
        if options.mode == WriteMode::CreateNew {
            tree.take(entry_cost(name))?;
            let file = File { bytes: Arc::new(Vec::new()), modified: now(), id };
            tree.dir_mut(parent)?.entries.insert(name.clone(), Node::File(file));
        }
        let (tx, rx) = Settled::channel();
        Ok(Box::new(MemoryUpload {
            tree: Arc::clone(&self.tree),
            path: full,
            options,
            existed,
            bytes: Vec::new(),
            ended: Some(tx),
            settled: Some(rx),
        }))
    }

    async fn mkdir(&self, path: &VirtualPath, _umask: u32) -> Result<(), StorageError> {
        let full = self.full(path);
        let mut tree = self.lock();
        let id = tree.id();
        let name = new_name(full.last().ok_or(StorageError::AlreadyExists)?)?;
        if tree.dir(&full[..full.len() - 1])?.entries.contains_key(name) {
            return Err(StorageError::AlreadyExists);
        }
        tree.take(entry_cost(name))?;
        let (dir, _) = tree.parent_mut(&full)?;
        dir.entries.insert(name.to_string(), Node::Dir(Directory { entries: BTreeMap::new(), modified: now(), id }));
        dir.modified = now();
        Ok(())
    }

    async fn rmdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let full = self.full(path);
        let mut tree = self.lock();
        let (dir, name) = tree.parent_mut(&full)?;
        let name = name.ok_or(StorageError::PermissionDenied)?;
        match dir.entries.get(name) {
            Some(Node::Dir(d)) if d.entries.is_empty() => {}
            Some(Node::Dir(_)) => return Err(StorageError::DirectoryNotEmpty),
            Some(Node::File(_)) => return Err(StorageError::NotADirectory),
            None => return Err(StorageError::NotFound),
        }
        dir.entries.remove(name);
        dir.modified = now();
        let freed = entry_cost(name);
        tree.give_back(freed);
        Ok(())
    }

    async fn delete(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let full = self.full(path);
        let mut tree = self.lock();
        let (dir, name) = tree.parent_mut(&full)?;
        let name = name.ok_or(StorageError::IsADirectory)?;
        let freed = match dir.entries.get(name) {
            Some(Node::File(f)) => f.bytes.len() as u64,
            Some(Node::Dir(_)) => return Err(StorageError::IsADirectory),
            None => return Err(StorageError::NotFound),
        };
        dir.entries.remove(name);
        dir.modified = now();
        let freed = freed + entry_cost(name);
        tree.give_back(freed);
        Ok(())
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        // A directory cannot move beneath itself.
        if to.is_beneath(from) {
            return Err(StorageError::InvalidName);
        }
        let (from, to) = (self.full(from), self.full(to));
        if from == to {
            return Ok(());
        }
        let mut tree = self.lock();
        let (to_name, to_parent) = to.split_last().ok_or(StorageError::PermissionDenied)?;
        let (from_name, from_parent) = from.split_last().ok_or(StorageError::PermissionDenied)?;
        let moving_dir = match tree.dir(from_parent)?.entries.get(from_name) {
            Some(node) => matches!(node, Node::Dir(_)),
            None => return Err(StorageError::NotFound),
        };
        new_name(to_name)?;
        // The replaced entry's bytes and name go; the moved one's name
        // changes length.
        let replaced = match tree.dir(to_parent)?.entries.get(to_name) {
            None => 0,
            Some(Node::File(f)) if !moving_dir => f.bytes.len() as u64 + entry_cost(to_name),
            Some(Node::Dir(d)) if moving_dir && d.entries.is_empty() => entry_cost(to_name),
            Some(Node::Dir(_)) if moving_dir => return Err(StorageError::DirectoryNotEmpty),
            Some(Node::Dir(_)) => return Err(StorageError::IsADirectory),
            Some(Node::File(_)) => return Err(StorageError::NotADirectory),
        };
        let (old_cost, new_cost) = (entry_cost(from_name), entry_cost(to_name));
        if new_cost > old_cost {
            tree.take(new_cost - old_cost)?;
        }
        let from_dir = tree.dir_mut(from_parent)?;
        let node = from_dir.entries.remove(from_name).ok_or(StorageError::NotFound)?;
        from_dir.modified = now();
        let to_dir = tree.dir_mut(to_parent)?;
        to_dir.entries.insert(to_name.clone(), node);
        to_dir.modified = now();
        tree.give_back(replaced + old_cost.saturating_sub(new_cost));
        Ok(())
    }

    async fn set_mode(&self, _path: &VirtualPath, _mode: u32) -> Result<(), StorageError> {
        Err(StorageError::Unsupported("SITE CHMOD"))
    }

    async fn set_mtime(&self, path: &VirtualPath, secs: i64) -> Result<(), StorageError> {
        let full = self.full(path);
        let mut tree = self.lock();
        let (dir, name) = tree.parent_mut(&full)?;
        match name.and_then(|n| dir.entries.get_mut(n)) {
            Some(Node::File(f)) => f.modified = secs,
            Some(Node::Dir(d)) => d.modified = secs,
            None => return Err(StorageError::NotFound),
        }
        Ok(())
    }

    async fn available(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        let tree = self.lock();
        tree.dir(&self.full(path))?;
        Ok(tree.capacity.saturating_sub(tree.used))
    }
}

/// An upload into the tree: its bytes gather here and land when it ends.
struct MemoryUpload {
    tree: Arc<Mutex<Tree>>,
    /// The target, from the tree's root.
    path: Vec<String>,
    options: UploadOptions,
    /// The target held a file when the upload began.
    existed: bool,
    /// What arrived (counted against the capacity).
    bytes: Vec<u8>,
    /// `None` once ended.
    ended: Option<SettledSender>,
    /// Until [`Upload::settled`] hands it out.
    settled: Option<Settled>,
}

impl MemoryUpload {
    fn lock(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lands what arrived on the target, as its mode says.
    fn land(&mut self) -> Result<(), StorageError> {
        let arrived = std::mem::take(&mut self.bytes);
        let held = arrived.len() as u64;
        let mut tree = self.lock();
        let before = tree.file(&self.path).ok().map(|f| Arc::clone(&f.bytes));
        let old_len = before.as_ref().map_or(0, |b| b.len() as u64);
        let bytes = match (self.options.mode, before) {
            (WriteMode::Append, Some(old)) => [old.as_slice(), &arrived].concat(),
            (WriteMode::At(offset), Some(old)) => {
                let keep = usize::try_from(offset).unwrap_or(usize::MAX).min(old.len());
                [&old[..keep], &arrived[..]].concat()
            }
            _ => arrived,
        };
        // Counted now: the old file and what arrived; landed: the new file
        // (and, for a new name, its entry).
        let len = bytes.len() as u64;
        let growth = len.saturating_sub(held + old_len);
        let entry = if old_len == 0 && tree.file(&self.path).is_err() {
            self.path.last().map_or(0, |name| entry_cost(name))
        } else {
            0
        };
        if let Err(e) = tree.take(growth + entry) {
            tree.give_back(held);
            return Err(e);
        }
        match tree.store(&self.path, bytes) {
            Ok(()) => {
                tree.used = (tree.used + len).saturating_sub(old_len + held + growth);
                Ok(())
            }
            Err(e) => {
                tree.give_back(held + growth + entry);
                Err(e)
            }
        }
    }

    /// Ends an upload that was not committed; see [`Upload::abort`].
    fn end_unfinished(&mut self, discard: bool) {
        let Some(ended) = self.ended.take() else { return };
        let replacing = self.options.atomic && self.options.mode == WriteMode::Truncate && self.existed;
        let keep = self.options.keep_partial && !discard && !replacing;
        let ending = if keep && self.land().is_ok() {
            Ending::Kept
        } else {
            let held = std::mem::take(&mut self.bytes).len() as u64;
            let mut tree = self.lock();
            tree.give_back(held);
            // The unique name STOU took goes again.
            if self.options.mode == WriteMode::CreateNew {
                if let Some((name, parent)) = self.path.split_last() {
                    let removed = tree.dir_mut(parent).ok().and_then(|dir| dir.entries.remove(name)).is_some();
                    if removed {
                        tree.give_back(entry_cost(name));
                    }
                }
            }
            Ending::Discarded
        };
        ended.send(ending);
    }
}

impl Upload for MemoryUpload {
    fn write(mut self: Box<Self>, mut batch: Vec<u8>) -> Pending<(Box<dyn Upload>, Vec<u8>)> {
        // Done now, not when the future is polled: a transfer dropped
        // before that (ABOR) must still find every byte it wrote.
        let taken = self.lock().take(batch.len() as u64);
        let result = match taken {
            Ok(()) => {
                self.bytes.extend_from_slice(&batch);
                batch.clear();
                Ok((self as Box<dyn Upload>, batch))
            }
            Err(e) => {
                self.end_unfinished(true);
                Err(e)
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn commit(mut self: Box<Self>, last: Vec<u8>, _whole: bool) -> Pending<()> {
        let taken = self.lock().take(last.len() as u64);
        let result = taken.and_then(|()| {
            self.bytes.extend_from_slice(&last);
            self.land()
        });
        match &result {
            Ok(()) => {
                if let Some(ended) = self.ended.take() {
                    ended.send(Ending::Committed);
                }
            }
            Err(_) => self.end_unfinished(true),
        }
        Box::pin(std::future::ready(result))
    }

    fn abort(mut self: Box<Self>, discard: bool) -> Pending<()> {
        self.end_unfinished(discard);
        Box::pin(std::future::ready(Ok(())))
    }

    fn settled(&mut self) -> Option<Settled> {
        self.settled.take()
    }
}

impl Drop for MemoryUpload {
    fn drop(&mut self) {
        self.end_unfinished(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn path(p: &str) -> VirtualPath {
        VirtualPath::root().resolve(p)
    }

    fn options(mode: WriteMode) -> UploadOptions {
        UploadOptions { mode, umask: 0o022, atomic: true, keep_partial: false, sync: false }
    }

    async fn put(fs: &MemoryFs, p: &str, mode: WriteMode, bytes: &[u8]) -> Result<(), StorageError> {
        let upload = fs.open_write(&path(p), options(mode)).await?;
        let (upload, _) = upload.write(bytes.to_vec()).await?;
        upload.commit(Vec::new(), false).await
    }

    async fn get(fs: &MemoryFs, p: &str, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        fs.open_read(&path(p), offset).await.unwrap().reader.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn files_and_directories_round_trip() {
        let fs = MemoryFs::new(1 << 20);
        fs.mkdir(&path("d"), 0).await.unwrap();
        put(&fs, "d/f", WriteMode::Truncate, b"hello").await.unwrap();
        put(&fs, "d/f", WriteMode::Append, b" world").await.unwrap();
        assert_eq!(get(&fs, "d/f", 0).await, b"hello world");
        assert_eq!(get(&fs, "d/f", 6).await, b"world");
        put(&fs, "d/f", WriteMode::At(5), b"!").await.unwrap();
        assert_eq!(get(&fs, "d/f", 0).await, b"hello!");
        let listed = fs.list(&path("d")).await.unwrap();
        assert_eq!((listed[0].name.as_str(), listed[0].size), ("f", 6));
        assert!(matches!(fs.rmdir(&path("d")).await, Err(StorageError::DirectoryNotEmpty)));
        fs.rename(&path("d"), &path("e")).await.unwrap();
        assert!(matches!(fs.rename(&path("e"), &path("e/x")).await, Err(StorageError::InvalidName)));
        fs.delete(&path("e/f")).await.unwrap();
        fs.rmdir(&path("e")).await.unwrap();
        assert!(fs.list(&VirtualPath::root()).await.unwrap().is_empty());
        assert_eq!(fs.available(&VirtualPath::root()).await.unwrap(), 1 << 20, "bytes still counted");
    }

    #[tokio::test]
    async fn a_full_tree_refuses_and_keeps_nothing() {
        let entry = entry_cost("a");
        let fs = MemoryFs::new(200);
        put(&fs, "a", WriteMode::Truncate, b"12345678").await.unwrap();
        assert_eq!(fs.available(&VirtualPath::root()).await.unwrap(), 200 - 8 - entry);
        let mut upload = fs
            .open_write(&path("b"), UploadOptions { keep_partial: true, ..options(WriteMode::Truncate) })
            .await
            .unwrap();
        let settled = upload.settled().unwrap();
        let (upload, _) = upload.write(b"12".to_vec()).await.unwrap();
        assert!(matches!(upload.write(vec![0; 200]).await, Err(StorageError::NoSpace)));
        assert_eq!(settled.wait().await, Ending::Discarded);
        assert!(matches!(fs.metadata(&path("b")).await, Err(StorageError::NotFound)));
        assert_eq!(fs.available(&VirtualPath::root()).await.unwrap(), 200 - 8 - entry, "the part's bytes came back");
        // A replacing upload needs room beside the old file until it lands.
        let room = 200 - 8 - entry;
        assert!(matches!(
            put(&fs, "a", WriteMode::Truncate, &vec![1; room as usize + 1]).await,
            Err(StorageError::NoSpace)
        ));
        put(&fs, "a", WriteMode::Truncate, b"ab").await.unwrap();
        assert_eq!(fs.available(&VirtualPath::root()).await.unwrap(), 200 - 2 - entry);
        put(&fs, "a", WriteMode::Append, b"cdefgh").await.unwrap();
        assert_eq!(get(&fs, "a", 0).await, b"abcdefgh");
        // Names and directories count too: MKD alone cannot fill memory.
        let mut made = 0;
        while fs.mkdir(&path(&format!("d{made}")), 0).await.is_ok() {
            made += 1;
        }
        assert!(made < 3, "{made} directories in {room} bytes");
        assert!(matches!(fs.mkdir(&path(&"n".repeat(256)), 0).await, Err(StorageError::InvalidName)));
    }

    #[tokio::test]
    async fn a_broken_upload_keeps_the_old_file_or_its_part() {
        let fs = MemoryFs::new(1 << 20);
        put(&fs, "old", WriteMode::Truncate, b"old").await.unwrap();
        let keep = |mode| UploadOptions { keep_partial: true, ..options(mode) };
        let (upload, _) =
            fs.open_write(&path("old"), keep(WriteMode::Truncate)).await.unwrap().write(b"x".to_vec()).await.unwrap();
        drop(upload);
        assert_eq!(get(&fs, "old", 0).await, b"old", "a replacing upload's part took the old file's place");
        let (upload, _) = fs
            .open_write(&path("new"), keep(WriteMode::Truncate))
            .await
            .unwrap()
            .write(b"part".to_vec())
            .await
            .unwrap();
        drop(upload);
        assert_eq!(get(&fs, "new", 0).await, b"part");
    }

    #[tokio::test]
    async fn views_share_one_tree() {
        let fs = MemoryFs::new(1 << 20);
        let home = fs.subtree(&path("home/alice")).unwrap();
        put(&home, "f", WriteMode::Truncate, b"x").await.unwrap();
        assert_eq!(get(&fs, "home/alice/f", 0).await, b"x");
        assert!(matches!(home.metadata(&path("../../home")).await, Err(StorageError::NotFound)), "left its base");
    }
}
