//! `ferroftp bench URL`: a load generator that measures any FTP server.
//!
//! Scenarios: connection rate, login rate, small-file RETR and STOR with a
//! fresh data connection per file, big-file RETR and STOR throughput,
//! LIST of a directory, and the memory of N idle logged-in sessions. With
//! `--pid`, the server's CPU time per operation and memory are read from
//! /proc for its whole process tree (forking servers included); with
//! `--cgroup`, its CPU time comes from the cgroup's accounting instead
//! (see [`crate::server_cpu`]). Every run is bounded by a count or a
//! duration and stops by itself.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use ferroftp_client::{Client, Control, DataMode, FtpUrl};
use serde::Serialize;

use crate::server_cpu::{tree_pss_kib, CpuMeter};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Connect, read the greeting, QUIT.
    Connect,
    /// Connect, log in, QUIT.
    Login,
    /// RETR a small file over and over, a new data connection each time.
    SmallRetr,
    /// STOR small files over and over, a new data connection each time.
    SmallStor,
    /// RETR one big file per client.
    BigRetr,
    /// STOR one big file per client.
    BigStor,
    /// LIST the URL's directory over and over.
    List,
    /// What a soak mixes, one step per operation, each client on names of
    /// its own: STOR, RETR (its length checked), LIST, SIZE (checked),
    /// RNFR/RNTO, DELE.
    Mixed,
    /// Hold N logged-in sessions idle and measure the server's memory.
    Idle,
}

/// Flags of `ferroftp bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// ftp://[user[:password]@]host[:port][/dir/]
    url: String,
    /// The scenario.
    #[arg(long, value_enum, default_value = "connect")]
    scenario: Scenario,
    /// Concurrent clients (sessions for idle).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds to run (rate scenarios).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Stop after this many operations in all (rate scenarios).
    #[arg(long)]
    count: Option<u64>,
    /// File size for small-* and big-* scenarios, bytes.
    #[arg(long)]
    size: Option<u64>,
    /// Data-connection mode.
    #[arg(long, default_value = "epsv")]
    mode: DataMode,
    /// The server's process id: report its CPU time per operation and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// The server's cgroup directory (e.g. /sys/fs/cgroup/cpuacct/ftpd):
    /// read its CPU time from the cgroup's accounting, which counts every
    /// process the server forked, reaped or not, instead of from --pid's
    /// process tree.
    #[arg(long)]
    cgroup: Option<std::path::PathBuf>,
    /// Seconds a run waits, after its duration, for operations under way
    /// (a big transfer) before it cuts them off.
    #[arg(long, default_value_t = 60.0)]
    grace: f64,
    /// For small-retr and big-retr: download this existing file (a path,
    /// or a name in the URL's directory) instead of uploading
    /// `ferroftp-bench.bin` first (for read-only servers and mirrors).
    #[arg(long)]
    file: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One run's figures.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The scenario.
    pub scenario: Scenario,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations completed.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Operations cut off, still under way when the grace after the run's
    /// duration ran out.
    pub cut_off: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Payload megabytes (10^6) per second.
    pub mb_per_sec: f64,
    /// Latency percentiles of one operation, milliseconds.
    pub latency_ms: Option<Percentiles>,
    /// Server CPU time per operation (its cgroup's, or utime+stime of its
    /// process tree), microseconds.
    pub server_cpu_us_per_op: Option<f64>,
    /// The load generator's own CPU time per operation (every thread of
    /// this process), microseconds. On a machine it shares with the
    /// server, the rate can go no higher than the cores divided by this
    /// plus the server's CPU per operation: a server that cost nothing
    /// would still be held to cores / this.
    pub client_cpu_us_per_op: Option<f64>,
    /// Server memory (PSS of its process tree), KiB: the most seen while
    /// the clients were connected (sampled every second, and at the end of
    /// the run before the sessions quit).
    pub server_pss_kib: Option<u64>,
    /// For idle: PSS added per idle session, KiB.
    pub pss_kib_per_session: Option<f64>,
    /// For big transfers: how evenly concurrent transfers were served.
    pub fairness: Option<Fairness>,
}

