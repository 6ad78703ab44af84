//! The server's scheduling policy (setting `batch_scheduling`): which
//! threads run under SCHED_BATCH.
//!
//! On one host, a big transfer runs the client and the server side by
//! side, each on its own core. Every segment a client sends wakes the
//! server's thread with a "sync" hint, and a woken thread preempts what
//! runs: once the two share a core they take turns on it while the other
//! core idles. Under SCHED_BATCH (sched(7)) a woken thread does not
//! preempt, and the scheduler moves work to the idle core instead.
//!
//! But a whole server under SCHED_BATCH lets even nice-19 work delay every
//! wake-up of every session: with two nice-19 busy loops on the machine
//! the soak's mix of commands ran at a quarter of its rate. So by default
//! (`"transfers"`) only a thread streaming a big transfer runs under
//! SCHED_BATCH, and only while it streams ([`batch_while_streaming`]);
//! sessions run under SCHED_OTHER. `true` puts every thread under
//! SCHED_BATCH, set once on the thread that starts the runtime so all
//! inherit it ([`use_batch_policy`]); `false` leaves every thread alone.
//! The figures are in docs/BENCHMARKS.md and docs/CONFIG.md.
//!
//! A server started under another policy (`chrt --idle`, a real-time
//! one) is left under it, and so is one started with SCHED_RESET_ON_FORK
//! (systemd's `CPUSchedulingResetOnFork=`), which would undo the policy in
//! every thread it starts anyway.

// The two calls below have no safe wrapper in the crates this project
// uses (rustix, socket2, nix).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether threads that stream big transfers run under SCHED_BATCH while
/// they do (`batch_scheduling = "transfers"`).
static BATCH_TRANSFERS: AtomicBool = AtomicBool::new(false);

/// Makes streaming threads run under SCHED_BATCH while they stream.
pub fn batch_transfers(on: bool) {
    BATCH_TRANSFERS.store(on, Ordering::Relaxed);
}

/// The calling thread back under SCHED_OTHER when dropped.
#[derive(Debug)]
pub struct BatchWhile(());

impl Drop for BatchWhile {
    fn drop(&mut self) {
        set_policy(libc::SCHED_OTHER);
    }
}

/// For a thread about to stream a big transfer: SCHED_BATCH until the
/// guard is dropped, when `batch_transfers` asked for it and the thread
/// is under SCHED_OTHER (a whole server under SCHED_BATCH, or under
/// another policy, is left alone).
#[must_use]
pub fn batch_while_streaming() -> Option<BatchWhile> {
    if !BATCH_TRANSFERS.load(Ordering::Relaxed) || policy() != Some(libc::SCHED_OTHER) {
        return None;
    }
    set_policy(libc::SCHED_BATCH).then_some(BatchWhile(()))
}

/// Moves the calling thread from SCHED_OTHER to SCHED_BATCH; whether it
/// is under SCHED_BATCH now. A thread under another policy is left as it
/// is, and a refused call (a seccomp filter, say) leaves it as it was.
#[must_use]
pub fn use_batch_policy() -> bool {
    match policy() {
        Some(libc::SCHED_OTHER) => set_policy(libc::SCHED_BATCH),
        other => other == Some(libc::SCHED_BATCH),
    }
}

/// The calling thread's scheduling policy.
fn policy() -> Option<libc::c_int> {
    // SAFETY: sched_getscheduler takes only a thread id (0: the calling
    // thread) and touches no memory of ours.
    let policy = unsafe { libc::sched_getscheduler(0) };
    (policy >= 0).then_some(policy)
}

/// Sets the calling thread's policy (priority 0, as both normal policies
/// need); whether it took.
fn set_policy(policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads one sched_param through the pointer,
    // which points at a local that lives for the whole call; pid 0 is the
    // calling thread.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_thread_moves_to_batch_and_threads_it_starts_inherit_it() {
        std::thread::spawn(|| {
            // From SCHED_OTHER, whatever the tests run under.
            assert!(set_policy(libc::SCHED_OTHER));
            assert!(use_batch_policy());
            assert_eq!(policy(), Some(libc::SCHED_BATCH));
            assert!(use_batch_policy(), "a second call finds it done");
            let child = std::thread::spawn(policy).join().unwrap();
            assert_eq!(child, Some(libc::SCHED_BATCH));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_streaming_thread_is_under_batch_only_while_it_streams() {
        std::thread::spawn(|| {
            assert!(set_policy(libc::SCHED_OTHER));
            batch_transfers(true);
            let guard = batch_while_streaming();
            assert!(guard.is_some());
            assert_eq!(policy(), Some(libc::SCHED_BATCH));
            drop(guard);
            assert_eq!(policy(), Some(libc::SCHED_OTHER));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_under_another_policy_is_left_under_it() {
        std::thread::spawn(|| {
            assert!(set_policy(libc::SCHED_IDLE));
            assert!(!use_batch_policy());
            assert_eq!(policy(), Some(libc::SCHED_IDLE));
        })
        .join()
        .unwrap();
    }
}
