//! The listener: accepts control connections, starts a session task for
//! each, and shuts them all down gracefully.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accounts::{Authenticator, UsersFileAuthenticator};
use crate::auth::{AuthError, UsersFile};
use crate::config::Config;
use crate::context::{Context, VirtualHost};
use crate::limits::{Limits, Refusal};
use crate::storage::{Backend, LocalFs, Storage};

/// How long shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A storage root could not be opened.
    #[error("cannot open {what} {path}: {source}")]
    Root {
        /// Which root (the key).
        what: String,
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The users file is invalid.
    #[error(transparent)]
    Users(#[from] AuthError),
    /// The certificate or key cannot be used.
    #[error("config keys `tls_cert`/`tls_key`: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The public address does not resolve to an IPv4 address.
    #[error("config key `public_address`: {0}")]
    PublicAddress(String),
}

/// A bound, ready server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// The implicit-FTPS listener, if configured.
    implicit: Option<TcpListener>,
    ctx: Arc<Context>,
}

/// The address connections to `listener` arrive on, when it is bound to
/// one address: then sessions need not ask the kernel (getsockname) for
/// each connection. `None` for a wildcard address.
fn fixed_local(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok().filter(|a| !a.ip().is_unspecified())
}

/// Accepts on the implicit-FTPS listener, or never when there is none.
async fn accept_implicit(l: &Option<TcpListener>) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn open_root(backend: &Backend, what: &str, path: &std::path::Path) -> Result<Arc<dyn Storage>, ServerError> {
    backend.open_root(path).map_err(|source| ServerError::Root {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// Says at start which users' homes lie inside the anonymous root: an
/// anonymous login can read there, and change files where anonymous may
/// write. (With memory storage, paths are compared as they are written.)
fn warn_of_homes_inside_the_anonymous_root(config: &Config, users: &[&UsersFile]) {
    if !config.anonymous.enabled {
        return;
    }
    let absolute = |p: &std::path::Path| match config.storage {
        crate::config::StorageKind::Local => p.canonicalize().ok(),
        crate::config::StorageKind::Memory { .. } => {
            p.to_str().map(|s| std::path::PathBuf::from(crate::path::VirtualPath::root().resolve(s).to_string()))
        }
    };
    let Some(root) = absolute(&config.anonymous.root) else { return };
    let exposed: Vec<&str> = users
        .iter()
        .flat_map(|u| &u.user)
        .filter(|e| absolute(&e.home).is_some_and(|home| home.starts_with(&root)))
        .map(|e| e.name.as_str())
        .collect();
    if !exposed.is_empty() {
        tracing::warn!(
            users = %exposed.join(", "),
            root = %root.display(),
            "these users' homes lie inside the anonymous root: anonymous logins can reach their files; give the anonymous root a directory of its own"
        );
    }
}

/// Removes orphaned upload files beneath every local directory the server
/// serves (roots, mounts, homes), on a thread of its own: a server killed
/// mid-upload left them, and nothing else would.
fn sweep_orphans(config: &Config, users: &[&UsersFile]) {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    if config.anonymous.enabled {
        dirs.push(config.anonymous.root.clone());
    }
    dirs.extend(config.mounts.values().cloned());
    dirs.extend(config.hosts.values().filter_map(|h| h.root.clone()));
    dirs.extend(users.iter().flat_map(|u| u.user.iter().map(|e| e.home.clone())));
    dirs.sort();
    dirs.dedup();
    let started = std::thread::Builder::new().name("ferroftp-sweep".into()).spawn(move || {
        let removed: usize =
            dirs.iter().filter_map(|d| LocalFs::open(d, false).ok()).map(|fs| fs.sweep_orphans()).sum();
        tracing::info!(directories = dirs.len(), removed, "looked for orphaned upload files");
    });
    if let Err(e) = started {
        tracing::warn!(error = %e, "could not start looking for orphaned upload files");
    }
}

async fn resolve_public(address: &str) -> Result<Ipv4Addr, ServerError> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => Ok(v4),
            IpAddr::V6(_) => Err(ServerError::PublicAddress(format!(
                "{address} is IPv6; PASV can only announce IPv4 (EPSV needs no address)"
            ))),
        };
    }
    let addrs = tokio::net::lookup_host((address, 0))
        .await
        .map_err(|e| ServerError::PublicAddress(format!("cannot resolve {address:?}: {e}")))?;
    addrs
        .filter_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| ServerError::PublicAddress(format!("{address:?} has no IPv4 address")))
}

