//! Command handlers: each takes the parsed command and returns an
//! [`Action`] (a reply, a close, or a transfer to start). They never write
//! to the connection themselves.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

use ferroftp_proto::hostport::{self, EpsvArg};
use ferroftp_proto::listing::{mdtm_timestamp, write_ls_line, EntryKind};
use ferroftp_proto::reply::quote_path;
use ferroftp_proto::{code, Command, Password, Reply, SiteCommand, TransferType};

use super::{
    Action, KeptListener, Login, LoginState, Session, Subject, TransferStart, DEFAULT_UMASK, PASSIVE_KEEP,
    PASSIVE_KEEP_MIN_RANGE,
};
use crate::accounts::AuthFailure;
use crate::auth::ANONYMOUS_NAMES;
use crate::config::PartialUploads;
use crate::events::{DataMode, Direction, Event, FileOp, Kind, LoginRefused};
use crate::path::VirtualPath;
use crate::permissions::Permission;
use crate::quota::{Quota, UploadCharge, Usage};
use crate::storage::{OpenFile, Reader, Storage, StorageError, Upload, UploadOptions, WriteMode};
use crate::transfer::connection::{listen_passive, DataSetup};
use crate::transfer::{Job, UploadEnd};
use std::sync::Weak;

/// Bytes of an `ls -l` line besides the name, about: the buffer for a
/// listing is sized with it once instead of growing.
const LS_LINE_BESIDES_NAME: usize = 66;

/// Names STOU tries (`name`, `name.1`, ...) before giving up.
const STOU_TRIES: u32 = 1000;

/// Shortest and longest idle timeouts SITE IDLE accepts, seconds.
const SITE_IDLE_RANGE: std::ops::RangeInclusive<u64> = 30..=7200;

fn reply(code: u16, text: impl Into<String>) -> Action {
    Action::Reply(Reply::new(code, text))
}

/// 502 for a command the session's storage cannot carry out.
pub(super) fn unsupported(what: &str) -> Action {
    reply(code::NOT_IMPLEMENTED, format!("{what} is not supported by this storage."))
}

