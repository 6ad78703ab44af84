//! Accounts: who may log in, behind the [`Authenticator`] trait.
//!
//! An authenticator checks a name and password and hands back an
//! [`Account`]: what the user may do, the limits that apply, and the
//! storage the user works in (already opened: a session never sees a
//! path). The users file is one authenticator ([`UsersFileAuthenticator`]);
//! a database is another.

use std::sync::Arc;

use async_trait::async_trait;
use ferroftp_proto::Password;

use crate::auth::UsersFile;
use crate::permissions::Permissions;
use crate::storage::{Backend, Storage};

/// A user who logged in.
#[derive(Debug, Clone)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// What the user may do.
    pub permissions: Permissions,
    /// The user's file-creation mask, if it has its own.
    pub umask: Option<u32>,
    /// The user's home: the storage the session starts in.
    pub storage: Arc<dyn Storage>,
    /// Mount names the user may SMNT.
    pub mounts: Vec<String>,
    /// Upload limit per session, bytes per second.
    pub upload_rate: Option<u64>,
    /// Download limit per session, bytes per second.
    pub download_rate: Option<u64>,
    /// Most sessions of this user at once.
    pub max_sessions: Option<usize>,
    /// Most bytes the home may hold.
    pub quota_bytes: Option<u64>,
    /// Most files the home may hold.
    pub quota_files: Option<u64>,
}

/// Why a login was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// No such user or a wrong password: 530, counted towards a ban.
    #[error("login incorrect")]
    Credentials,
    /// The server cannot log anyone in now (the user's home cannot be
    /// opened, the user database is down): 421, not the client's fault.
    #[error("{0}")]
    Unavailable(String),
}

/// Checks names and passwords.
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The account `name` logs in to with `password`.
    ///
    /// # Errors
    /// [`AuthFailure`] naming why not.
    async fn authenticate(&self, name: &str, password: Password) -> Result<Account, AuthFailure>;
}

/// Users from a users file (argon2id hashes), homes from the server's
/// storage backend.
#[derive(Debug)]
pub struct UsersFileAuthenticator {
    users: Arc<UsersFile>,
    backend: Arc<Backend>,
    /// Password checks that may run at once, shared by every users file
    /// of the server (see `Context::password_checks`).
    checks: Arc<tokio::sync::Semaphore>,
}

impl UsersFileAuthenticator {
    /// Checks passwords against `users`, at most `checks` at once, and opens
    /// homes from `backend`.
    pub fn new(users: Arc<UsersFile>, backend: Arc<Backend>, checks: Arc<tokio::sync::Semaphore>) -> Self {
        UsersFileAuthenticator { users, backend, checks }
    }
}

#[async_trait]
impl Authenticator for UsersFileAuthenticator {
    async fn authenticate(&self, name: &str, password: Password) -> Result<Account, AuthFailure> {
        let users = Arc::clone(&self.users);
        let name = name.to_string();
        let permit = self.checks.acquire().await.map_err(|_| AuthFailure::Credentials)?;
        // argon2id takes tens of milliseconds of CPU: off the session's thread.
        let entry = tokio::task::spawn_blocking(move || users.verify(&name, &password.0).cloned()).await;
        drop(permit);
        let entry = entry.ok().flatten().ok_or(AuthFailure::Credentials)?;
        let storage = self.backend.open_home(&entry.home).map_err(|e| {
            tracing::warn!(user = %entry.name, home = %entry.home.display(), error = %e, "home directory unavailable");
            AuthFailure::Unavailable(format!("Cannot open your home directory ({e})"))
        })?;
        Ok(Account {
            permissions: entry.rights(),
            umask: entry.umask_bits(),
            storage,
            upload_rate: entry.upload_rate.filter(|r| *r > 0),
            download_rate: entry.download_rate.filter(|r| *r > 0),
            max_sessions: entry.max_sessions,
            quota_bytes: entry.quota_bytes,
            quota_files: entry.quota_files,
            name: entry.name,
            mounts: entry.mounts,
        })
    }
}
