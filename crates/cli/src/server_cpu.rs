//! Where `ferroftp bench` reads a server's CPU time and memory.
//!
//! Two sources of CPU time:
//! - the server's process tree in /proc (`--pid`): utime+stime of every
//!   live process under it, plus what each has reaped of its children.
//!   A forked process that ends without being waited for by one still in
//!   the tree (re-parented to init, say) takes its CPU time with it, and
//!   /proc counts in clock ticks (10 ms);
//! - the server's cgroup (`--cgroup`): the kernel's CPU accounting of
//!   every task that was ever in it, exited or not, in nanoseconds
//!   (cgroup v1 `cpuacct.usage`) or microseconds (cgroup v2 `cpu.stat`).
//!
//! Memory (PSS) always comes from the process tree.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where a server's CPU time is read.
#[derive(Debug, Clone)]
pub enum CpuMeter {
    /// The process tree under this pid, from /proc.
    Tree(u32),
    /// A cgroup directory with CPU accounting.
    Cgroup(PathBuf),
}

impl CpuMeter {
    /// The meter the flags ask for: the cgroup when given (checked that it
    /// reads), else the process tree of `pid`, else none.
    pub fn from_flags(pid: Option<u32>, cgroup: Option<&PathBuf>) -> Result<Option<CpuMeter>, String> {
        match (cgroup, pid) {
            (Some(dir), _) => {
                let meter = CpuMeter::Cgroup(dir.clone());
                meter.seconds()?;
                Ok(Some(meter))
            }
            (None, Some(pid)) => Ok(Some(CpuMeter::Tree(pid))),
            (None, None) => Ok(None),
        }
    }

    /// CPU time used so far, seconds.
    pub fn seconds(&self) -> Result<f64, String> {
        match self {
            CpuMeter::Tree(pid) => Ok(tree_cpu_seconds(*pid)),
            CpuMeter::Cgroup(dir) => cgroup_cpu_seconds(dir),
        }
    }

    /// [`CpuMeter::seconds`] once the server has stopped using CPU (two
    /// samples 50 ms apart agree, at most 2 s): work a server defers past
    /// its reply, such as freeing a replaced file, still counts as the
    /// operation's. A server still busy after that (other clients) is
    /// named on stderr: its figure includes their work.
    pub async fn settled_seconds(&self) -> Result<f64, String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = self.seconds()?;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.seconds()?;
            if now <= last {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "bench: the server ({self}) was still using CPU 2 s after the run; CPU per operation includes it"
                );
                return Ok(now);
            }
            last = now;
        }
    }
}

impl std::fmt::Display for CpuMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CpuMeter::Tree(pid) => write!(f, "pid {pid}"),
            CpuMeter::Cgroup(dir) => write!(f, "cgroup {}", dir.display()),
        }
    }
}

/// CPU time of every task ever in the cgroup at `dir`, seconds: cgroup
/// v1's `cpuacct.usage` (ns), else cgroup v2's `usage_usec` in `cpu.stat`.
fn cgroup_cpu_seconds(dir: &std::path::Path) -> Result<f64, String> {
    let v1 = dir.join("cpuacct.usage");
    if let Ok(text) = std::fs::read_to_string(&v1) {
        return text
            .trim()
            .parse::<u64>()
            .map(|ns| ns as f64 / 1e9)
            .map_err(|e| format!("{}: not a count of nanoseconds ({e})", v1.display()));
    }
    let v2 = dir.join("cpu.stat");
    let text = std::fs::read_to_string(&v2).map_err(|e| {
        format!(
            "--cgroup {}: neither cpuacct.usage (cgroup v1) nor cpu.stat (cgroup v2) can be read: {e}",
            dir.display()
        )
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| us as f64 / 1e6)
        .ok_or_else(|| format!("{}: no usage_usec line", v2.display()))
}

/// The pids of `root` and all its descendants, from /proc.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent_of = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok())) {
                parent_of.insert(pid, ppid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// Fields of /proc/PID/stat after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// CPU time (utime+stime, plus that of reaped children) of a process
/// tree, seconds.
fn tree_cpu_seconds(root: u32) -> f64 {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    process_tree(root)
        .iter()
        .filter_map(|pid| stat_fields(*pid))
        .map(|f| [11, 12, 13, 14].iter().filter_map(|i| f.get(*i).and_then(|v| v.parse::<f64>().ok())).sum::<f64>())
        .sum::<f64>()
        / ticks
}

/// PSS of a process tree, KiB.
pub fn tree_pss_kib(root: u32) -> u64 {
    process_tree(root)
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_v1_directory_reads_cpuacct_usage_in_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpuacct.usage"), "1500000000\n").unwrap();
        let meter = CpuMeter::from_flags(None, Some(&dir.path().to_path_buf())).unwrap().unwrap();
        assert_eq!(meter.seconds().unwrap(), 1.5);
    }

    #[test]
    fn a_cgroup_v2_directory_reads_usage_usec_from_cpu_stat() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.stat"), "usage_usec 2250000\nuser_usec 2000000\nsystem_usec 250000\n")
            .unwrap();
        let meter = CpuMeter::from_flags(Some(1), Some(&dir.path().to_path_buf())).unwrap().unwrap();
        assert_eq!(meter.seconds().unwrap(), 2.25);
    }

    #[test]
    fn a_directory_without_cpu_accounting_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = CpuMeter::from_flags(None, Some(&dir.path().to_path_buf())).unwrap_err();
        assert!(err.contains("neither cpuacct.usage"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        std::fs::write(dir.path().join("cpu.stat"), "user_usec 5\n").unwrap();
        let err = CpuMeter::from_flags(None, Some(&dir.path().to_path_buf())).unwrap_err();
        assert!(err.contains("no usage_usec"), "{err}");
    }

    #[test]
    fn the_process_tree_counts_this_process_cpu() {
        let meter = CpuMeter::from_flags(Some(std::process::id()), None).unwrap().unwrap();
        let before = meter.seconds().unwrap();
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(meter.seconds().unwrap() > before);
    }
}