fn storage_error(what: &str, e: &StorageError) -> Action {
    reply(e.reply_code(), format!("{what}: {e}."))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// 552 when a new file would exceed the user's file quota.
fn quota_refuses_new_file(quota: &Quota, new_file: bool) -> Option<Action> {
    (new_file && !quota.file_fits()).then(|| {
        reply(code::EXCEEDED_STORAGE, format!("Quota exceeded: at most {} files.", quota.max_files.unwrap_or_default()))
    })
}

/// Splits `ls`-style options (`-la`) from a LIST/NLST argument.
fn strip_list_options(arg: Option<&str>) -> Option<&str> {
    let mut rest = arg?.trim_start();
    while rest.starts_with('-') {
        match rest.find(' ') {
            Some(i) => rest = rest[i + 1..].trim_start(),
            None => return None,
        }
    }
    (!rest.is_empty()).then_some(rest)
}

impl Session {
    pub(super) fn logged_in(&self) -> Option<&Login> {
        match &self.login {
            LoginState::LoggedIn(l) => Some(l),
            _ => None,
        }
    }

    /// Answers one command.
    pub(super) async fn apply(&mut self, cmd: Command) -> Action {
        // RNTO must come right after RNFR: any other command forgets it.
        let rename_from = self.rename_from.take();
        let may_before_login = matches!(
            cmd,
            Command::User(_)
                | Command::Pass(_)
                | Command::Quit
                | Command::Help(_)
                | Command::Feat
                | Command::Syst
                | Command::Noop
                | Command::Clnt(_)
                | Command::Opts(_)
                | Command::Host(_)
                | Command::Auth(_)
                | Command::Pbsz(_)
                | Command::Prot(_)
                | Command::Ccc
        );
        if !may_before_login && self.logged_in().is_none() {
            return reply(code::NOT_LOGGED_IN, "Please login with USER and PASS.");
        }
        match cmd {
            Command::User(name) => self.user(name),
            Command::Pass(password) => self.pass(password).await,
            Command::Acct(_) => reply(code::SUPERFLUOUS, "ACCT not needed: already logged in."),
            Command::Quit => Action::Close(Reply::new(code::CLOSING, "Goodbye.")),
            Command::Rein if self.tls.is_some() => {
                reply(code::NOT_IMPLEMENTED, "REIN is not available on a TLS connection; reconnect instead.")
            }
            Command::Rein => {
                self.reinitialize();
                reply(code::SERVICE_READY, "Service ready for new user.")
            }
            Command::Noop => reply(code::OK, "NOOP ok."),
            Command::Syst => reply(code::SYSTEM_TYPE, "UNIX Type: L8"),
            Command::Help(arg) => self.help(arg.as_deref()),
            Command::Feat => self.feat(),
            Command::Opts(arg) => self.opts(arg),
            Command::Stat(arg) => self.stat(arg.as_deref()).await,
            Command::Type(t) => {
                self.transfer_type = t;
                match t {
                    TransferType::Ascii => reply(code::OK, "Switching to ASCII mode."),
                    TransferType::Binary => reply(code::OK, "Switching to Binary mode."),
                }
            }
            Command::Mode => reply(code::OK, "Mode set to S."),
            Command::Stru => reply(code::OK, "Structure set to F."),
            Command::Allo(_) => reply(code::SUPERFLUOUS, "ALLO command ignored: no allocation needed."),
            Command::Rest(offset) => {
                self.restart_offset = offset;
                reply(code::PENDING_FURTHER_INFO, format!("Restart position accepted ({offset})."))
            }
            Command::Pwd => {
                reply(code::PATHNAME_CREATED, format!("{} is the current directory", quote_path(&self.cwd.to_string())))
            }
            Command::Cwd(arg) => self.cwd(&arg).await,
            Command::Cdup => self.cwd("..").await,
            Command::Smnt(name) => self.smnt(&name),
            Command::Mkd(arg) => self.mkd(&arg).await,
            Command::Rmd(arg) => {
                self.simple_write("Remove directory", Permission::Rmdir, &arg, FileOp::Rmdir, |s, p| {
                    Box::pin(async move { s.rmdir(&p).await })
                })
                .await
            }
            Command::Dele(arg) => self.dele(&arg).await,
            Command::Rnfr(arg) => self.rnfr(&arg).await,
            Command::Rnto(arg) => self.rnto(rename_from, &arg).await,
            Command::Site(site) => self.site(site).await,
            Command::Size(arg) => self.size(&arg).await,
            Command::Mdtm(arg) => self.mdtm(&arg).await,
            Command::Pasv => self.pasv().await,
            Command::Epsv(arg) => self.epsv(arg).await,
            Command::Port(addr) => self.port(SocketAddr::V4(addr), "PORT"),
            Command::Eprt(addr) => self.port(addr, "EPRT"),
            Command::Abor => {
                self.data = None;
                reply(code::CLOSING_DATA, "No transfer to abort.")
            }
            Command::Retr(arg) => self.retr(&arg).await,
            Command::Stor(arg) => self.store(&arg, false).await,
            Command::Appe(arg) => self.store(&arg, true).await,
            Command::Stou(hint) => self.stou(hint.as_deref()).await,
            Command::List(arg) => self.list(arg.as_deref(), false).await,
            Command::Mlst(arg) => self.mlst(arg.as_deref()).await,
            Command::Mlsd(arg) => self.mlsd(arg.as_deref()).await,
            Command::Mfmt { time, path } => self.mfmt(time, &path).await,
            Command::Hash(arg) => self.hash(&arg).await,
            Command::Avbl(arg) => self.avbl(arg.as_deref()).await,
            Command::Clnt(name) => {
                tracing::info!(peer = %self.peer, client = %name, "CLNT");
                reply(code::OK, "Noted.")
            }
            Command::Host(name) => self.host(&name),
            Command::Auth(mechanism) => self.auth(&mechanism),
            Command::Pbsz(size) => self.pbsz(size),
            Command::Prot(level) => self.prot(&level),
            Command::Ccc => self.ccc(),
            Command::Nlst(arg) => self.list(arg.as_deref(), true).await,
        }
    }

    pub(super) fn reinitialize(&mut self) {
        if matches!(self.login, LoginState::LoggedIn(_)) {
            self.login_deadline = Some(tokio::time::Instant::now() + self.ctx.config.login_timeout);
        }
        self.logout();
        self.cwd = VirtualPath::root();
        self.transfer_type = TransferType::Ascii;
        self.restart_offset = 0;
        self.rename_from = None;
        self.data = None;
        self.epsv_all = false;
        self.umask = DEFAULT_UMASK;
        self.idle_timeout = self.ctx.config.idle_timeout;
    }

    fn user(&mut self, name: String) -> Action {
        if self.logged_in().is_some() {
            self.reinitialize();
        }
        let anonymous = ANONYMOUS_NAMES.contains(&name.to_ascii_lowercase().as_str());
        // SECURITY: passwords in clear text. Where policy says so, no
        // login starts before AUTH TLS.
        let must_use_tls = self.ctx.config.tls.as_ref().is_some_and(|t| t.required_control.applies(anonymous));
        if must_use_tls && self.tls.is_none() {
            return reply(code::POLICY_REFUSES, "Policy requires TLS on the control connection: send AUTH TLS first.");
        }
        self.login = LoginState::AwaitingPassword(name);
        if anonymous {
            reply(code::NEED_PASSWORD, "Anonymous login ok, send your e-mail address as password.")
        } else {
            reply(code::NEED_PASSWORD, "Please specify the password.")
        }
    }

    async fn pass(&mut self, password: Password) -> Action {
        let name = match std::mem::replace(&mut self.login, LoginState::AwaitingUser) {
            LoginState::AwaitingPassword(name) => name,
            LoginState::AwaitingUser => return reply(code::BAD_SEQUENCE, "Login with USER first."),
            logged_in @ LoginState::LoggedIn(_) => {
                self.login = logged_in;
                return reply(code::SUPERFLUOUS, "Already logged in.");
            }
        };
        let ctx = Arc::clone(&self.ctx);
        let anonymous = ANONYMOUS_NAMES.contains(&name.to_ascii_lowercase().as_str());
        let login = if anonymous {
            let anon = &ctx.config.anonymous;
            let storage = match &self.host {
                Some(host) => &host.anonymous_storage,
                None => &ctx.anonymous_storage,
            };
            match (storage, anon.enabled) {
                (Some(storage), true) => Ok((
                    Login {
                        name: "ftp".into(),
                        anonymous: true,
                        storage: Arc::clone(storage),
                        home: Arc::clone(storage),
                        permissions: anon.permissions,
                        umask: anon.umask,
                        mounts: anon.mounts.clone(),
                        upload_rate: anon.upload_rate,
                        download_rate: anon.download_rate,
                        _slot: None,
                        since: std::time::Instant::now(),
                        quota: None,
                    },
                    anon.max_sessions,
                )),
                _ => Err(AuthFailure::Credentials),
            }
        } else {
            self.virtual_user(&name, password).await
        };
        let (mut login, max_sessions) = match login {
            Ok(login) => login,
            Err(AuthFailure::Credentials) => return self.login_failed(&name).await,
            // The server's trouble, not the client's: no failed login is
            // counted (it would ban the address of every session of a user
            // whose home went missing, or of a server out of descriptors),
            // and the reply names the cause but not the path.
            Err(AuthFailure::Unavailable(why)) => {
                self.login_refused(&name, LoginRefused::HomeUnavailable);
                // Paced like a failure, so clients that reconnect at once
                // do not loop on password checks.
                tokio::time::sleep(ctx.config.login_failure_delay).await;
                return Action::Close(Reply::new(code::SERVICE_NOT_AVAILABLE, format!("{why}; try again later.")));
            }
        };
        match ctx.limits.enter_user(&login.name, max_sessions) {
            Ok(slot) => login._slot = Some(slot),
            Err(max) => {
                self.login_refused(&login.name, LoginRefused::TooManySessions);
                return reply(
                    code::NOT_LOGGED_IN,
                    format!("Too many sessions for this user ({max}); try again later."),
                );
            }
        }
        let tls = self.tls.is_some() && !self.control_cleared;
        self.emit(Kind::Login, || Event::Login { peer: self.peer, user: login.name.clone(), refused: None, tls });
        self.umask = login.umask;
        self.login = LoginState::LoggedIn(login);
        self.cwd = VirtualPath::root();
        self.login_deadline = None;
        reply(code::LOGGED_IN, "Login successful.")
    }

    /// A failed login: wait (longer each time), and close the connection
    /// after too many failures or when the address gets banned.
    // SECURITY: password guessing. The growing delay slows one connection,
    // the per-connection limit forces reconnects, and the per-IP ban stops
    // an address that keeps reconnecting.
    async fn login_failed(&mut self, name: &str) -> Action {
        self.failed_logins += 1;
        self.login_refused(name, LoginRefused::Credentials);
        let banned = self.ctx.limits.record_failure(self.peer.ip(), std::time::Instant::now());
        tokio::time::sleep(self.ctx.config.login_failure_delay * self.failed_logins).await;
        if let Some(ban) = banned {
            self.emit(Kind::Ban, || Event::Ban { address: self.peer.ip(), duration: ban });
            return Action::Close(Reply::new(
                code::SERVICE_NOT_AVAILABLE,
                format!("Too many failed logins from your address; banned for {} seconds.", ban.as_secs()),
            ));
        }
        if self.failed_logins >= self.ctx.config.max_login_failures {
            return Action::Close(Reply::new(
                code::SERVICE_NOT_AVAILABLE,
                "Too many failed logins; closing connection.",
            ));
        }
        reply(code::NOT_LOGGED_IN, "Login incorrect.")
    }

    /// Tells the observers a login was refused, and why.
    fn login_refused(&self, name: &str, why: LoginRefused) {
        let tls = self.tls.is_some() && !self.control_cleared;
        self.emit(Kind::Login, || Event::Login { peer: self.peer, user: name.to_string(), refused: Some(why), tls });
    }

    /// Tells the observers about a change to a file or directory.
    pub(super) fn file_changed(&self, op: impl FnOnce() -> FileOp) {
        self.emit(Kind::File, || Event::File { peer: self.peer, user: self.user_name(), op: op() });
    }

    /// Checks a virtual user's password with the authenticator of the
    /// server (or of the virtual host); returns the login and the user's
    /// session limit.
    async fn virtual_user(&self, name: &str, password: Password) -> Result<(Login, Option<usize>), AuthFailure> {
        let accounts = match &self.host {
            Some(host) => host.accounts.clone(),
            None => self.ctx.accounts.clone(),
        };
        let account = accounts.ok_or(AuthFailure::Credentials)?.authenticate(name, password).await?;
        let quota = if account.quota_bytes.is_some() || account.quota_files.is_some() {
            Some(Quota {
                usage: self.usage_of(&account.name, account.storage.as_ref()).await,
                max_bytes: account.quota_bytes,
                max_files: account.quota_files,
            })
        } else {
            None
        };
        let login = Login {
            anonymous: false,
            quota,
            permissions: account.permissions,
            umask: account.umask.unwrap_or(DEFAULT_UMASK),
            upload_rate: account.upload_rate.or(self.ctx.config.upload_rate),
            download_rate: account.download_rate.or(self.ctx.config.download_rate),
            name: account.name,
            storage: Arc::clone(&account.storage),
            home: account.storage,
            mounts: account.mounts,
            _slot: None,
            since: std::time::Instant::now(),
        };
        Ok((login, account.max_sessions))
    }

    /// The user's quota usage: shared with the user's other sessions, or
    /// measured afresh when there are none.
    async fn usage_of(&self, name: &str, home: &dyn Storage) -> Arc<Usage> {
        let shared =
            self.ctx.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).and_then(Weak::upgrade);
        if let Some(usage) = shared {
            return usage;
        }
        let usage = Arc::new(Usage::measure(home).await);
        let mut map = self.ctx.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, weak| weak.strong_count() > 0);
        Arc::clone(
            map.entry(name.to_string())
                .and_modify(|w| *w = Arc::downgrade(&usage))
                .or_insert_with(|| Arc::downgrade(&usage))
                .upgrade()
                .as_ref()
                .unwrap_or(&usage),
        )
    }

    /// The logged-in user's storage (only called after the login gate).
    pub(super) fn storage(&self) -> Arc<dyn Storage> {
        match &self.login {
            LoginState::LoggedIn(l) => Arc::clone(&l.storage),
            _ => unreachable!("storage() before login: the login gate in apply() prevents this"),
        }
    }

    /// True if the logged-in user has permission `p`.
    pub(super) fn may(&self, p: Permission) -> bool {
        self.logged_in().is_some_and(|l| l.permissions.allows(p))
    }

    fn permission_denied() -> Action {
        reply(code::FILE_UNAVAILABLE, "Permission denied.")
    }

    async fn cwd(&mut self, arg: &str) -> Action {
        let target = self.cwd.resolve(arg);
        match self.storage().metadata(&target).await {
            Ok(facts) if facts.kind == EntryKind::Directory => {
                self.cwd = target;
                reply(code::FILE_ACTION_OK, "Directory successfully changed.")
            }
            Ok(_) => reply(code::FILE_UNAVAILABLE, "Failed to change directory: Not a directory."),
            Err(e) => storage_error("Failed to change directory", &e),
        }
    }

    fn smnt(&mut self, name: &str) -> Action {
        let ctx = Arc::clone(&self.ctx);
        let LoginState::LoggedIn(login) = &mut self.login else {
            return reply(code::NOT_LOGGED_IN, "Please login with USER and PASS.");
        };
        let storage = if name == "~" {
            Arc::clone(&login.home)
        } else if login.mounts.iter().any(|m| m == name) {
            match ctx.mounts.get(name) {
                Some(s) => Arc::clone(s),
                None => return reply(code::FILE_UNAVAILABLE, format!("No mount named {name:?}.")),
            }
        } else {
            return reply(code::FILE_UNAVAILABLE, format!("No mount named {name:?} for this user."));
        };
        login.storage = storage;
        self.cwd = VirtualPath::root();
        reply(code::FILE_ACTION_OK, format!("Mounted {name:?}; working directory is /."))
    }

    async fn mkd(&mut self, arg: &str) -> Action {
        if !self.may(Permission::Mkdir) {
            return Self::permission_denied();
        }
        let path = self.cwd.resolve(arg);
        if path.is_root() {
            return reply(code::FILE_UNAVAILABLE, "Create directory operation failed: File exists.");
        }
        match self.storage().mkdir(&path, self.umask).await {
            Ok(()) => {
                self.file_changed(|| FileOp::Mkdir(path.to_string()));
                reply(code::PATHNAME_CREATED, format!("{} created", quote_path(&path.to_string())))
            }
            Err(e) => storage_error("Create directory operation failed", &e),
        }
    }

    async fn simple_write<F>(
        &mut self,
        what: &str,
        needs: Permission,
        arg: &str,
        event: fn(String) -> FileOp,
        op: F,
    ) -> Action
    where
        F: FnOnce(Arc<dyn Storage>, VirtualPath) -> BoxedOp,
    {
        if !self.may(needs) {
            return Self::permission_denied();
        }
        let path = self.cwd.resolve(arg);
        if path.is_root() {
            return reply(code::FILE_UNAVAILABLE, format!("{what} operation failed: Permission denied."));
        }
        match op(self.storage(), path.clone()).await {
            Ok(()) => {
                self.file_changed(|| event(path.to_string()));
                reply(code::FILE_ACTION_OK, format!("{what} operation successful."))
            }
            Err(e) => storage_error(&format!("{what} operation failed"), &e),
        }
    }

    async fn dele(&mut self, arg: &str) -> Action {
        // The size is needed to credit the quota after the delete.
        let quota = self.logged_in().and_then(|l| l.quota.clone());
        let freed = match &quota {
            Some(_) => self.storage().metadata(&self.cwd.resolve(arg)).await.ok().filter(|f| f.kind == EntryKind::File),
            None => None,
        };
        let action = self
            .simple_write("Delete", Permission::Delete, arg, FileOp::Delete, |s, p| {
                Box::pin(async move { s.delete(&p).await })
            })
            .await;
        if let (Some(q), Some(f), Action::Reply(r)) = (&quota, &freed, &action) {
            if r.code == code::FILE_ACTION_OK {
                q.release(f.size, 1);
            }
        }
        action
    }

    async fn rnfr(&mut self, arg: &str) -> Action {
        if !self.may(Permission::Rename) {
            return Self::permission_denied();
        }
        let capabilities = self.storage().capabilities();
        if !capabilities.rename_files {
            return unsupported("RNFR");
        }
        let path = self.cwd.resolve(arg);
        if path.is_root() {
            return Self::permission_denied();
        }
        match self.storage().metadata(&path).await {
            Ok(f) if f.kind == EntryKind::Directory && !capabilities.rename_dirs => {
                reply(code::NOT_IMPLEMENTED_FOR_PARAMETER, "Renaming a directory is not supported by this storage.")
            }
            Ok(_) => {
                self.rename_from = Some(path);
                reply(code::PENDING_FURTHER_INFO, "Ready for RNTO.")
            }
            Err(e) => storage_error("RNFR command failed", &e),
        }
    }

    async fn rnto(&mut self, from: Option<VirtualPath>, arg: &str) -> Action {
        let Some(from) = from else {
            return reply(code::BAD_SEQUENCE, "RNFR required first.");
        };
        let to = self.cwd.resolve(arg);
        if to.is_root() {
            return Self::permission_denied();
        }
        // A file the rename replaces no longer counts against the quota.
        let quota = self.logged_in().and_then(|l| l.quota.clone());
        let replaced = match &quota {
            Some(_) if from != to => self.storage().metadata(&to).await.ok().filter(|f| f.kind == EntryKind::File),
            _ => None,
        };
        match self.storage().rename(&from, &to).await {
            Ok(()) => {
                if let (Some(q), Some(f)) = (&quota, &replaced) {
                    q.release(f.size, 1);
                }
                self.file_changed(|| FileOp::Rename { from: from.to_string(), to: to.to_string() });
                reply(code::FILE_ACTION_OK, "Rename successful.")
            }
            Err(e) => storage_error("Rename failed", &e),
        }
    }

    async fn site(&mut self, site: SiteCommand) -> Action {
        match site {
            SiteCommand::Help if !self.capabilities().chmod => reply(code::HELP, "SITE commands: UMASK IDLE HELP"),
            SiteCommand::Help => reply(code::HELP, "SITE commands: CHMOD UMASK IDLE HELP"),
            SiteCommand::Chmod { mode, path } => {
                if !self.may(Permission::Chmod) {
                    return Self::permission_denied();
                }
                if !self.storage().capabilities().chmod {
                    return unsupported("SITE CHMOD");
                }
                let path = self.cwd.resolve(&path);
                match self.storage().set_mode(&path, mode).await {
                    Ok(()) => {
                        self.file_changed(|| FileOp::Chmod { path: path.to_string(), mode });
                        reply(code::OK, "SITE CHMOD command ok.")
                    }
                    Err(e) => storage_error("SITE CHMOD command failed", &e),
                }
            }
            SiteCommand::Umask(None) => reply(code::OK, format!("Your current UMASK is {:03o}", self.umask)),
            SiteCommand::Umask(Some(mask)) => {
                if mask > 0o777 {
                    return reply(code::SYNTAX_ERROR_ARGS, "UMASK must be 000-777.");
                }
                self.umask = mask;
                reply(code::OK, format!("UMASK set to {mask:03o}"))
            }
            SiteCommand::Idle(None) => {
                reply(code::OK, format!("Current idle time is {} seconds.", self.idle_timeout.as_secs()))
            }
            SiteCommand::Idle(Some(secs)) => {
                if !SITE_IDLE_RANGE.contains(&secs) {
                    return reply(
                        code::SYNTAX_ERROR_ARGS,
                        format!("Idle time must be {}-{} seconds.", SITE_IDLE_RANGE.start(), SITE_IDLE_RANGE.end()),
                    );
                }
                self.idle_timeout = std::time::Duration::from_secs(secs);
                reply(code::OK, format!("Idle time set to {secs} seconds."))
            }
        }
    }

    async fn size(&mut self, arg: &str) -> Action {
        if !self.may(Permission::List) {
            return Self::permission_denied();
        }
        let path = self.cwd.resolve(arg);
        match self.storage().metadata(&path).await {
            Ok(f) if f.kind == EntryKind::File => reply(code::FILE_STATUS, f.size.to_string()),
            Ok(_) => reply(code::FILE_UNAVAILABLE, "Could not get file size: not a regular file."),
            Err(e) => storage_error("Could not get file size", &e),
        }
    }

    async fn mdtm(&mut self, arg: &str) -> Action {
        if !self.may(Permission::List) {
            return Self::permission_denied();
        }
        let path = self.cwd.resolve(arg);
        match self.storage().metadata(&path).await {
            Ok(f) if f.kind == EntryKind::File => reply(code::FILE_STATUS, mdtm_timestamp(f.modified)),
            Ok(_) => reply(code::FILE_UNAVAILABLE, "Could not get modification time: not a regular file."),
            Err(e) => storage_error("Could not get modification time", &e),
        }
    }

    // ---- data connection set-up ----

    async fn pasv(&mut self) -> Action {
        if !self.ctx.config.passive_enabled {
            return reply(
                code::NOT_IMPLEMENTED,
                "Passive mode (PASV/EPSV) is disabled on this server; use PORT or EPRT.",
            );
        }
        if self.epsv_all {
            return reply(code::BAD_SEQUENCE, "PASV not allowed after EPSV ALL.");
        }
        let announce = match (self.ctx.public_ipv4, self.local.ip()) {
            (Some(ip), _) => ip,
            (None, IpAddr::V4(ip)) => ip,
            (None, IpAddr::V6(_)) => {
                return reply(code::CANT_OPEN_DATA, "PASV needs IPv4: use EPSV on an IPv6 connection.");
            }
        };
        match self.bind_passive(DataMode::Passive).await {
            Ok(port) => {
                reply(code::ENTERING_PASSIVE, hostport::pasv_reply_text(std::net::SocketAddrV4::new(announce, port)))
            }
            Err(action) => action,
        }
    }

    async fn epsv(&mut self, arg: EpsvArg) -> Action {
        if !self.ctx.config.passive_enabled {
            return reply(
                code::NOT_IMPLEMENTED,
                "Passive mode (PASV/EPSV) is disabled on this server; use PORT or EPRT.",
            );
        }
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                reply(code::OK, "EPSV ALL ok: only EPSV will be used.")
            }
            EpsvArg::Protocol(p) if (p == 1) != self.local.is_ipv4() => reply(
                code::NETWORK_PROTOCOL_NOT_SUPPORTED,
                "Network protocol not supported, use (1) or (2) as on the control connection.",
            ),
            _ => match self.bind_passive(DataMode::ExtendedPassive).await {
                Ok(port) => reply(code::ENTERING_EXTENDED_PASSIVE, hostport::epsv_reply_text(port)),
                Err(action) => action,
            },
        }
    }

    async fn bind_passive(&mut self, mode: DataMode) -> Result<u16, Action> {
        self.data = None;
        let listener = match self.passive.take() {
            // The listener of the last PASV, minus any connection left in
            // its queue.
            Some(kept) => {
                kept.listener.drain();
                kept.listener
            }
            None => Arc::new(
                listen_passive(self.local.ip(), self.ctx.config.passive_ports.as_ref())
                    .await
                    .map_err(|e| reply(code::CANT_OPEN_DATA, format!("Cannot open passive connection: {e}.")))?,
            ),
        };
        let port = listener.port;
        // A small configured range is left alone: there a port kept idle
        // for 2 s could be the one another session needs now.
        let plenty = self.ctx.config.passive_ports.as_ref().is_none_or(|r| r.len() >= PASSIVE_KEEP_MIN_RANGE);
        if plenty {
            self.passive =
                Some(KeptListener { listener: Arc::clone(&listener), release_at: Instant::now() + PASSIVE_KEEP });
        }
        let expected_peer = self.ctx.config.passive_peer_check.then(|| self.peer.ip());
        self.data = Some((DataSetup::Passive { listener, expected_peer }, mode));
        Ok(port)
    }

    fn port(&mut self, target: SocketAddr, verb: &str) -> Action {
        if !self.ctx.config.active_enabled {
            return reply(
                code::NOT_IMPLEMENTED,
                format!("Active mode ({verb}) is disabled on this server; use PASV or EPSV."),
            );
        }
        if self.epsv_all {
            return reply(code::BAD_SEQUENCE, format!("{verb} not allowed after EPSV ALL."));
        }
        let target = SocketAddr::new(target.ip().to_canonical(), target.port());
        // SECURITY: the FTP bounce attack (RFC 2577). A client must not make
        // us connect to a third host, or to a privileged port of its own.
        if target.ip() != self.peer.ip() {
            return reply(
                code::NOT_IMPLEMENTED_FOR_PARAMETER,
                format!("{verb} refused (bounce protection): {} is not your address {}.", target.ip(), self.peer.ip()),
            );
        }
        if target.port() < 1024 {
            return reply(
                code::NOT_IMPLEMENTED_FOR_PARAMETER,
                format!("{verb} refused (bounce protection): port {} is below 1024.", target.port()),
            );
        }
        let setup =
            DataSetup::Active { target, local_ip: self.local.ip(), source_port: self.ctx.config.active_source_port };
        self.data = Some((setup, if verb == "PORT" { DataMode::Active } else { DataMode::ExtendedActive }));
        reply(code::OK, format!("{verb} command successful. Consider using PASV."))
    }

    /// 521 when policy requires TLS data connections and PROT P is not in
    /// force. Uploads ask before they open any file.
    pub(super) fn data_tls_refusal(&self) -> Option<Action> {
        let anonymous = self.logged_in().is_some_and(|l| l.anonymous);
        let required = self.ctx.config.tls.as_ref().is_some_and(|t| t.required_data.applies(anonymous));
        (required && !(self.protect_data && self.tls.is_some())).then(|| {
            reply(code::DATA_PROTECTION_REQUIRED, "Policy requires TLS on data connections: send PBSZ 0 and PROT P.")
        })
    }

    /// Starts a transfer on the data connection set up by PORT, PASV, EPRT
    /// or EPSV (425 when there is none).
    pub(super) async fn begin_transfer(
        &mut self,
        preliminary: Reply,
        job: Job,
        subject: Subject,
        done_text: String,
        partial: Option<UploadEnd>,
    ) -> Action {
        let refusal = match (self.data_tls_refusal(), self.data.take()) {
            (Some(refusal), data) => {
                self.data = data;
                refusal
            }
            (None, None) => reply(code::CANT_OPEN_DATA, "Use PORT, PASV, EPRT or EPSV first."),
            (None, Some((setup, mode))) => {
                let start = TransferStart { preliminary, job, setup, mode, subject, done_text, partial };
                return Action::Transfer(Box::new(start));
            }
        };
        // An upload refused before any byte arrived leaves nothing behind.
        if let Job::Receive { sink, .. } = job {
            let _ = sink.abort(true).await;
        }
        if let Some(p) = partial {
            p.settle().await;
        }
        refusal
    }

    fn mode_name(&self) -> &'static str {
        match self.transfer_type {
            TransferType::Ascii => "ASCII",
            TransferType::Binary => "BINARY",
        }
    }

    // ---- transfers ----

    async fn retr(&mut self, arg: &str) -> Action {
        let offset = std::mem::take(&mut self.restart_offset);
        if !self.may(Permission::Read) {
            return Self::permission_denied();
        }
        let path = self.cwd.resolve(arg);
        let storage = self.storage();
        // One open and one stat; a directory is refused as 550.
        let OpenFile { reader: source, size } = match storage.open_read(&path, offset).await {
            Ok(opened) => opened,
            Err(e) => return storage_error("Failed to open file", &e),
        };
        if offset > size {
            return reply(
                code::FILE_UNAVAILABLE,
                format!("Restart offset {offset} is past the end of the file ({size} bytes)."),
            );
        }
        let name = path.file_name().unwrap_or("/");
        let preliminary = Reply::new(
            code::OPENING_DATA,
            format!("Opening {} mode data connection for {name} ({size} bytes).", self.mode_name()),
        );
        let description = format!("RETR {name}");
        self.begin_transfer(
            preliminary,
            Job::Send { source, ascii: self.transfer_type == TransferType::Ascii, len: Some(size - offset) },
            Subject { direction: Direction::Download, description, path },
            "Transfer complete.".into(),
            None,
        )
        .await
    }

    async fn store(&mut self, arg: &str, append: bool) -> Action {
        let offset = std::mem::take(&mut self.restart_offset);
        // Resuming or appending needs append (or write); replacing needs write.
        let allowed = if append || offset > 0 {
            self.may(Permission::Append) || self.may(Permission::Write)
        } else {
            self.may(Permission::Write)
        };
        if !allowed {
            return Self::permission_denied();
        }
        let storage = self.storage();
        let capabilities = storage.capabilities();
        if append && !capabilities.append {
            return unsupported("APPE");
        }
        if offset > 0 && !capabilities.write_at {
            return reply(
                code::NOT_IMPLEMENTED_FOR_PARAMETER,
                "REST + STOR at an offset is not supported by this storage; upload the whole file.",
            );
        }
        let target = self.cwd.resolve(arg);
        if target.is_root() {
            return reply(code::FILE_NAME_NOT_ALLOWED, "File name not allowed.");
        }
        // Without a data connection, answer 425 before touching any file.
        if self.data.is_none() {
            return reply(code::CANT_OPEN_DATA, "Use PORT, PASV, EPRT or EPSV first.");
        }
        if let Some(refusal) = self.data_tls_refusal() {
            return refusal;
        }
        let existing = storage.metadata(&target).await.ok();
        if existing.as_ref().is_some_and(|f| f.kind == EntryKind::Directory) {
            return reply(code::FILE_UNAVAILABLE, "Could not create file: Is a directory.");
        }
        let existing_len = existing.as_ref().map(|f| f.size);
        // SECURITY: a restart offset past the end would leave a hole (a
        // sparse file of any size, beyond what the quota counts).
        if offset > existing_len.unwrap_or(0) {
            return reply(
                code::INVALID_RESTART,
                format!(
                    "Restart offset {offset} is past the end of the file ({} bytes); resume at most from its size.",
                    existing_len.unwrap_or(0)
                ),
            );
        }
        let quota = self.logged_in().and_then(|l| l.quota.clone());
        if let Some(refusal) = quota.as_ref().and_then(|q| quota_refuses_new_file(q, existing.is_none())) {
            return refusal;
        }
        let mode = match (offset, append) {
            (0, false) => WriteMode::Truncate,
            (0, true) => WriteMode::Append,
            (at, _) => WriteMode::At(at),
        };
        // Resuming or appending works in place and keeps what arrived.
        let keep_partial = self.ctx.config.partial_uploads == PartialUploads::Keep || mode != WriteMode::Truncate;
        let options = UploadOptions {
            mode,
            umask: self.umask,
            atomic: self.ctx.config.atomic_uploads,
            keep_partial,
            sync: self.ctx.config.sync_uploads,
        };
        let sink = match storage.open_write(&target, options).await {
            Ok(w) => w,
            Err(e) => return storage_error("Could not create file", &e),
        };
        // Bytes past a restart offset are gone once the upload starts.
        if let (Some(q), Some(len), WriteMode::At(at)) = (&quota, existing_len, mode) {
            q.release(len.saturating_sub(at), 0);
        }
        // A replaced file counts until the upload lands.
        let replaces = if mode == WriteMode::Truncate { existing_len.unwrap_or(0) } else { 0 };
        let (job, end) = self.upload_job(sink, quota, replaces, existing.is_none());
        let verb = if append { "APPE" } else { "STOR" };
        self.begin_transfer(
            Reply::new(code::OPENING_DATA, "Ok to send data."),
            job,
            Subject { direction: Direction::Upload, description: format!("{verb} {arg}"), path: target },
            "Transfer complete.".into(),
            end,
        )
        .await
    }

    /// The transfer job for an upload opened as `sink`, charged to `quota`
    /// (allowing `replaces` bytes over it until the upload lands), and how
    /// it is settled if it fails.
    fn upload_job(
        &self,
        mut sink: Box<dyn Upload>,
        quota: Option<Quota>,
        replaces: u64,
        new_file: bool,
    ) -> (Job, Option<UploadEnd>) {
        let charge =
            quota.map(|quota| Arc::new(UploadCharge { quota, replaces, new_file, written: Default::default() }));
        let end = sink.settled().map(|settled| UploadEnd { settled, charge: charge.clone() });
        (Job::Receive { sink, ascii: self.transfer_type == TransferType::Ascii, charge }, end)
    }

    async fn stou(&mut self, hint: Option<&str>) -> Action {
        self.restart_offset = 0;
        if !self.may(Permission::Write) {
            return Self::permission_denied();
        }
        if self.data.is_none() {
            return reply(code::CANT_OPEN_DATA, "Use PORT, PASV, EPRT or EPSV first.");
        }
        if let Some(refusal) = self.data_tls_refusal() {
            return refusal;
        }
        let base = hint
            .map(|h| self.cwd.resolve(h))
            .filter(|p| !p.is_root())
            .unwrap_or_else(|| self.cwd.join("ferroftp.upload"));
        let dir = base.parent();
        let stem = base.file_name().unwrap_or("ferroftp.upload").to_string();
        let storage = self.storage();
        let quota = self.logged_in().and_then(|l| l.quota.clone());
        if let Some(refusal) = quota.as_ref().and_then(|q| quota_refuses_new_file(q, true)) {
            return refusal;
        }
        let options = UploadOptions {
            mode: WriteMode::CreateNew,
            umask: self.umask,
            atomic: false,
            keep_partial: self.ctx.config.partial_uploads == PartialUploads::Keep,
            sync: self.ctx.config.sync_uploads,
        };
        for n in 0..STOU_TRIES {
            let name = if n == 0 { stem.clone() } else { format!("{stem}.{n}") };
            let path = dir.join(&name);
            match storage.open_write(&path, options).await {
                Ok(sink) => {
                    let (job, end) = self.upload_job(sink, quota, 0, true);
                    // RFC 1123 4.1.2.9: the 150 reply names the file.
                    return self
                        .begin_transfer(
                            Reply::new(code::OPENING_DATA, format!("FILE: {name}")),
                            job,
                            Subject { direction: Direction::Upload, description: format!("STOU {name}"), path },
                            format!("Transfer complete (unique file name: {name})."),
                            end,
                        )
                        .await;
                }
                Err(StorageError::AlreadyExists) => continue,
                Err(e) => return storage_error("Could not create file", &e),
            }
        }
        reply(code::FILE_NAME_NOT_ALLOWED, "Could not find a unique file name.")
    }

    async fn list(&mut self, arg: Option<&str>, names_only: bool) -> Action {
        if !self.may(Permission::List) {
            return Self::permission_denied();
        }
        let target = strip_list_options(arg);
        let path = target.map_or_else(|| self.cwd.clone(), |t| self.cwd.resolve(t));
        let bytes = match self.listing_text(&path, names_only).await {
            Ok(text) => text.into_bytes(),
            Err(e) => return storage_error("Failed to list directory", &e),
        };
        self.begin_transfer(
            Reply::new(code::OPENING_DATA, "Here comes the directory listing."),
            Job::Send { source: Reader::bytes(bytes), ascii: false, len: None },
            Subject {
                direction: Direction::Listing,
                description: if names_only { "NLST".into() } else { "LIST".into() },
                path,
            },
            "Directory send OK.".into(),
            None,
        )
        .await
    }

    /// A listing of `path`, each line ending in CRLF: a directory's
    /// entries, or the one entry when `path` is a file; `ls -l` lines, or
    /// bare names for NLST. Written into one buffer (10,000 entries took
    /// three allocations each as separate lines).
    pub(super) async fn listing_text(&self, path: &VirtualPath, names_only: bool) -> Result<String, StorageError> {
        let storage = self.storage();
        let facts = storage.metadata(path).await?;
        let entries = if facts.kind == EntryKind::Directory { storage.list(path).await? } else { vec![facts] };
        let now = now_unix();
        let per_line = if names_only { 2 } else { LS_LINE_BESIDES_NAME };
        let mut text = String::with_capacity(entries.iter().map(|e| e.name.len() + per_line).sum());
        for entry in &entries {
            if names_only {
                text.push_str(&entry.name);
            } else {
                write_ls_line(&mut text, entry, now);
            }
            text.push_str("\r\n");
        }
        Ok(text)
    }
}

/// A boxed storage operation for [`Session::simple_write`].
type BoxedOp = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StorageError>> + Send>>;

#[cfg(test)]
mod tests {
    use super::strip_list_options;

    #[test]
    fn list_options() {
        assert_eq!(strip_list_options(Some("-la")), None);
        assert_eq!(strip_list_options(Some("-a -l dir x")), Some("dir x"));
        assert_eq!(strip_list_options(Some("name")), Some("name"));
        assert_eq!(strip_list_options(None), None);
    }
}
