//! The open-files limit: raised at start as far as the system allows,
//! checked against `max_clients`, and named when accepts fail for it.
//!
//! A session holds up to four descriptors at once (its control
//! connection, a passive listener, a data connection, the file it sends
//! or receives). Many systems start services with a soft limit of 1,024
//! (systemd's default) and a far higher hard limit, so a server left at
//! the soft limit turns connections away at a few hundred sessions. The
//! soft limit is raised to the hard limit at start, as Go programs and
//! nginx's `worker_rlimit_nofile` do. Past the limit, new connections
//! wait unanswered in the listen queue: the log says which setting to
//! change, at most once per [`ACCEPT_WARNING_EVERY`].

use std::io;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors one session can hold at once.
pub const PER_SESSION: u64 = 4;

/// Descriptors the server holds besides its sessions (listeners, epoll,
/// the runtime's, the standard streams), with room to spare.
const BESIDES_SESSIONS: u64 = 64;

/// Least time between two warnings of failed accepts.
pub const ACCEPT_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The soft open-files limit before and after raising it to the hard
/// limit (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit the process started with.
    pub before: Option<u64>,
    /// The soft limit now.
    pub after: Option<u64>,
}

/// Raises the soft open-files limit to the hard limit.
///
/// # Errors
/// setrlimit's error (a hard limit above the kernel's `nr_open`, say);
/// the limit is then left as it was.
pub fn raise_open_files_limit() -> io::Result<Raised> {
    let now = getrlimit(Resource::Nofile);
    if now.current == now.maximum {
        return Ok(Raised { before: now.current, after: now.current });
    }
    setrlimit(Resource::Nofile, Rlimit { current: now.maximum, maximum: now.maximum })?;
    Ok(Raised { before: now.current, after: open_files_limit() })
}

/// The soft open-files limit now (`None`: unlimited).
pub fn open_files_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// A limit as the log shows it.
pub fn show_limit(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |l| l.to_string())
}

/// Descriptors `max_clients` sessions can need at once, all transferring.
pub fn needed_for(max_clients: usize) -> u64 {
    (max_clients as u64).saturating_mul(PER_SESSION).saturating_add(BESIDES_SESSIONS)
}

/// The warning to give at start when the open-files limit `limit` is below
/// what `max_clients` sessions can need; `None` when it is enough.
pub fn shortfall(max_clients: usize, limit: Option<u64>) -> Option<String> {
    let limit = limit?;
    let needed = needed_for(max_clients);
    (limit < needed).then(|| {
        let fits = limit.saturating_sub(BESIDES_SESSIONS) / PER_SESSION;
        let or_lower = if fits > 0 { format!(" or lower max_clients to {fits}") } else { String::new() };
        format!(
            "max_clients = {max_clients} can need {needed} open files (up to {PER_SESSION} a session) but the \
             open-files limit is {limit}: past it new connections wait unanswered. Raise the limit \
             (ulimit -n, or LimitNOFILE= in a systemd unit){or_lower}"
        )
    })
}

/// Failed accepts, warned about at most once per [`ACCEPT_WARNING_EVERY`]
/// with how many there were since: a server out of descriptors fails an
/// accept every time it tries (every 50 ms).
#[derive(Debug, Default)]
pub struct AcceptFailures {
    /// When the last warning was given.
    warned_at: Option<Instant>,
    /// Failures since then.
    since: u64,
}

impl AcceptFailures {
    /// Counts a failed accept; the warning to log now, if one is due.
    pub fn record(&mut self, error: &io::Error, now: Instant) -> Option<String> {
        self.since += 1;
        if self.warned_at.is_some_and(|at| now.duration_since(at) < ACCEPT_WARNING_EVERY) {
            return None;
        }
        let count = std::mem::take(&mut self.since);
        self.warned_at = Some(now);
        let out_of_descriptors = matches!(Errno::from_io_error(error), Some(Errno::MFILE | Errno::NFILE));
        let cause = if out_of_descriptors {
            let limit = show_limit(open_files_limit());
            format!(
                ": out of file descriptors (open-files limit {limit}); new connections wait unanswered until \
                 sessions end. Raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit) or lower max_clients"
            )
        } else {
            String::new()
        };
        Some(format!("accept failed {count} time(s) since the last warning: {error}{cause}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_checked_against_max_clients() {
        assert_eq!(needed_for(2000), 8064);
        assert_eq!(shortfall(2000, None), None, "unlimited");
        assert_eq!(shortfall(2000, Some(8064)), None);
        let text = shortfall(2000, Some(1024)).unwrap();
        assert!(text.contains("open-files limit is 1024") && text.contains("LimitNOFILE"), "{text}");
        assert!(text.contains("lower max_clients to 240"), "{text}");
        let tiny = shortfall(10, Some(64)).unwrap();
        assert!(!tiny.contains("lower max_clients"), "no session fits: {tiny}");
    }

    #[test]
    fn failed_accepts_are_warned_about_once_per_period_with_a_count() {
        let mut failures = AcceptFailures::default();
        let emfile = io::Error::from(Errno::MFILE);
        let start = Instant::now();
        let first = failures.record(&emfile, start).unwrap();
        assert!(first.contains("1 time(s)") && first.contains("out of file descriptors"), "{first}");
        for i in 1..=199u32 {
            assert_eq!(failures.record(&emfile, start + Duration::from_millis(50) * i), None);
        }
        let next = failures.record(&emfile, start + ACCEPT_WARNING_EVERY + Duration::from_millis(1)).unwrap();
        assert!(next.contains("200 time(s)"), "{next}");
        let other = failures.record(&io::Error::from(Errno::PERM), start + 3 * ACCEPT_WARNING_EVERY).unwrap();
        assert!(!other.contains("descriptors"), "{other}");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let raised = raise_open_files_limit().unwrap();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(raised.after, now.current);
        assert_eq!(now.current, now.maximum);
    }
}
