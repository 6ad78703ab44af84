//! `ferroftp ls|get|put`: a small scriptable client. Passive (EPSV) by
//! default, `--active` for EPRT; `-c` resumes with REST; a progress bar on
//! a terminal, quiet otherwise.
//!
//! Exit codes: 0 done; 1 the server refused (a 4xx/5xx reply); 2 network,
//! URL or connection failure; 3 local file error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ferroftp_client::{Client, DataMode, FtpUrl, TransferError};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt;

/// Connection flags shared by ls, get and put.
#[derive(Debug, Args)]
pub struct Connection {
    /// Active mode (EPRT): the server connects to us.
    #[arg(long)]
    active: bool,
    /// Data-connection mode: pasv, epsv, port or eprt (overrides --active).
    #[arg(long, value_name = "MODE")]
    mode: Option<DataMode>,
    /// Seconds allowed for each step.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
    /// With ftps:// or ftpes://, accept any server certificate (self-signed).
    #[arg(short = 'k', long)]
    insecure: bool,
}

impl Connection {
    fn mode(&self) -> DataMode {
        self.mode.unwrap_or(if self.active { DataMode::Eprt } else { DataMode::Epsv })
    }
}

/// Flags of `ferroftp ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// ftp://[user[:password]@]host[:port]/dir/
    url: String,
    /// Names only (NLST).
    #[arg(short = '1', long)]
    names: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Flags of `ferroftp get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// ftp://[user[:password]@]host[:port]/path/file
    url: String,
    /// Where to write (default: the file's name in this directory; - for stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Continue a partial download (REST from the local file's size).
    #[arg(short = 'c', long = "continue")]
    resume: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Flags of `ferroftp put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The local file.
    file: PathBuf,
    /// ftp://[user[:password]@]host[:port]/dir/ (or /dir/name)
    url: String,
    /// Continue a partial upload (REST from the remote file's SIZE).
    #[arg(short = 'c', long = "continue")]
    resume: bool,
    #[command(flatten)]
    connection: Connection,
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<TransferError> for Failure {
    fn from(e: TransferError) -> Self {
        let code = match &e {
            TransferError::Local { .. } => 3,
            e if e.is_refusal() => 1,
            _ => 2,
        };
        Failure { code, message: e.to_string() }
    }
}

fn local(message: String) -> Failure {
    Failure { code: 3, message }
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("ferroftp: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(f: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => finish(rt.block_on(f)),
        Err(e) => finish(Err(local(format!("cannot start runtime: {e}")))),
    }
}

fn parse(url: &str, connection: &Connection) -> Result<FtpUrl, Failure> {
    let mut url = FtpUrl::parse(url).map_err(|e| Failure { code: 2, message: e.to_string() })?;
    url.insecure = connection.insecure;
    Ok(url)
}

/// A progress bar on a terminal; hidden otherwise.
fn progress_bar(total: Option<u64>, start: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(start);
    bar
}

/// Runs `ferroftp ls`.
pub fn ls(args: LsArgs) -> ExitCode {
    block_on(async move {
        let url = parse(&args.url, &args.connection)?;
        let mut client =
            Client::open(&url, args.connection.mode(), Duration::from_secs(args.connection.timeout)).await?;
        let listing = client.list(&url.path, args.names).await?;
        client.quit().await;
        // The wire's CRLF line ends become the local LF.
        let listing: Vec<u8> = listing.into_iter().filter(|b| *b != b'\r').collect();
        let mut stdout = tokio::io::stdout();
        stdout.write_all(&listing).await.map_err(|e| local(format!("writing the listing: {e}")))?;
        stdout.flush().await.map_err(|e| local(format!("writing the listing: {e}")))?;
        Ok(())
    })
}

/// Runs `ferroftp get`.
pub fn get(args: GetArgs) -> ExitCode {
    block_on(async move {
        let url = parse(&args.url, &args.connection)?;
        let name = url
            .path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Failure { code: 2, message: "the URL names no file".into() })?;
        let output = args.output.clone().unwrap_or_else(|| PathBuf::from(name));
        let mut client =
            Client::open(&url, args.connection.mode(), Duration::from_secs(args.connection.timeout)).await?;
        let total = client.size(&url.path).await?;
        if output.as_os_str() == "-" {
            let mut stdout = tokio::io::stdout();
            client.retrieve(&url.path, 0, &mut stdout, &mut |_| {}).await?;
            client.quit().await;
            return Ok(());
        }
        let offset = if args.resume { std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0) } else { 0 };
        if args.resume && total == Some(offset) {
            client.quit().await;
            return Ok(());
        }
        let created = !output.exists();
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(args.resume)
            .truncate(!args.resume)
            .open(&output)
            .await
            .map_err(|e| local(format!("{}: {e}", output.display())))?;
        let bar = progress_bar(total, offset);
        let shown = bar.clone();
        let result = client.retrieve(&url.path, offset, &mut file, &mut move |n| shown.set_position(offset + n)).await;
        bar.finish_and_clear();
        if let Err(e) = result {
            // Leave no empty or partial file we created ourselves behind a
            // refusal; a partial download is kept only when resuming.
            if created && (e.is_refusal() || std::fs::metadata(&output).is_ok_and(|m| m.len() == 0)) {
                let _ = std::fs::remove_file(&output);
            }
            return Err(e.into());
        }
        file.flush().await.map_err(|e| local(format!("{}: {e}", output.display())))?;
        client.quit().await;
        Ok(())
    })
}

/// Runs `ferroftp put`.
pub fn put(args: PutArgs) -> ExitCode {
    block_on(async move {
        let url = parse(&args.url, &args.connection)?;
        let file_name = args
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| local(format!("{}: not a file name", args.file.display())))?
            .to_string();
        let remote = if url.is_directory() { format!("{}{file_name}", url.path) } else { url.path.clone() };
        let mut file =
            tokio::fs::File::open(&args.file).await.map_err(|e| local(format!("{}: {e}", args.file.display())))?;
        let meta = file.metadata().await.map_err(|e| local(format!("{}: {e}", args.file.display())))?;
        if !meta.is_file() {
            return Err(local(format!("{}: not a regular file", args.file.display())));
        }
        let size = meta.len();
        let mut client =
            Client::open(&url, args.connection.mode(), Duration::from_secs(args.connection.timeout)).await?;
        let remote_size = if args.resume { client.size(&remote).await?.unwrap_or(0) } else { 0 };
        if remote_size > size {
            client.quit().await;
            return Err(Failure {
                code: 1,
                message: format!(
                    "cannot resume: the remote file ({remote_size} bytes) is larger than {} ({size} bytes)",
                    args.file.display()
                ),
            });
        }
        let offset = remote_size;
        if offset > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| local(format!("{}: {e}", args.file.display())))?;
        }
        if args.resume && offset == size && size > 0 {
            client.quit().await;
            return Ok(());
        }
        let bar = progress_bar(Some(size), offset);
        let shown = bar.clone();
        client.store(&remote, offset, &mut file, &mut move |n| shown.set_position(offset + n)).await?;
        bar.finish_and_clear();
        client.quit().await;
        Ok(())
    })
}