impl Server {
    /// Opens roots, loads users and binds the listening socket.
    ///
    /// # Errors
    /// A [`ServerError`] naming what could not be set up.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let backend = Arc::new(Backend::new(config.storage, config.storage_thread_pool));
        // SECURITY: memory exhaustion. Each argon2id check takes a large
        // work area, and the allocator keeps what it grew to after a burst
        // of logins (docs/BENCHMARKS.md). One check per core, whichever
        // users file it is for.
        let password_checks = Arc::new(tokio::sync::Semaphore::new(crate::config::cores()));
        let accounts_of = |users: &Option<Arc<UsersFile>>| {
            users.as_ref().map(|u| {
                Arc::new(UsersFileAuthenticator::new(Arc::clone(u), Arc::clone(&backend), Arc::clone(&password_checks)))
                    as Arc<dyn Authenticator>
            })
        };
        let anonymous_storage =
            if config.anonymous.enabled { Some(open_root(&backend, "root", &config.anonymous.root)?) } else { None };
        let mut mounts = BTreeMap::new();
        for (name, dir) in &config.mounts {
            mounts.insert(name.clone(), open_root(&backend, &format!("mount {name:?}"), dir)?);
        }
        let mut hosts = BTreeMap::new();
        let mut host_users = Vec::new();
        for (name, host) in &config.hosts {
            let anonymous_storage = match &host.root {
                Some(root) => Some(open_root(&backend, &format!("host {name:?} root"), root)?),
                None => None,
            };
            let users = match &host.users {
                Some(path) => Some(Arc::new(UsersFile::load(path)?)),
                None => None,
            };
            let accounts = accounts_of(&users);
            host_users.extend(users);
            hosts.insert(name.clone(), Arc::new(VirtualHost { anonymous_storage, accounts }));
        }
        let users = match &config.users_file {
            Some(path) => Some(Arc::new(UsersFile::load(path)?)),
            None => None,
        };
        let all_users: Vec<&UsersFile> = users.iter().chain(&host_users).map(|u| &**u).collect();
        warn_of_homes_inside_the_anonymous_root(&config, &all_users);
        if matches!(*backend, Backend::Local { .. }) {
            sweep_orphans(&config, &all_users);
        }
        let public_ipv4 = match &config.public_address {
            Some(a) => Some(resolve_public(a).await?),
            None => None,
        };
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(crate::tls::Tls::load(&t.cert, &t.key, t.require_session_reuse)?)),
            None => None,
        };
        let listener = listen(config.listen).map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let implicit = match config.tls.as_ref().and_then(|t| t.implicit_listen) {
            Some(addr) => Some(listen(addr).map_err(|source| ServerError::Bind { addr, source })?),
            None => None,
        };
        Ok(Server {
            listener,
            implicit,
            ctx: Arc::new(Context {
                limits: Limits::new(config.limits.clone()),
                usage: Default::default(),
                accounts: accounts_of(&users),
                backend,
                observers: {
                    let mut observers = crate::events::Observers::default();
                    observers.add(Arc::new(crate::events::LogLines));
                    observers
                },
                config,
                anonymous_storage,
                mounts,
                hosts,
                tls,
                public_ipv4,
            }),
        })
    }

    /// The address the server listens on (useful after binding port 0).
    ///
    /// # Errors
    /// The socket's error, if it has none.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Registers `observer` for the events of every session (before
    /// [`Server::run`], which is when sessions start).
    pub fn with_observer(mut self, observer: Arc<dyn crate::events::Observer>) -> Server {
        match Arc::get_mut(&mut self.ctx) {
            Some(ctx) => ctx.observers.add(observer),
            None => tracing::warn!("an observer registered after the server started was ignored"),
        }
        self
    }

    /// The anonymous root, when anonymous login is on: for tools and tests
    /// that look at or seed what the server serves.
    pub fn anonymous_storage(&self) -> Option<Arc<dyn Storage>> {
        self.ctx.anonymous_storage.clone()
    }

    /// The storage backend: it opens what a user's home holds, as a session
    /// would see it.
    pub fn backend(&self) -> Arc<Backend> {
        Arc::clone(&self.ctx.backend)
    }

    /// The TLS state, to reload certificates (e.g. on SIGHUP).
    pub fn tls(&self) -> Option<Arc<crate::tls::Tls>> {
        self.ctx.tls.clone()
    }

    /// The implicit-FTPS address, if one is configured.
    pub fn implicit_addr(&self) -> Option<SocketAddr> {
        self.implicit.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes; then tells every session to
    /// close (421) and waits briefly for them.
    ///
    /// `shutdown` runs as a task of its own: the accept loop then checks
    /// only whether that task has finished, instead of polling the future
    /// (for signals, six polls of tokio's signal machinery) at every
    /// accepted connection.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sessions = JoinSet::new();
        let mut shutdown = AbortOnDrop(tokio::spawn(shutdown));
        let local = fixed_local(&self.listener);
        let implicit_local = self.implicit.as_ref().and_then(fixed_local);
        let mut failures = crate::descriptors::AcceptFailures::default();
        loop {
            let backoff = tokio::select! {
                accepted = self.listener.accept() => self.admit(accepted, false, &stop_rx, &mut sessions, local, &mut failures),
                accepted = accept_implicit(&self.implicit) => self.admit(accepted, true, &stop_rx, &mut sessions, implicit_local, &mut failures),
                Some(_) = sessions.join_next(), if !sessions.is_empty() => None,
                _ = &mut shutdown.0 => break,
            };
            if let Some(pause) = backoff {
                tokio::time::sleep(pause).await;
            }
        }
        drop(shutdown);
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while sessions.join_next().await.is_some() {} }).await;
    }

    /// Lets an accepted connection in (a session) or turns it away (421).
    fn admit(
        &self,
        accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
        implicit_tls: bool,
        stop_rx: &watch::Receiver<bool>,
        sessions: &mut JoinSet<()>,
        local: Option<SocketAddr>,
        failures: &mut crate::descriptors::AcceptFailures,
    ) -> Option<Duration> {
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead
                // of spinning, and say so now and then, not 20 times a
                // second.
                if let Some(warning) = failures.record(&e, Instant::now()) {
                    tracing::warn!("{warning}");
                }
                return Some(ACCEPT_BACKOFF);
            }
        };
        let accepted = Accepted { stream, peer, local, implicit_tls };
        sessions.spawn(connection(accepted, Arc::clone(&self.ctx), stop_rx.clone()));
        None
    }
}

