//! `ferroftp serve`: flags over the config file, then the server.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use ferroftp_server::config::{BatchScheduling, StorageKind};
use ferroftp_server::{Config, FileConfig, Server};

/// Flags of `ferroftp serve`; each overrides the config file's key of the
/// same name.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Address to listen on, IP:PORT [default: 127.0.0.1:2121].
    #[arg(long)]
    listen: Option<String>,
    /// Anonymous root directory [default: the current directory].
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where files live: "local" directories [default], or "memory" (an
    /// in-memory tree, emptied when the server stops).
    #[arg(long, value_name = "KIND")]
    storage: Option<String>,
    /// Users file (see `ferroftp user add`).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Allow anonymous login [default].
    #[arg(long, overrides_with = "no_anonymous")]
    anonymous: bool,
    /// Refuse anonymous login.
    #[arg(long)]
    no_anonymous: bool,
    /// Let anonymous users upload, delete, rename and make directories.
    #[arg(long)]
    anonymous_write: bool,
    /// Passive port range, A-B (open it in the firewall).
    #[arg(long, value_name = "A-B")]
    passive_ports: Option<String>,
    /// Address or host name to announce in PASV replies (behind NAT).
    #[arg(long, value_name = "HOST")]
    public_address: Option<String>,
    /// Idle timeout of control connections, seconds [default: 300].
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// FTPS certificate chain, PEM (see `ferroftp cert`).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// FTPS private key, PEM.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Also listen for implicit FTPS (TLS from the first byte) here, IP:PORT.
    #[arg(long, value_name = "ADDR")]
    implicit_tls_listen: Option<String>,
}

impl ServeArgs {
    fn into_file_config(self) -> Result<FileConfig, String> {
        let mut file = match &self.config {
            Some(path) => FileConfig::load(path).map_err(|e| e.to_string())?,
            None => FileConfig::default(),
        };
        macro_rules! over {
            ($($field:ident),*) => { $( if self.$field.is_some() { file.$field = self.$field; } )* };
        }
        over!(
            listen,
            root,
            storage,
            users,
            passive_ports,
            public_address,
            idle_timeout,
            tls_cert,
            tls_key,
            implicit_tls_listen
        );
        if self.no_anonymous {
            file.anonymous = Some(false);
        } else if self.anonymous {
            file.anonymous = Some(true);
        }
        if self.anonymous_write {
            file.anonymous_write = Some(true);
        }
        Ok(file)
    }
}

/// Raises the open-files limit as far as it goes and warns when it is
/// still below what `max_clients` sessions can need.
fn open_files_limit(max_clients: usize) {
    use ferroftp_server::descriptors;
    let limit = match descriptors::raise_open_files_limit() {
        Ok(raised) => {
            if raised.before != raised.after {
                let (before, after) = (descriptors::show_limit(raised.before), descriptors::show_limit(raised.after));
                tracing::info!("open-files limit raised from {before} to {after}");
            }
            raised.after
        }
        Err(e) => {
            tracing::info!(error = %e, "open-files limit left as it was");
            descriptors::open_files_limit()
        }
    };
    if let Some(warning) = descriptors::shortfall(max_clients, limit) {
        tracing::warn!("{warning}");
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), String> {
    let config = Config::from_file(args.into_file_config()?).map_err(|e| e.to_string())?;
    open_files_limit(config.limits.max_clients);
    // Before the runtime: every thread it starts inherits the policy.
    ferroftp_server::sched::batch_transfers(config.batch_scheduling == BatchScheduling::Transfers);
    if config.batch_scheduling == BatchScheduling::All && !ferroftp_server::sched::use_batch_policy() {
        tracing::info!("not under SCHED_BATCH (another policy, or refused); big transfers on this host may run slower");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().worker_threads(config.worker_threads);
    let runtime = runtime.build().map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let root = match config.storage {
            StorageKind::Local => config
                .anonymous
                .root
                .canonicalize()
                .unwrap_or_else(|_| config.anonymous.root.clone())
                .display()
                .to_string(),
            StorageKind::Memory { capacity } => format!("in memory (at most {capacity} bytes)"),
        };
        let anonymous = match (config.anonymous.enabled, config.anonymous.write) {
            (false, _) => "anonymous login off".to_string(),
            (true, false) => format!("anonymous read-only, root {root}"),
            (true, true) => format!("anonymous read-write, root {root}"),
        };
        let server = Server::bind(config).await.map_err(|e| e.to_string())?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        // Not println!: a closed stdout (a supervisor that stopped reading)
        // must not bring the server down.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ferroftp {} listening on {addr} ({anonymous})", ferroftp_server::VERSION);
        let _ = writeln!(out, "try: ftp://{addr}/  or  nc {} {}", addr.ip(), addr.port());
        if let Some(implicit) = server.implicit_addr() {
            let _ = writeln!(out, "implicit FTPS listening on {implicit}");
        }
        let _ = out.flush();
        drop(out);
        #[cfg(unix)]
        if let Some(tls) = server.tls() {
            // SIGHUP reloads the certificate (after a renewal).
            if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        match tls.reload() {
                            Ok(()) => tracing::info!("TLS certificate reloaded"),
                            Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one"),
                        }
                    }
                });
            }
        }
        // On a worker thread, not this one: each accepted session then
        // starts on the accepting worker without waking another thread.
        let _ = tokio::spawn(server.run(shutdown_signal())).await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