/// How evenly concurrent transfers shared the bandwidth.
#[derive(Debug, Serialize)]
pub struct Fairness {
    /// The slowest transfer, MB/s.
    pub min_mb_per_sec: f64,
    /// The median transfer, MB/s.
    pub median_mb_per_sec: f64,
    /// The fastest transfer, MB/s.
    pub max_mb_per_sec: f64,
    /// Jain's fairness index of the transfers' rates: 1.0 when all are
    /// equal, 1/n when one transfer takes everything.
    pub jain_index: f64,
}

fn fairness(mut rates: Vec<f64>) -> Option<Fairness> {
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let n = rates.len() as f64;
    let sum: f64 = rates.iter().sum();
    let squares: f64 = rates.iter().map(|r| r * r).sum();
    Some(Fairness {
        min_mb_per_sec: rates[0],
        median_mb_per_sec: rates[rates.len() / 2],
        max_mb_per_sec: rates[rates.len() - 1],
        jain_index: if squares > 0.0 { sum * sum / (n * squares) } else { 1.0 },
    })
}

/// Latency percentiles.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Worst.
    pub max: f64,
}

fn percentiles(mut samples: Vec<f64>) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Some(Percentiles { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) })
}

/// Shared counters of a rate run.
#[derive(Default)]
struct Tally {
    /// Operations begun (done, failed or cut off).
    begun: AtomicU64,
    ops: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    first_error: Mutex<Option<String>>,
    latencies: Mutex<Vec<f64>>,
    /// MB/s of each operation that moved bytes.
    rates: Mutex<Vec<f64>>,
}

impl Tally {
    fn record(&self, result: Result<u64, String>, started: Instant) {
        match result {
            Ok(bytes) => {
                self.ops.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
                let seconds = started.elapsed().as_secs_f64();
                if let Ok(mut l) = self.latencies.lock() {
                    l.push(seconds * 1000.0);
                }
                if bytes > 0 {
                    if let Ok(mut r) = self.rates.lock() {
                        r.push(bytes as f64 / seconds.max(1e-9) / 1e6);
                    }
                }
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert(e);
                }
            }
        }
    }
}

async fn open(url: &FtpUrl, mode: DataMode) -> Result<Client, String> {
    Client::open(url, mode, Duration::from_secs(30)).await.map_err(|e| e.to_string())
}

fn file_path(url: &FtpUrl, name: &str) -> String {
    if url.is_directory() {
        format!("{}{name}", url.path)
    } else {
        url.path.clone()
    }
}

/// One client of a rate run: what it does, and against what.
struct Worker {
    scenario: Scenario,
    url: FtpUrl,
    addr: std::net::SocketAddr,
    mode: DataMode,
    payload: Arc<Vec<u8>>,
    id: usize,
    /// What the retr scenarios download.
    retr_path: String,
}

/// One operation (number `n` of the run) of a rate scenario, on the
/// worker's session.
async fn operation(w: &Worker, session: &mut Option<Client>, n: u64) -> Result<u64, String> {
    let (scenario, url, mode, payload, client_id) = (w.scenario, &w.url, w.mode, &w.payload[..], w.id);
    let addr = w.addr;
    match scenario {
        Scenario::Connect => {
            let (mut c, greeting, _) =
                Control::connect(addr, Duration::from_secs(30)).await.map_err(|e| e.to_string())?;
            if greeting.code != 220 {
                return Err(format!("greeting {}", greeting.code));
            }
            c.command("QUIT").await.map_err(|e| e.to_string())?;
            Ok(0)
        }
        Scenario::Login => {
            let c = open(url, mode).await?;
            c.quit().await;
            Ok(0)
        }
        _ => {
            if session.is_none() {
                *session = Some(open(url, mode).await?);
            }
            let client = session.as_mut().ok_or("no session")?;
            let result = match scenario {
                // Discarded in the kernel: the load generator must not be
                // the limit of a download's speed.
                Scenario::SmallRetr | Scenario::BigRetr => {
                    client.retrieve_discard(&w.retr_path).await.map_err(|e| e.to_string())
                }
                Scenario::SmallStor | Scenario::BigStor => {
                    // A bounded set of names per client.
                    let name = file_path(url, &format!("ferroftp-bench-{client_id}-{}.bin", n % 16));
                    let mut source: &[u8] = payload;
                    client.store(&name, 0, &mut source, &mut |_| {}).await.map_err(|e| e.to_string())
                }
                Scenario::Mixed => mixed_step(client, w, n).await,
                _ => client.list(&url.path, false).await.map(|l| l.len() as u64).map_err(|e| e.to_string()),
            };
            result.inspect_err(|_| *session = None)
        }
    }
}

