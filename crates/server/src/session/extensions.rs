//! The extensions modern clients rely on: MLST and MLSD (RFC 3659), MFMT,
//! HASH, AVBL, and HOST (RFC 7151). CLNT is answered in `commands`, FEAT
//! and OPTS in `status`.

use std::sync::Arc;

use ferroftp_proto::listing::{mdtm_timestamp, mlsx_line, write_mlsx_line, EntryFacts, EntryKind};
use ferroftp_proto::{code, Reply};
use tokio::io::AsyncReadExt;

use super::commands::unsupported;
use super::{Action, LoginState, Session, Subject};
use crate::events::{Direction, FileOp};
use crate::hashing::HashAlgorithm;
use crate::path::VirtualPath;
use crate::permissions::Permission;
use crate::storage::Reader;
use crate::transfer::Job;

fn reply(code: u16, text: impl Into<String>) -> Action {
    Action::Reply(Reply::new(code, text))
}

/// Bytes of an MLSD line, about: the listing's buffer is sized with it.
const MLSX_LINE: usize = 120;

/// Bytes hashed per read.
const HASH_CHUNK: usize = 64 * 1024;

/// The digest of everything `reader` holds, in hex. A local file is read
/// on the blocking pool: its reads never wait, so hashing it in place
/// would hold the session's thread (and every session on it) for as long
/// as a big file takes.
async fn hash_all(reader: Reader, algorithm: HashAlgorithm) -> std::io::Result<String> {
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; HASH_CHUNK];
    match reader {
        Reader::File(mut file) => tokio::task::spawn_blocking(move || loop {
            match std::io::Read::read(&mut file, &mut buf)? {
                0 => return Ok(hasher.finish_hex()),
                n => hasher.update(&buf[..n]),
            }
        })
        .await
        .map_err(std::io::Error::other)?,
        mut stream => loop {
            match stream.read(&mut buf).await? {
                0 => return Ok(hasher.finish_hex()),
                n => hasher.update(&buf[..n]),
            }
        },
    }
}

impl Session {
    /// The MLSx `perm` fact: what this user may do with the entry.
    fn perm_fact(&self, kind: EntryKind) -> String {
        let may = |p: Permission| self.may(p);
        let mut out = String::new();
        let mut push = |c: char, ok: bool| {
            if ok {
                out.push(c);
            }
        };
        if kind == EntryKind::Directory {
            push('c', may(Permission::Write));
            push('d', may(Permission::Rmdir));
            push('e', true);
            push('f', may(Permission::Rename));
            push('l', may(Permission::List));
            push('m', may(Permission::Mkdir));
            push('p', may(Permission::Delete));
        } else {
            push('a', may(Permission::Append) || may(Permission::Write));
            push('d', may(Permission::Delete));
            push('f', may(Permission::Rename));
            push('r', may(Permission::Read));
            push('w', may(Permission::Write));
        }
        out
    }

    fn facts_line(&self, entry: &EntryFacts, cdir: bool, name: &str) -> String {
        mlsx_line(entry, &self.mlst_facts, cdir.then_some("cdir"), &self.perm_fact(entry.kind), name)
    }

    pub(super) async fn mlst(&mut self, arg: Option<&str>) -> Action {
        if !self.may(Permission::List) {
            return reply(code::FILE_UNAVAILABLE, "Permission denied.");
        }
        let path = arg.map_or_else(|| self.cwd.clone(), |a| self.cwd.resolve(a));
        match self.storage().metadata(&path).await {
            Ok(facts) => {
                let line = self.facts_line(&facts, false, &path.to_string());
                Action::Reply(Reply::multi(code::FILE_ACTION_OK, format!("Listing {path}"), vec![line], "End"))
            }
            Err(e) => reply(e.reply_code(), format!("MLST {path}: {e}.")),
        }
    }

    pub(super) async fn mlsd(&mut self, arg: Option<&str>) -> Action {
        if !self.may(Permission::List) {
            return reply(code::FILE_UNAVAILABLE, "Permission denied.");
        }
        let path = arg.map_or_else(|| self.cwd.clone(), |a| self.cwd.resolve(a));
        let storage = self.storage();
        let dir = match storage.metadata(&path).await {
            Ok(f) if f.kind == EntryKind::Directory => f,
            Ok(_) => return reply(code::SYNTAX_ERROR_ARGS, format!("MLSD {path}: not a directory.")),
            Err(e) => return reply(e.reply_code(), format!("MLSD {path}: {e}.")),
        };
        let entries = match storage.list(&path).await {
            Ok(e) => e,
            Err(e) => return reply(e.reply_code(), format!("MLSD {path}: {e}.")),
        };
        // One buffer for the whole listing; the perm fact depends only on
        // the kind, so it is worked out once per kind.
        let mut text = String::with_capacity((entries.len() + 1) * MLSX_LINE);
        let (dir_perm, file_perm) = (self.perm_fact(EntryKind::Directory), self.perm_fact(EntryKind::File));
        write_mlsx_line(&mut text, &dir, &self.mlst_facts, Some("cdir"), &dir_perm, ".");
        text.push_str("\r\n");
        for e in &entries {
            let perm = if e.kind == EntryKind::Directory { &dir_perm } else { &file_perm };
            write_mlsx_line(&mut text, e, &self.mlst_facts, None, perm, &e.name);
            text.push_str("\r\n");
        }
        let bytes = text.into_bytes();
        self.begin_transfer(
            Reply::new(code::OPENING_DATA, "Here comes the directory listing."),
            Job::Send { source: Reader::bytes(bytes), ascii: false, len: None },
            Subject { direction: Direction::Listing, description: "MLSD".into(), path },
            "Directory send OK.".into(),
            None,
        )
        .await
    }

