//! The `ferroftp` binary: parses flags, starts logging, and runs a
//! subcommand. All the work lives in the library crates.

// Only the server's `sched` module may use `unsafe` (the workspace denies
// it; this crate forbids it outright).
#![forbid(unsafe_code)]

mod bench;
mod probe;
mod serve;
mod server_cpu;
mod transfer;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ferroftp: an FTP server and toolkit.
#[derive(Debug, Parser)]
#[command(name = "ferroftp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the FTP server (default: anonymous, read-only, the current
    /// directory, on 127.0.0.1:2121).
    Serve(serve::ServeArgs),
    /// Manage the users file (argon2id password hashes).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Test PASV, EPSV, PORT and EPRT against any FTP server and explain
    /// what fails.
    Probe(probe::ProbeArgs),
    /// List a directory: ferroftp ls ftp://host/dir/
    Ls(transfer::LsArgs),
    /// Download a file: ferroftp get ftp://host/file [-o FILE] [-c]
    Get(transfer::GetArgs),
    /// Upload a file: ferroftp put FILE ftp://host/dir/ [-c]
    Put(transfer::PutArgs),
    /// Measure any FTP server: connection rate, small and big transfers,
    /// listings, idle-session memory.
    Bench(bench::BenchArgs),
    /// Write a self-signed certificate and key for testing FTPS.
    Cert {
        /// Where to write the certificate (PEM).
        #[arg(long, default_value = "cert.pem")]
        cert: std::path::PathBuf,
        /// Where to write the private key (PEM).
        #[arg(long, default_value = "key.pem")]
        key: std::path::PathBuf,
        /// Host names and addresses the certificate is for.
        #[arg(default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        names: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERROFTP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: journald, log files and
        // fail2ban get plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Commands::Serve(args) => serve::run(args),
        Commands::User(cmd) => user::run(cmd),
        Commands::Probe(args) => return probe::run(args),
        Commands::Ls(args) => return transfer::ls(args),
        Commands::Get(args) => return transfer::get(args),
        Commands::Put(args) => return transfer::put(args),
        Commands::Bench(args) => return bench::run(args),
        Commands::Cert { cert, key, names } => ferroftp_server::tls::write_self_signed(names, &cert, &key)
            .map(|()| println!("wrote {} and {}", cert.display(), key.display()))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferroftp: {message}");
            ExitCode::FAILURE
        }
    }
}
