//! `probe`: the seed's manual active/passive test as one function. For
//! each data-connection mode it opens a fresh session, sets the mode up,
//! lists, retrieves a small file (and with `write` stores and deletes
//! one), and when something fails says why in plain words and what to
//! change.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::resolve;
use crate::control::{reply_text, ClientError, Control, Direction};
use crate::data::{self, ConnectFailure, DataMode, Offer, SetupError};
use crate::tls::ClientStream;
use crate::url::FtpUrl;

/// At most this much of a file is retrieved per mode.
const RETR_CAP: u64 = 4 * 1024 * 1024;

/// What to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Modes to try, in order.
    pub modes: Vec<DataMode>,
    /// Time allowed for each step.
    pub timeout: Duration,
    /// Address to announce in PORT/EPRT instead of our control address.
    pub active_address: Option<IpAddr>,
    /// Also STOR and DELE a small file.
    pub write: bool,
}

/// What kind of failure, for scripts (`--json`) and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The control port could not be reached.
    ConnectFailed,
    /// The greeting was not 220 (full, banned, not an FTP server).
    NotReady,
    /// USER/PASS refused.
    LoginRefused,
    /// The server requires TLS.
    TlsRequired,
    /// The server refused PASV or EPSV.
    PassiveRefused,
    /// The server refused PORT or EPRT.
    ActiveRefused,
    /// PASV announced an address that does not work; the control address does.
    NatAddress,
    /// The passive port refused the connection.
    PassivePortRefused,
    /// The passive port did not answer.
    PassivePortTimeout,
    /// The server did not (or could not) connect back in active mode.
    NoConnectBack,
    /// The transfer command failed.
    TransferFailed,
    /// The server said something that is not FTP.
    Protocol,
    /// TLS could not be set up (certificate, AUTH TLS refused, handshake).
    TlsFailed,
}

/// A failure explained.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The kind.
    pub cause: Cause,
    /// What happened, in plain words.
    pub detail: String,
    /// What to change.
    pub fix: String,
}

/// The result for one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// PASV, EPSV, PORT or EPRT.
    pub mode: String,
    /// True when a plain client using this mode works.
    pub works: bool,
    /// The server's reply to the set-up command.
    pub setup_reply: Option<String>,
    /// The address arithmetic, as the seed does it by hand.
    pub arithmetic: Option<String>,
    /// Where the data connection went (passive) or came from (active).
    pub data_peer: Option<String>,
    /// Time to open the data connection, milliseconds.
    pub open_ms: Option<f64>,
    /// Bytes received in the LIST.
    pub list_bytes: Option<u64>,
    /// The file retrieved, if any.
    pub retr_path: Option<String>,
    /// Bytes moved in all transfers of this mode.
    pub bytes: u64,
    /// Bytes per second over the transfers.
    pub rate: Option<f64>,
    /// Whether STOR and DELE worked (with `write`).
    pub write_ok: Option<bool>,
    /// The failure, explained.
    pub failure: Option<Diagnosis>,
    /// Other things worth knowing.
    pub notes: Vec<String>,
    /// The control-channel transcript of this mode's session.
    pub transcript: Vec<String>,
}

/// The whole probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The URL probed (password hidden).
    pub target: String,
    /// The resolved server address.
    pub server: Option<String>,
    /// The greeting.
    pub greeting: Option<String>,
    /// The login reply.
    pub login: Option<String>,
    /// A failure before any mode could be tried.
    pub fatal: Option<Diagnosis>,
    /// One report per mode.
    pub modes: Vec<ModeReport>,
    /// The transcript of the first session (connect and login).
    pub transcript: Vec<String>,
}

impl ProbeReport {
    /// True when at least one mode works.
    pub fn any_works(&self) -> bool {
        self.modes.iter().any(|m| m.works)
    }
}

