//! Admission control and brute-force defence: how many clients in all and
//! per IP, and which IPs are banned after too many failed logins.
//!
//! All state is bounded: the failure table forgets entries whose window
//! has passed and never holds more than [`MAX_TRACKED_IPS`] addresses.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most addresses whose failed logins are remembered at once.
pub const MAX_TRACKED_IPS: usize = 100_000;

/// The limits, from the config.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Most control connections in all.
    pub max_clients: usize,
    /// Most control connections from one IP.
    pub max_clients_per_ip: usize,
    /// Failed logins from one IP within `ban_window` that ban it.
    pub ban_failures: u32,
    /// The window failed logins are counted in.
    pub ban_window: Duration,
    /// How long a ban lasts.
    pub ban_duration: Duration,
}

/// Why a connection is turned away (421 at connect).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The address is banned.
    #[error("Too many failed logins from your address; try again in {0} seconds.")]
    Banned(u64),
    /// The server is full.
    #[error("Too many users ({0}); try again later.")]
    Full(usize),
    /// Too many connections from this address.
    #[error("Too many connections from your address ({0}).")]
    TooManyFromIp(usize),
}

#[derive(Debug, Default)]
struct FailureRecord {
    /// When the failures in the current window happened.
    recent: Vec<Instant>,
    /// Banned until then.
    banned_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    clients: usize,
    per_ip: HashMap<IpAddr, usize>,
    failures: HashMap<IpAddr, FailureRecord>,
    per_user: HashMap<String, usize>,
}

/// A logged-in session of a user; dropping it frees the user's place.
#[derive(Debug)]
pub struct UserSlot {
    limits: Arc<Limits>,
    name: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut state = self.limits.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = state.per_user.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                state.per_user.remove(&self.name);
            }
        }
    }
}

/// Shared admission state.
#[derive(Debug)]
pub struct Limits {
    settings: LimitSettings,
    state: Mutex<State>,
}

/// A connection that was let in; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<Limits>,
    ip: IpAddr,
    /// Clients connected, this one included, when it was let in.
    pub clients_at_start: usize,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = self.limits.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.clients = state.clients.saturating_sub(1);
        // One lookup (the key is hashed once), not a get and a remove.
        if let Entry::Occupied(mut count) = state.per_ip.entry(self.ip) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

impl Limits {
    /// Limits with these settings.
    pub fn new(settings: LimitSettings) -> Arc<Limits> {
        Arc::new(Limits { settings, state: Mutex::new(State::default()) })
    }

    /// Lets a connection from `ip` in, or says why not.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admitted, Refusal> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = state.failures.get(&ip).and_then(|r| r.banned_until) {
            if until > now {
                return Err(Refusal::Banned((until - now).as_secs().max(1)));
            }
        }
        if state.clients >= self.settings.max_clients {
            return Err(Refusal::Full(self.settings.max_clients));
        }
        let max_per_ip = self.settings.max_clients_per_ip;
        // One lookup for the check and the count. A refused address
        // already has connections (the limit is at least 1), so no empty
        // entry is left behind.
        let from_ip = state.per_ip.entry(ip).or_insert(0);
        if *from_ip >= max_per_ip {
            return Err(Refusal::TooManyFromIp(max_per_ip));
        }
        *from_ip += 1;
        state.clients += 1;
        Ok(Admitted { limits: Arc::clone(self), ip, clients_at_start: state.clients })
    }

    /// Takes one of `name`'s at most `max` sessions.
    ///
    /// # Errors
    /// `Err(max)` when the user has that many sessions already.
    pub fn enter_user(self: &Arc<Self>, name: &str, max: Option<usize>) -> Result<UserSlot, usize> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let count = state.per_user.entry(name.to_string()).or_insert(0);
        if let Some(max) = max {
            if *count >= max {
                return Err(max);
            }
        }
        *count += 1;
        Ok(UserSlot { limits: Arc::clone(self), name: name.to_string() })
    }

    /// Records a failed login from `ip`; returns the ban length when this
    /// failure got the address banned.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let settings = &self.settings;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.failures.len() >= MAX_TRACKED_IPS && !state.failures.contains_key(&ip) {
            // SECURITY: a flood of failures from many addresses must not
            // grow memory; forget records with nothing in force.
            state.failures.retain(|_, r| {
                r.banned_until.is_some_and(|u| u > now)
                    || r.recent.iter().any(|t| now.duration_since(*t) < settings.ban_window)
            });
            if state.failures.len() >= MAX_TRACKED_IPS {
                return None;
            }
        }
        let record = state.failures.entry(ip).or_default();
        record.recent.retain(|t| now.duration_since(*t) < settings.ban_window);
        record.recent.push(now);
        if settings.ban_failures > 0 && record.recent.len() >= settings.ban_failures as usize {
            record.recent.clear();
            record.banned_until = Some(now + settings.ban_duration);
            return Some(settings.ban_duration);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize, ban: u32) -> Arc<Limits> {
        Limits::new(LimitSettings {
            max_clients: max,
            max_clients_per_ip: per_ip,
            ban_failures: ban,
            ban_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(300),
        })
    }

    #[test]
    fn counts_and_frees_places() {
        let l = limits(2, 1, 0);
        let now = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = l.admit(a, now).unwrap();
        assert_eq!(first.clients_at_start, 1);
        assert_eq!(l.admit(a, now).unwrap_err(), Refusal::TooManyFromIp(1));
        let second = l.admit(b, now).unwrap();
        assert_eq!(l.admit("127.0.0.3".parse().unwrap(), now).unwrap_err(), Refusal::Full(2));
        drop(first);
        drop(second);
        assert!(l.admit(a, now).is_ok());
    }

    #[test]
    fn bans_after_failures_within_the_window() {
        let l = limits(10, 10, 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(l.record_failure(ip, t0), None);
        // An old failure falls out of the window.
        assert_eq!(l.record_failure(ip, t0 + Duration::from_secs(61)), None);
        assert_eq!(l.record_failure(ip, t0 + Duration::from_secs(62)), None);
        assert_eq!(l.record_failure(ip, t0 + Duration::from_secs(63)), Some(Duration::from_secs(300)));
        assert!(matches!(l.admit(ip, t0 + Duration::from_secs(64)), Err(Refusal::Banned(_))));
        assert!(l.admit("127.0.0.2".parse().unwrap(), t0 + Duration::from_secs(64)).is_ok());
        assert!(l.admit(ip, t0 + Duration::from_secs(64 + 300)).is_ok());
    }
}
