//! `ferroftp probe URL`: runs the probe and prints a table and the
//! explanation of every failure (or JSON).

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ferroftp_client::probe::{probe, ModeReport, ProbeOptions, ProbeReport};
use ferroftp_client::{DataMode, FtpUrl};

/// Flags of `ferroftp probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// ftp://[user[:password]@]host[:port][/path]
    url: String,
    /// Print the control-channel transcript of every session.
    #[arg(short, long)]
    verbose: bool,
    /// Print a machine-readable JSON report instead of text.
    #[arg(long)]
    json: bool,
    /// Try only this mode (pasv, epsv, port, eprt); repeatable.
    #[arg(long = "mode", value_name = "MODE")]
    modes: Vec<DataMode>,
    /// Address to announce in PORT/EPRT (your public address behind NAT).
    #[arg(long, value_name = "IP")]
    active_address: Option<IpAddr>,
    /// Seconds allowed for each step.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    timeout: f64,
    /// Also upload and delete a small file in each mode.
    #[arg(long)]
    write: bool,
    /// With ftps:// or ftpes://, accept any server certificate (self-signed).
    #[arg(short = 'k', long)]
    insecure: bool,
}

/// Exit codes: 0 some mode works; 1 none does; 2 no mode could be tried.
pub fn run(args: ProbeArgs) -> ExitCode {
    let url = match FtpUrl::parse(&args.url) {
        Ok(mut u) => {
            u.insecure = args.insecure;
            u
        }
        Err(e) => {
            eprintln!("ferroftp: {e}");
            return ExitCode::from(2);
        }
    };
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        eprintln!("ferroftp: --timeout must be between 0 and 3600 seconds");
        return ExitCode::from(2);
    }
    let options = ProbeOptions {
        modes: if args.modes.is_empty() { DataMode::ALL.to_vec() } else { args.modes.clone() },
        timeout: Duration::from_secs_f64(args.timeout),
        active_address: args.active_address,
        write: args.write,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferroftp: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(probe(&url, &options));
    let text = if args.json {
        serde_json::to_string_pretty(&report).map(|t| t + "\n").unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
    } else {
        render(&report, args.verbose)
    };
    // Not print!: a closed pipe (`| head`) must not panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if report.fatal.is_some() {
        ExitCode::from(2)
    } else if report.any_works() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn human_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1} MB/s", r / 1e6)
    } else {
        format!("{:.1} kB/s", r / 1e3)
    }
}

fn transcript(out: &mut String, lines: &[String]) {
    for l in lines {
        out.push_str(&format!("    {l}\n"));
    }
}

/// The text report.
pub fn render(report: &ProbeReport, verbose: bool) -> String {
    let mut out = format!("probe {}", report.target);
    if let Some(server) = &report.server {
        out.push_str(&format!(" ({server})"));
    }
    out.push('\n');
    if let Some(g) = &report.greeting {
        out.push_str(&format!("  greeting: {g}\n"));
    }
    if let Some(l) = &report.login {
        out.push_str(&format!("  login:    {l}\n"));
    }
    if verbose {
        transcript(&mut out, &report.transcript);
    }
    if let Some(f) = &report.fatal {
        out.push_str(&format!("\nFAILED before any mode could be tried: {}\n  fix: {}\n", f.detail, f.fix));
        return out;
    }
    out.push('\n');
    for m in &report.modes {
        if let (Some(reply), Some(arith)) = (&m.setup_reply, &m.arithmetic) {
            out.push_str(&format!("{:<5} {reply}\n      {arith}\n", m.mode));
        }
        if verbose {
            out.push_str(&format!("{:<5} session:\n", m.mode));
            transcript(&mut out, &m.transcript);
        }
    }
    out.push_str(&format!(
        "\n{:<5} {:<6} {:>10} {:>10} {:>11}  {}\n",
        "mode", "works", "open", "bytes", "rate", "data connection"
    ));
    for m in &report.modes {
        out.push_str(&row(m));
    }
    let failures: Vec<&ModeReport> = report.modes.iter().filter(|m| m.failure.is_some()).collect();
    for m in &report.modes {
        for note in &m.notes {
            out.push_str(&format!("\n{}: {note}", m.mode));
        }
    }
    if report.modes.iter().any(|m| !m.notes.is_empty()) {
        out.push('\n');
    }
    for m in &failures {
        if let Some(f) = &m.failure {
            out.push_str(&format!("\n{} fails: {}\n  fix: {}\n", m.mode, f.detail, f.fix));
        }
    }
    if let Some(path) = report.modes.iter().find_map(|m| m.retr_path.as_ref()) {
        out.push_str(&format!("\neach mode: LIST, then RETR {path}\n"));
    }
    let working = report.modes.iter().filter(|m| m.works).count();
    out.push_str(&format!("\n{working} of {} modes work.\n", report.modes.len()));
    out
}

fn row(m: &ModeReport) -> String {
    let dash = || "-".to_string();
    format!(
        "{:<5} {:<6} {:>10} {:>10} {:>11}  {}\n",
        m.mode,
        if m.works { "yes" } else { "NO" },
        m.open_ms.map_or_else(dash, |ms| format!("{ms:.1} ms")),
        if m.works { human_bytes(m.bytes) } else { dash() },
        m.rate.map_or_else(dash, human_rate),
        m.data_peer.clone().unwrap_or_else(dash),
    )
}