fn transcript(control: &Control) -> Vec<String> {
    control
        .transcript
        .iter()
        .map(|l| match l.direction {
            Direction::Sent => format!("> {}", l.text),
            Direction::Received => format!("< {}", l.text),
        })
        .collect()
}

fn diag(cause: Cause, detail: impl Into<String>, fix: impl Into<String>) -> Diagnosis {
    Diagnosis { cause, detail: detail.into(), fix: fix.into() }
}

fn mentions_tls(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["tls", "ssl", "encrypt", "cleartext", "secure"].iter().any(|w| t.contains(w))
}

fn display_target(url: &FtpUrl) -> String {
    let scheme = match (url.tls, url.explicit_tls) {
        (true, _) => "ftps",
        (false, true) => "ftpes",
        _ => "ftp",
    };
    format!("{scheme}://{}@{}{}", url.user, url.authority(), url.path)
}

fn is_refused(e: &ClientError) -> bool {
    matches!(e, ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// A failed TLS set-up, explained.
fn tls_failure(e: &ClientError) -> Diagnosis {
    let text = e.to_string();
    let fix = if text.contains("certificate") || text.contains("Issuer") {
        "the server's certificate is not trusted here (self-signed?): pass --insecure to test anyway, or install a certificate from a CA"
    } else if matches!(e, ClientError::Refused { .. }) {
        "the server does not offer AUTH TLS: configure a certificate, or use ftp://"
    } else {
        "check that the port speaks TLS (ftps:// is implicit TLS, usually port 990; ftpes:// is AUTH TLS on the FTP port)"
    };
    diag(Cause::TlsFailed, format!("TLS failed: {text}"), fix)
}

/// Connects and logs in; on failure, the diagnosis.
async fn session(
    addr: SocketAddr,
    url: &FtpUrl,
    timeout: Duration,
) -> Result<(Control, String, String), (Diagnosis, Vec<String>)> {
    let tls = url.tls_client().map_err(|e| (diag(Cause::TlsFailed, e, "check the host name"), Vec::new()))?;
    let implicit = if url.tls { tls.clone() } else { None };
    let (mut control, greeting, _) = match Control::connect_with(addr, timeout, implicit).await {
        Ok(c) => c,
        Err(e) if url.tls && !matches!(&e, ClientError::Timeout(_)) && !is_refused(&e) => {
            return Err((tls_failure(&e), Vec::new()));
        }
        Err(e) => {
            let (what, fix) = match &e {
                ClientError::Timeout(_) => (
                    "no answer (timed out): a firewall drops the packets, or the host is down",
                    "check the host and port, and that the firewall lets the control port through",
                ),
                ClientError::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused => (
                    "connection refused: nothing listens on that port, or a firewall rejects it",
                    "check that the server runs and listens on this address and port",
                ),
                _ => ("failed", "check the address"),
            };
            return Err((
                diag(Cause::ConnectFailed, format!("cannot reach the control port {addr}: {what} ({e})"), fix),
                Vec::new(),
            ));
        }
    };
    let greeting_text = reply_text(&greeting);
    if greeting.code != 220 {
        let t = transcript(&control);
        return Err((
            diag(
                Cause::NotReady,
                format!("the server is not ready: {greeting_text}"),
                "a 421 usually means too many connections or a ban; retry later or ask the administrator",
            ),
            t,
        ));
    }
    if let (true, Some(tls)) = (url.explicit_tls, tls) {
        if let Err(e) = control.auth_tls(tls).await {
            let t = transcript(&control);
            return Err((tls_failure(&e), t));
        }
    }
    match control.login(&url.user, &url.password).await {
        Ok(reply) => {
            if control.tls.is_some() {
                for cmd in ["PBSZ 0", "PROT P"] {
                    if let Err(e) = control.expect_ok(cmd).await {
                        let t = transcript(&control);
                        return Err((
                            diag(
                                Cause::TlsFailed,
                                format!("{cmd}: {e}"),
                                "the server does not protect data connections",
                            ),
                            t,
                        ));
                    }
                }
            }
            Ok((control, greeting_text, reply_text(&reply)))
        }
        Err(ClientError::Refused { reply, .. }) => {
            let text = reply_text(&reply);
            let t = transcript(&control);
            if reply.code == 534 || reply.code == 521 || mentions_tls(&text) {
                Err((
                    diag(
                        Cause::TlsRequired,
                        format!("the server requires TLS (FTPS) for this login: {text}"),
                        "use ftps:// or a client with explicit FTPS (AUTH TLS)",
                    ),
                    t,
                ))
            } else {
                Err((
                    diag(
                        Cause::LoginRefused,
                        format!("login as {:?} refused: {text}", url.user),
                        "check the user name and password in the URL (ftp://user:password@host/)",
                    ),
                    t,
                ))
            }
        }
        Err(e) => {
            let t = transcript(&control);
            Err((diag(Cause::Protocol, format!("login failed: {e}"), "check that this is an FTP server"), t))
        }
    }
}

/// Runs the probe.
pub async fn probe(url: &FtpUrl, options: &ProbeOptions) -> ProbeReport {
    let mut report = ProbeReport {
        target: display_target(url),
        server: None,
        greeting: None,
        login: None,
        fatal: None,
        modes: Vec::new(),
        transcript: Vec::new(),
    };
    let addr = match resolve(&url.authority()).await {
        Ok(a) => a,
        Err(e) => {
            report.fatal = Some(diag(Cause::ConnectFailed, e.to_string(), "check the host name"));
            return report;
        }
    };
    report.server = Some(addr.to_string());
    match session(addr, url, options.timeout).await {
        Ok((mut control, greeting, login)) => {
            report.greeting = Some(greeting);
            report.login = Some(login);
            let _ = control.command("QUIT").await;
            report.transcript = transcript(&control);
        }
        Err((diagnosis, t)) => {
            report.fatal = Some(diagnosis);
            report.transcript = t;
            return report;
        }
    }
    let mut retr_path = (!url.is_directory()).then(|| url.path.clone());
    for &mode in &options.modes {
        let m = probe_mode(addr, url, mode, options, &mut retr_path).await;
        report.modes.push(m);
    }
    report
}

fn new_report(mode: DataMode) -> ModeReport {
    ModeReport {
        mode: mode.name().to_string(),
        works: false,
        setup_reply: None,
        arithmetic: None,
        data_peer: None,
        open_ms: None,
        list_bytes: None,
        retr_path: None,
        bytes: 0,
        rate: None,
        write_ok: None,
        failure: None,
        notes: Vec::new(),
        transcript: Vec::new(),
    }
}

fn arithmetic(mode: DataMode, reply: &str, announced: SocketAddr, peer: IpAddr) -> String {
    let port = announced.port();
    match mode {
        DataMode::Pasv => {
            let numbers = reply.find('(').and_then(|a| reply[a..].find(')').map(|b| &reply[a..=a + b])).unwrap_or("");
            format!("{numbers} -> {} port {port} = {}*256+{}", announced.ip(), port >> 8, port & 0xff)
        }
        DataMode::Epsv => format!("port {port} on the control connection's address {peer}"),
        DataMode::Port => format!(
            "we listen on {announced}: PORT {} ({port} = {}*256+{})",
            ferroftp_proto::hostport::format_host_port(match announced {
                SocketAddr::V4(a) => a,
                SocketAddr::V6(_) => return format!("we listen on {announced}"),
            }),
            port >> 8,
            port & 0xff
        ),
        DataMode::Eprt => {
            format!("we listen on {announced}: EPRT {}", ferroftp_proto::hostport::format_eprt(announced))
        }
    }
}

/// One transfer in `mode`: set up, send `command`, open the data
/// connection. The report gets the set-up details on the first call.
struct Opened {
    stream: ClientStream,
    open_time: Duration,
}

async fn open_transfer(
    control: &mut Control,
    mode: DataMode,
    options: &ProbeOptions,
    command: &str,
    report: &mut ModeReport,
) -> Result<Opened, Diagnosis> {
    let peer = control.peer.ip();
    let offer = data::set_up(control, mode, options.active_address)
        .await
        .map_err(|e| setup_failure(mode, e, control, options))?;
    match offer {
        Offer::Passive { reply, announced } => {
            let text = reply_text(&reply);
            report.arithmetic.get_or_insert_with(|| arithmetic(mode, &text, announced, peer));
            report.setup_reply.get_or_insert(text);
            let started = Instant::now();
            let stream = match data::connect(announced, options.timeout).await {
                Ok(s) => {
                    if announced.ip() != peer && report.data_peer.is_none() {
                        report.notes.push(format!("the server announces {} but is reached at {peer}; it works because {} is reachable from here", announced.ip(), announced.ip()));
                    }
                    s
                }
                Err(failure) if announced.ip() != peer => {
                    let fallback = SocketAddr::new(peer, announced.port());
                    let fallback_result = data::connect(fallback, options.timeout).await;
                    let works_instead = fallback_result.is_ok();
                    return Err(diag(
                        Cause::NatAddress,
                        format!(
                            "{mode} announces {} but the server is reached at {peer}: connecting to {announced} failed ({failure}); {}",
                            announced.ip(),
                            if works_instead { format!("the control address {fallback} works instead") } else { format!("the control address {fallback} does not work either") }
                        ),
                        format!(
                            "NAT misconfiguration: make the server announce its public address (ferroftp --public-address, vsftpd pasv_address, pure-ftpd -P, ProFTPD MasqueradeAddress){}",
                            if works_instead { "; meanwhile clients can ignore the PASV address (curl does by default; lftp: set ftp:ignore-pasv-address on) or use EPSV" } else { "" }
                        ),
                    ));
                }
                Err(failure) => return Err(passive_port_failure(mode, announced, failure)),
            };
            let open_time = started.elapsed();
            report.data_peer.get_or_insert(announced.to_string());
            let reply = control
                .command(command)
                .await
                .map_err(|e| diag(Cause::Protocol, format!("{command}: {e}"), "check the server's log"))?;
            if !(100..200).contains(&reply.code) {
                return Err(diag(
                    Cause::TransferFailed,
                    format!("{command} refused: {}", reply_text(&reply)),
                    "check the path and the user's permissions",
                ));
            }
            let stream = secure(control, stream).await?;
            Ok(Opened { stream, open_time })
        }
        Offer::Active { reply, listener, announced } => {
            let text = reply_text(&reply);
            report.arithmetic.get_or_insert_with(|| arithmetic(mode, &text, announced, peer));
            report.setup_reply.get_or_insert(text);
            let started = Instant::now();
            let reply = control
                .command(command)
                .await
                .map_err(|e| diag(Cause::Protocol, format!("{command}: {e}"), "check the server's log"))?;
            if reply.code == 425 {
                return Err(no_connect_back(mode, announced, Some(reply_text(&reply))));
            }
            if !(100..200).contains(&reply.code) {
                return Err(diag(
                    Cause::TransferFailed,
                    format!("{command} refused: {}", reply_text(&reply)),
                    "check the path and the user's permissions",
                ));
            }
            let Some((stream, from)) = data::accept(&listener, options.timeout).await else {
                // The server may still report its failure.
                let late = tokio::time::timeout(Duration::from_millis(200), control.read_reply())
                    .await
                    .ok()
                    .and_then(Result::ok);
                return Err(no_connect_back(mode, announced, late.map(|r| reply_text(&r))));
            };
            let open_time = started.elapsed();
            if report.data_peer.is_none() {
                report.data_peer = Some(from.to_string());
                report.notes.push(format!(
                    "the server connected from {from}{}",
                    if from.port() == 20 { " (port 20, as RFC 959 says)" } else { " (not port 20)" }
                ));
            }
            let stream = secure(control, stream).await?;
            Ok(Opened { stream, open_time })
        }
    }
}

fn setup_failure(mode: DataMode, error: SetupError, control: &Control, options: &ProbeOptions) -> Diagnosis {
    match error {
        SetupError::Refused { command, reply } if mode.is_passive() => diag(
            Cause::PassiveRefused,
            format!("the server refused {mode}: {}", reply_text(&reply)),
            format!("{} is not available on this server; use another mode", command.split(' ').next().unwrap_or("")),
        ),
        // Some servers (pyftpdlib) connect back at PORT time: 425 there
        // means they tried and could not reach us.
        SetupError::Refused { command, reply } if reply.code == 425 => {
            let argument = command.split_once(' ').map_or("", |(_, a)| a);
            let announced = match mode {
                DataMode::Port => ferroftp_proto::hostport::parse_port(argument).map(SocketAddr::V4).ok(),
                _ => ferroftp_proto::hostport::parse_eprt(argument).ok(),
            };
            match announced {
                Some(addr) => no_connect_back(mode, addr, Some(reply_text(&reply))),
                None => diag(Cause::NoConnectBack, format!("{mode}: {}", reply_text(&reply)), "use passive mode"),
            }
        }
        SetupError::Refused { reply, .. } => {
            let seen = control.local.ip();
            let announced = options.active_address.unwrap_or(seen);
            let detail = format!("the server refused {mode}: {}", reply_text(&reply));
            let fix = if announced != seen {
                format!("you announced {announced} but connect from {seen}: servers refuse a {mode} naming another address than the one they see (FTP bounce protection, RFC 2577); announce the address the server sees, or use passive mode")
            } else {
                format!("servers refuse {mode} when the address in it differs from the one they see you at (bounce protection, RFC 2577): a NAT between you and the server rewrites your address; use passive mode, or --active-address with your public address; some servers disable active mode altogether")
            };
            diag(Cause::ActiveRefused, detail, fix)
        }
        SetupError::Malformed { text, reason, .. } => diag(
            Cause::Protocol,
            format!("cannot read the {mode} reply {text:?}: {reason}"),
            "the server's reply is not as RFC 959/2428 describe",
        ),
        SetupError::Listen(ip, e) => diag(
            Cause::NoConnectBack,
            format!("cannot listen on {ip} for the server's connection: {e}"),
            "use passive mode",
        ),
        SetupError::PortNeedsIpv4(ip) => {
            diag(Cause::ActiveRefused, format!("PORT cannot carry the IPv6 address {ip}"), "use EPRT on IPv6")
        }
        SetupError::Control(e) => diag(Cause::Protocol, format!("{mode}: {e}"), "check the server's log"),
    }
}

fn passive_port_failure(mode: DataMode, addr: SocketAddr, failure: ConnectFailure) -> Diagnosis {
    let (cause, detail) = match failure {
        ConnectFailure::Refused => (
            Cause::PassivePortRefused,
            format!("{mode}: the passive port {addr} refused the connection: nothing listens there, or a firewall rejects it"),
        ),
        ConnectFailure::TimedOut => (Cause::PassivePortTimeout, format!("{mode}: no answer from the passive port {addr}: a firewall drops it")),
        ConnectFailure::Other => (Cause::PassivePortRefused, format!("{mode}: the passive port {addr} is unreachable")),
    };
    diag(
        cause,
        detail,
        "open (and forward, behind NAT) the server's whole passive port range in the firewall, and make the server use exactly that range (ferroftp --passive-ports A-B, vsftpd pasv_min_port/pasv_max_port, pure-ftpd -p, ProFTPD PassivePorts)",
    )
}

fn no_connect_back(mode: DataMode, announced: SocketAddr, server_said: Option<String>) -> Diagnosis {
    diag(
        Cause::NoConnectBack,
        format!(
            "{mode}: the server did not connect back to {announced}{}",
            server_said.map(|s| format!(" (it said: {s})")).unwrap_or_default()
        ),
        format!("a firewall or NAT on the client's side blocks incoming connections to {announced}: allow them, announce your public address with --active-address, or use passive mode"),
    )
}

/// Parses `ls -l` lines into (name, size) of regular files.
fn regular_files(listing: &[u8]) -> Vec<(String, u64)> {
    let text = String::from_utf8_lossy(listing);
    let mut files = Vec::new();
    for line in text.lines() {
        if !line.starts_with('-') {
            continue;
        }
        // Skip eight whitespace-separated fields; the rest is the name.
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..8 {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let name = rest.strip_prefix(' ').unwrap_or(rest);
        if let (Some(size), false) = (fields.get(4).and_then(|s| s.parse().ok()), name.is_empty()) {
            files.push((name.to_string(), size));
        }
    }
    files
}

/// TLS on a data connection when the control connection has it.
async fn secure(control: &Control, tcp: TcpStream) -> Result<ClientStream, Diagnosis> {
    match &control.tls {
        Some(tls) => tls.connect(tcp).await.map_err(|e| {
            diag(
                Cause::TlsFailed,
                format!("TLS on the data connection failed: {e}"),
                "servers that require TLS session reuse refuse clients that do not resume the control connection's session",
            )
        }),
        None => Ok(ClientStream::Tcp(tcp)),
    }
}

async fn read_capped(stream: &mut ClientStream, cap: u64) -> std::io::Result<(u64, bool)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok((total, false));
        }
        total += n as u64;
        if total >= cap {
            return Ok((total, true));
        }
    }
}