/// Steps of the mixed scenario, in order.
const MIXED_STEPS: u64 = 6;

/// Step `n % MIXED_STEPS` of the mixed scenario for this worker.
async fn mixed_step(client: &mut Client, w: &Worker, n: u64) -> Result<u64, String> {
    let stored = file_path(&w.url, &format!("ferroftp-bench-mixed-{}.bin", w.id));
    let renamed = file_path(&w.url, &format!("ferroftp-bench-mixed-{}.renamed", w.id));
    let expected = w.payload.len() as u64;
    let failed = |e: ferroftp_client::TransferError| e.to_string();
    match n % MIXED_STEPS {
        0 => {
            let mut source: &[u8] = &w.payload;
            client.store(&stored, 0, &mut source, &mut |_| {}).await.map_err(failed)
        }
        1 => match client.retrieve_discard(&stored).await.map_err(failed)? {
            got if got == expected => Ok(got),
            got => Err(format!("mixed: RETR gave {got} bytes of {expected}")),
        },
        2 => client.list(&w.url.path, false).await.map(|l| l.len() as u64).map_err(failed),
        3 => match client.size(&stored).await.map_err(failed)? {
            Some(got) if got == expected => Ok(0),
            other => Err(format!("mixed: SIZE said {other:?}, not {expected}")),
        },
        4 => {
            client.control.expect_ok(&format!("RNFR {stored}")).await.map_err(|e| e.to_string())?;
            client.control.expect_ok(&format!("RNTO {renamed}")).await.map_err(|e| e.to_string())?;
            Ok(0)
        }
        _ => {
            client.control.expect_ok(&format!("DELE {renamed}")).await.map_err(|e| e.to_string())?;
            Ok(0)
        }
    }
}