    pub(super) async fn mfmt(&mut self, time: i64, arg: &str) -> Action {
        if !self.may(Permission::Write) {
            return reply(code::FILE_UNAVAILABLE, "Permission denied.");
        }
        let path = self.cwd.resolve(arg);
        let storage = self.storage();
        if !storage.capabilities().set_mtime {
            return unsupported("MFMT");
        }
        match storage.metadata(&path).await {
            Ok(f) if f.kind == EntryKind::File => {}
            Ok(_) => return reply(code::FILE_UNAVAILABLE, format!("MFMT {arg}: not a regular file.")),
            Err(e) => return reply(e.reply_code(), format!("MFMT {arg}: {e}.")),
        }
        match storage.set_mtime(&path, time).await {
            Ok(()) => {
                self.file_changed(|| FileOp::SetMtime { path: path.to_string(), secs: time });
                reply(code::FILE_STATUS, format!("Modify={}; {arg}", mdtm_timestamp(time)))
            }
            Err(e) => reply(e.reply_code(), format!("MFMT {arg}: {e}.")),
        }
    }

    pub(super) async fn hash(&mut self, arg: &str) -> Action {
        if !self.may(Permission::Read) {
            return reply(code::FILE_UNAVAILABLE, "Permission denied.");
        }
        let path = self.cwd.resolve(arg);
        let storage = self.storage();
        let facts = match storage.metadata(&path).await {
            Ok(f) if f.kind == EntryKind::Directory => {
                return reply(code::FILE_NAME_NOT_ALLOWED, format!("HASH {arg}: is a directory."))
            }
            Ok(f) => f,
            Err(e) => return reply(e.reply_code(), format!("HASH {arg}: {e}.")),
        };
        let reader = match storage.open_read(&path, 0).await {
            Ok(opened) => opened.reader,
            Err(e) => return reply(e.reply_code(), format!("HASH {arg}: {e}.")),
        };
        let digest = match hash_all(reader, self.hash).await {
            Ok(digest) => digest,
            Err(e) => return reply(code::LOCAL_ERROR, format!("HASH {arg}: {e}.")),
        };
        // The range is inclusive: a 100-byte file is 0-99.
        let end = facts.size.saturating_sub(1);
        reply(code::FILE_STATUS, format!("{} 0-{end} {digest} {arg}", self.hash.name()))
    }

    pub(super) async fn avbl(&mut self, arg: Option<&str>) -> Action {
        let path = arg.map_or_else(|| self.cwd.clone(), |a| self.cwd.resolve(a));
        if !self.storage().capabilities().free_space {
            return unsupported("AVBL");
        }
        let free = match self.storage().available(&path).await {
            Ok(free) => free,
            Err(e) => return reply(e.reply_code(), format!("AVBL {path}: {e}.")),
        };
        // A quota may leave less than the disk has.
        let free = match self.logged_in().and_then(|l| l.quota.as_ref()) {
            Some(q) => q.max_bytes.map_or(free, |max| free.min(max.saturating_sub(q.usage.bytes()))),
            None => free,
        };
        reply(code::FILE_STATUS, free.to_string())
    }

    /// HOST (RFC 7151): before USER, pick a virtual host.
    pub(super) fn host(&mut self, name: &str) -> Action {
        if !matches!(self.login, LoginState::AwaitingUser) {
            return reply(code::BAD_SEQUENCE, "HOST must come before USER.");
        }
        if self.ctx.hosts.is_empty() {
            // No virtual hosts: every name is this server.
            self.cwd = VirtualPath::root();
            return reply(code::SERVICE_READY, format!("Host {name} is this server."));
        }
        match self.ctx.hosts.get(name) {
            Some(host) => {
                self.host = Some(Arc::clone(host));
                self.cwd = VirtualPath::root();
                reply(code::SERVICE_READY, format!("Welcome to {name}."))
            }
            None => reply(code::NOT_IMPLEMENTED_FOR_PARAMETER, format!("Unknown host {name:?}.")),
        }
    }
}