async fn probe_mode(
    addr: SocketAddr,
    url: &FtpUrl,
    mode: DataMode,
    options: &ProbeOptions,
    retr_path: &mut Option<String>,
) -> ModeReport {
    let mut report = new_report(mode);
    let mut control = match session(addr, url, options.timeout).await {
        Ok((control, _, _)) => control,
        Err((d, t)) => {
            report.failure = Some(d);
            report.transcript = t;
            return report;
        }
    };
    let outcome = run_mode(&mut control, url, mode, options, retr_path, &mut report).await;
    if let Err(d) = outcome {
        report.failure = Some(d);
    } else {
        report.works = true;
    }
    let _ = tokio::time::timeout(options.timeout, control.command("QUIT")).await;
    report.transcript = transcript(&control);
    report
}

async fn run_mode(
    control: &mut Control,
    url: &FtpUrl,
    mode: DataMode,
    options: &ProbeOptions,
    retr_path: &mut Option<String>,
    report: &mut ModeReport,
) -> Result<(), Diagnosis> {
    let protocol = |e: ClientError| diag(Cause::Protocol, e.to_string(), "check the server's log");
    control.command("TYPE I").await.map_err(protocol)?;
    let mut moved = 0u64;
    let mut busy = Duration::ZERO;
    // LIST the URL's directory.
    let dir = if url.is_directory() { url.path.clone() } else { parent_of(&url.path) };
    let list_command = format!("LIST {dir}");
    let started = Instant::now();
    let mut opened = open_transfer(control, mode, options, &list_command, report).await?;
    report.open_ms = Some(opened.open_time.as_secs_f64() * 1000.0);
    let mut listing = Vec::new();
    opened.stream.read_to_end(&mut listing).await.map_err(|e| {
        diag(Cause::TransferFailed, format!("reading the listing: {e}"), "a firewall may cut data connections")
    })?;
    drop(opened);
    finish(control, &list_command).await?;
    busy += started.elapsed();
    moved += listing.len() as u64;
    report.list_bytes = Some(listing.len() as u64);
    if retr_path.is_none() {
        let mut files = regular_files(&listing);
        files.sort_by_key(|(_, size)| (*size == 0, *size));
        *retr_path = files
            .first()
            .map(|(name, _)| format!("{}{name}", if dir.ends_with('/') { dir.clone() } else { format!("{dir}/") }));
    }
    if let Some(path) = retr_path.clone() {
        let command = format!("RETR {path}");
        let started = Instant::now();
        let mut opened = open_transfer(control, mode, options, &command, report).await?;
        let (bytes, capped) = read_capped(&mut opened.stream, RETR_CAP).await.map_err(|e| {
            diag(Cause::TransferFailed, format!("reading {path}: {e}"), "a firewall may cut data connections")
        })?;
        drop(opened);
        if capped {
            // We hung up early; the server answers 426 or 226.
            let _ = control.read_reply().await;
            report.notes.push(format!("retrieved the first {bytes} bytes of {path}"));
        } else {
            finish(control, &command).await?;
        }
        busy += started.elapsed();
        moved += bytes;
        report.retr_path = Some(path);
    }
    if options.write {
        let name = format!(
            "{}ferroftp-probe-{}.txt",
            if dir.ends_with('/') { dir.clone() } else { format!("{dir}/") },
            std::process::id()
        );
        let body = format!("ferroftp probe {mode}\n").repeat(16);
        let command = format!("STOR {name}");
        let started = Instant::now();
        let write = async {
            let mut opened = open_transfer(control, mode, options, &command, report).await?;
            opened.stream.write_all(body.as_bytes()).await.map_err(|e| {
                diag(Cause::TransferFailed, format!("{command}: {e}"), "a firewall may cut data connections")
            })?;
            let _ = opened.stream.shutdown().await;
            drop(opened);
            finish(control, &command).await?;
            let dele = control.command(&format!("DELE {name}")).await.map_err(protocol)?;
            if dele.code != 250 {
                return Err(diag(
                    Cause::TransferFailed,
                    format!("DELE {name}: {}", reply_text(&dele)),
                    "the user may upload but not delete",
                ));
            }
            Ok(())
        }
        .await;
        report.write_ok = Some(write.is_ok());
        write?;
        busy += started.elapsed();
        moved += body.len() as u64;
    }
    report.bytes = moved;
    if busy > Duration::ZERO {
        report.rate = Some(moved as f64 / busy.as_secs_f64());
    }
    Ok(())
}