/// Runs the bench; the report.
pub async fn bench(args: &BenchArgs) -> Result<BenchReport, String> {
    let url = FtpUrl::parse(&args.url).map_err(|e| e.to_string())?;
    let addr = ferroftp_client::client::resolve(&url.authority()).await.map_err(|e| e.to_string())?;
    let big = matches!(args.scenario, Scenario::BigRetr | Scenario::BigStor);
    let size = args.size.unwrap_or(if big { 256 << 20 } else { 4096 }) as usize;
    // What uploads send (and the retr scenarios upload first); nothing when
    // a given file is downloaded instead.
    let retr_given = args.file.is_some() && matches!(args.scenario, Scenario::SmallRetr | Scenario::BigRetr);
    let payload: Arc<Vec<u8>> =
        Arc::new(if retr_given { Vec::new() } else { (0..size).map(|i| (i % 251) as u8).collect() });
    let retr_path = match &args.file {
        Some(f) if f.starts_with('/') => f.clone(),
        Some(f) => file_path(&url, f),
        None => file_path(&url, "ferroftp-bench.bin"),
    };
    if matches!(args.scenario, Scenario::SmallRetr | Scenario::BigRetr) && args.file.is_none() {
        // The file to retrieve.
        let mut c = open(&url, args.mode).await?;
        let mut source: &[u8] = &payload;
        c.store(&retr_path, 0, &mut source, &mut |_| {}).await.map_err(|e| format!("setup: {e}"))?;
        c.quit().await;
    }
    if args.scenario == Scenario::Idle {
        return idle(args, &url).await;
    }
    let cpu_meter = CpuMeter::from_flags(args.pid, args.cgroup.as_ref())?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let limit = args.count.unwrap_or(if big { args.clients as u64 } else { u64::MAX });
    // Big transfers start together, every session already logged in, so
    // the per-transfer rates show how the server shares its bandwidth:
    // the clients wait at the start line until all have logged in, then
    // at `go` while the run's clock and the server's CPU are read, so
    // neither counts the logins (1,000 password hashes are seconds).
    let gate = if big { args.clients + 1 } else { 1 };
    let (start_line, go) = (Arc::new(tokio::sync::Barrier::new(gate)), Arc::new(tokio::sync::Barrier::new(gate)));
    // Every client waits here after its last operation, with its session
    // open, until the server's memory has been read.
    let finished = Arc::new(tokio::sync::Barrier::new(args.clients + 1));
    let read_cpu = || cpu_meter.as_ref().map(CpuMeter::seconds).transpose();
    // A big run reads both at its start line instead (below).
    let mut cpu_before = if big { None } else { read_cpu()? };
    let mut own_cpu_before = own_cpu_seconds();
    let mut started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|id| {
            let (tally, stop, issued) = (Arc::clone(&tally), Arc::clone(&stop), Arc::clone(&issued));
            let (start_line, go, finished) = (Arc::clone(&start_line), Arc::clone(&go), Arc::clone(&finished));
            let worker = Worker {
                scenario: args.scenario,
                url: url.clone(),
                addr,
                mode: args.mode,
                payload: Arc::clone(&payload),
                id,
                retr_path: retr_path.clone(),
            };
            tokio::spawn(async move {
                let mut session = None;
                let mut ready = true;
                if big {
                    let t = Instant::now();
                    match open(&worker.url, worker.mode).await {
                        Ok(c) => session = Some(c),
                        Err(e) => tally.record(Err(e), t),
                    }
                    start_line.wait().await;
                    go.wait().await;
                    ready = session.is_some();
                }
                // This client's own count: the mixed scenario's steps go
                // in order per client.
                let mut mine = 0u64;
                while ready && !stop.load(Ordering::Relaxed) {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= limit {
                        break;
                    }
                    let t = Instant::now();
                    tally.begun.fetch_add(1, Ordering::Relaxed);
                    let step = if worker.scenario == Scenario::Mixed { mine } else { n };
                    mine += 1;
                    let r = operation(&worker, &mut session, step).await;
                    tally.record(r, t);
                }
                // Measured while this client is still connected.
                finished.wait().await;
                if let Some(c) = session {
                    c.quit().await;
                }
            })
        })
        .collect();
    if big {
        start_line.wait().await;
        cpu_before = read_cpu()?;
        own_cpu_before = own_cpu_seconds();
        started = Instant::now();
        go.wait().await;
    }
    let deadline = started + Duration::from_secs_f64(args.duration.max(0.1));
    let aborts: Vec<_> = tasks.iter().map(tokio::task::JoinHandle::abort_handle).collect();
    // The server's memory: sampled every second while the clients work,
    // and once more when they are done but still connected.
    let mut pss_peak = None;
    let sample = |peak: &mut Option<u64>| {
        if let Some(pid) = args.pid {
            *peak = Some(peak.unwrap_or(0).max(tree_pss_kib(pid)));
        }
    };
    let all_done = finished.wait();
    tokio::pin!(all_done);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let stop_at = tokio::time::Instant::from_std(deadline);
    let abort_at = stop_at + Duration::from_secs_f64(args.grace.max(0.0));
    loop {
        tokio::select! {
            _ = &mut all_done => break,
            () = tokio::time::sleep_until(stop_at), if !stop.load(Ordering::Relaxed) => {
                stop.store(true, Ordering::Relaxed);
            }
            () = tokio::time::sleep_until(abort_at) => {
                // Operations still under way after the grace are cut off;
                // they count as neither done nor failed.
                for a in &aborts {
                    a.abort();
                }
                break;
            }
            _ = tick.tick() => sample(&mut pss_peak),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let own_cpu = own_cpu_seconds() - own_cpu_before;
    sample(&mut pss_peak);
    for t in tasks {
        let _ = t.await;
    }
    let ops = tally.ops.load(Ordering::Relaxed);
    let bytes = tally.bytes.load(Ordering::Relaxed);
    let latencies = std::mem::take(&mut *tally.latencies.lock().map_err(|_| "lock")?);
    let first_error = tally.first_error.lock().map_err(|_| "lock")?.clone();
    Ok(BenchReport {
        scenario: args.scenario,
        clients: args.clients,
        ops,
        errors: tally.errors.load(Ordering::Relaxed),
        cut_off: tally.begun.load(Ordering::Relaxed).saturating_sub(ops + tally.errors.load(Ordering::Relaxed)),
        first_error,
        seconds,
        ops_per_sec: ops as f64 / seconds,
        bytes,
        mb_per_sec: bytes as f64 / seconds / 1e6,
        latency_ms: percentiles(latencies),
        server_cpu_us_per_op: match (cpu_meter, cpu_before) {
            (Some(meter), Some(before)) if ops > 0 => {
                Some((meter.settled_seconds().await? - before) * 1e6 / ops as f64)
            }
            _ => None,
        },
        client_cpu_us_per_op: (ops > 0).then(|| own_cpu * 1e6 / ops as f64),
        server_pss_kib: pss_peak,
        pss_kib_per_session: None,
        fairness: if big { fairness(std::mem::take(&mut *tally.rates.lock().map_err(|_| "lock")?)) } else { None },
    })
}

/// CPU time this process (the load generator, every thread) has used,
/// seconds.
fn own_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Opens N sessions, holds them, measures the server's memory.
async fn idle(args: &BenchArgs, url: &FtpUrl) -> Result<BenchReport, String> {
    let before = args.pid.map(tree_pss_kib);
    let started = Instant::now();
    let mut sessions = Vec::with_capacity(args.clients);
    let mut errors = 0u64;
    let mut first_error = None;
    for chunk in (0..args.clients).collect::<Vec<_>>().chunks(64) {
        let mode = args.mode;
        let opened = futures_join(chunk.iter().map(|_| {
            let url = url.clone();
            async move { open(&url, mode).await }
        }))
        .await;
        for r in opened {
            match r {
                Ok(c) => sessions.push(c),
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    // Let the server settle, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = args.pid.map(tree_pss_kib);
    let held = sessions.len();
    for c in sessions {
        c.quit().await;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(BenchReport {
        scenario: Scenario::Idle,
        clients: args.clients,
        ops: held as u64,
        errors,
        cut_off: 0,
        first_error,
        seconds,
        ops_per_sec: held as f64 / seconds,
        bytes: 0,
        mb_per_sec: 0.0,
        latency_ms: None,
        server_cpu_us_per_op: None,
        client_cpu_us_per_op: None,
        server_pss_kib: during,
        pss_kib_per_session: match (before, during) {
            (Some(b), Some(d)) if held > 0 => Some(d.saturating_sub(b) as f64 / held as f64),
            _ => None,
        },
        fairness: None,
    })
}

/// Awaits futures concurrently (a small join_all).
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

fn render(r: &BenchReport) -> String {
    let mut out = format!(
        "scenario {:?}, {} clients: {} ops in {:.2} s = {:.0} ops/s, {} errors\n",
        r.scenario, r.clients, r.ops, r.seconds, r.ops_per_sec, r.errors
    );
    if r.cut_off > 0 {
        out.push_str(&format!("{} operations still under way at the end of the grace were cut off\n", r.cut_off));
    }
    if r.bytes > 0 {
        out.push_str(&format!("payload {} bytes = {:.1} MB/s\n", r.bytes, r.mb_per_sec));
    }
    if let Some(l) = &r.latency_ms {
        out.push_str(&format!("latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n", l.p50, l.p90, l.p99, l.max));
    }
    if let Some(cpu) = r.server_cpu_us_per_op {
        out.push_str(&format!("server CPU per op: {cpu:.1} us\n"));
    }
    if let Some(cpu) = r.client_cpu_us_per_op {
        out.push_str(&format!("load generator CPU per op: {cpu:.1} us\n"));
    }
    if let Some(pss) = r.server_pss_kib {
        out.push_str(&format!("server PSS: {pss} KiB\n"));
    }
    if let Some(per) = r.pss_kib_per_session {
        out.push_str(&format!("PSS per idle session: {per:.1} KiB\n"));
    }
    if let Some(f) = &r.fairness {
        out.push_str(&format!(
            "per transfer MB/s: min {:.1}  median {:.1}  max {:.1}  (Jain's fairness index {:.3})\n",
            f.min_mb_per_sec, f.median_mb_per_sec, f.max_mb_per_sec, f.jain_index
        ));
    }
    if let Some(e) = &r.first_error {
        out.push_str(&format!("first error: {e}\n"));
    }
    out
}

/// Exit codes: 0 no errors; 1 some operations failed; 2 could not run.
pub fn run(args: BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferroftp: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(bench(&args)) {
        Ok(report) => {
            let text = if args.json {
                serde_json::to_string_pretty(&report).map(|t| t + "\n").unwrap_or_default()
            } else {
                render(&report)
            };
            let mut out = std::io::stdout().lock();
            let _ = std::io::Write::write_all(&mut out, text.as_bytes());
            if report.errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("ferroftp: {e}");
            ExitCode::from(2)
        }
    }
}