/// A connection as accepted.
struct Accepted {
    stream: tokio::net::TcpStream,
    /// The address accept reported.
    peer: SocketAddr,
    /// Our end, when the listener fixes it.
    local: Option<SocketAddr>,
    /// From the implicit-FTPS listener.
    implicit_tls: bool,
}

/// One accepted connection, in its own task: find out who the client is,
/// admit the client's address (connection limits, bans) or turn it away,
/// then serve it. Admission runs here, not in the accept loop, so the
/// address it judges can be one learned from the connection itself (a
/// load balancer's PROXY header) rather than the balancer's.
async fn connection(accepted: Accepted, ctx: Arc<Context>, stop: watch::Receiver<bool>) {
    let Accepted { stream, peer, local, implicit_tls } = accepted;
    let client = peer;
    match ctx.limits.admit(client.ip().to_canonical(), Instant::now()) {
        Ok(admitted) => {
            tracing::debug!(peer = %client, clients = admitted.clients_at_start, "connection");
            let addrs = crate::session::Addresses { peer: client, local };
            crate::session::serve(stream, addrs, Arc::clone(&ctx), stop, admitted.clients_at_start, implicit_tls).await;
            drop(admitted);
        }
        Err(refusal) => {
            tracing::info!(peer = %client, %refusal, "connection refused");
            refuse(stream, refusal).await;
        }
    }
}

/// A task that is aborted when this is dropped: the shutdown future's
/// task ends with [`Server::run`], however that ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the accept loop pauses after a failed accept (out of file
/// descriptors, say), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Most connections waiting to be accepted. A burst of connects (a load
/// test, a mirror fleet starting) waits in the kernel's queue instead of
/// being dropped and retried after seconds of SYN-ACK backoff. The kernel
/// caps it at net.core.somaxconn.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the control listener.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // A restarted server can bind while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    // Set here, accepted connections inherit them (two system calls fewer
    // per connection): replies must not wait for Nagle, and urgent data
    // (the Telnet Synch some clients send before ABOR) must stay in the
    // stream.
    socket.set_nodelay(true)?;
    socket2::SockRef::from(&socket).set_out_of_band_inline(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Turns a connection away with 421 and the reason.
async fn refuse(mut stream: tokio::net::TcpStream, refusal: Refusal) {
    use tokio::io::AsyncWriteExt;
    let reply = ferroftp_proto::Reply::new(ferroftp_proto::code::SERVICE_NOT_AVAILABLE, refusal.to_string());
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&reply.to_wire()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