async fn finish(control: &mut Control, command: &str) -> Result<(), Diagnosis> {
    let reply = control
        .read_reply()
        .await
        .map_err(|e| diag(Cause::Protocol, format!("{command}: {e}"), "check the server's log"))?;
    if (200..300).contains(&reply.code) {
        Ok(())
    } else {
        Err(diag(Cause::TransferFailed, format!("{command}: {}", reply_text(&reply)), "check the server's log"))
    }
}

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_parser_keeps_spaces_in_names() {
        let listing = b"-rw-r--r--    1 ftp      ftp          3221225472 Nov 24 15:15 \xe6\xb5\x8b\xe8\xaf\x95 file.txt\r\ndrwxr-xr-x 2 ftp ftp 4096 Nov 24 15:15 dir\r\n-rw-r--r-- 1 ftp ftp 5 Oct 20  2025 a\r\n";
        assert_eq!(regular_files(listing), vec![("测试 file.txt".to_string(), 3_221_225_472), ("a".to_string(), 5)]);
    }

    #[test]
    fn arithmetic_as_the_seed_does_it() {
        let a = arithmetic(
            DataMode::Pasv,
            "227 Entering Passive Mode (192,168,0,129,170,218).",
            "192.168.0.129:43738".parse().unwrap(),
            "192.168.0.129".parse().unwrap(),
        );
        assert_eq!(a, "(192,168,0,129,170,218) -> 192.168.0.129 port 43738 = 170*256+218");
        assert_eq!(parent_of("/a/b.txt"), "/a");
        assert_eq!(parent_of("/b.txt"), "/");
    }
}
