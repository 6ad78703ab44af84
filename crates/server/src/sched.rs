//! The server's scheduling policy: SCHED_BATCH (setting
//! `batch_scheduling`, on by default).
//!
//! On one host, a big transfer runs the client and the server side by
//! side, each on its own core. But every segment a client sends wakes the
//! server's thread with a "sync" hint, which Linux reads as "the waker is
//! about to sleep", and a woken thread preempts what runs. Once the two
//! share a core they stay there, taking turns every few microseconds while
//! the other core idles: `sched_switch` events showed curl and the
//! streaming thread swapping every 17 us on one core, and 1 GiB STOR from
//! curl ran at 2.1-2.4 GB/s instead of 3.9-4.3 in about half the runs
//! (RETR: 2.0-2.9 instead of 4.2-5.8).
//!
//! Under SCHED_BATCH (sched(7)) a woken server thread no longer preempts
//! what runs: put on a busy core, it waits there, and the scheduler moves
//! work to the idle core instead of letting the two take turns. The same
//! STOR ran at 3.8-4.3 GB/s in every run. Nothing else changes: the same
//! nice level and the same share of the CPU, and small transfers measured
//! the same (docs/BENCHMARKS.md). On cores that other work keeps busy, a
//! woken thread waits for the running task's slice, which could delay a
//! reply; measured with two CPU-bound processes on both cores, small
//! downloads went the other way (p99 0.22-0.26 ms against 3.8 ms, and
//! twice the files a second).
//!
//! Set once, on the thread that starts the runtime: every thread started
//! after it (sessions, the file pool, streaming transfers) inherits it.
//! A server started under another policy (`chrt --idle`, a real-time
//! one) is left under it, and so is one started with SCHED_RESET_ON_FORK
//! (systemd's `CPUSchedulingResetOnFork=`), which would undo the policy in
//! every thread it starts anyway.

// The two calls below have no safe wrapper in the crates this project
// uses (rustix, socket2, nix).
#![allow(unsafe_code)]

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
