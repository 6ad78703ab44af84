//! The event stream: what an observer registered on the server is told.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ferroftp_server::events::{DataFailure, DataMode, Direction, Event, FileOp, LoginRefused, Observer};
use ferroftp_server::FileConfig;

use crate::helpers::*;

/// Records every event; tests wait on it for what they expect.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    arrived: Condvar,
}

impl Observer for Recorder {
    fn observe(&self, event: &Event) {
        self.events.lock().unwrap().push(event.clone());
        self.arrived.notify_all();
    }
}

impl Recorder {
    /// The first event `pick` accepts, waiting for it (bounded).
    fn wait_for<T>(&self, what: &str, pick: impl Fn(&Event) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        let mut events = self.events.lock().unwrap();
        loop {
            if let Some(found) = events.iter().find_map(&pick) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what} event; got {:#?}", *events);
            events = self.arrived.wait_timeout(events, left).unwrap().0;
        }
    }
}

/// A server with a recorder registered, `f` in its root holding `contents`.
fn start(contents: &[u8], adjust: impl FnOnce(&mut FileConfig)) -> (TestServer, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let observer: Arc<dyn Observer> = recorder.clone();
    let server = TestServer::start_observed(Backend::Local, vec![observer], |f| {
        f.login_failure_delay_ms = Some(1);
        adjust(f);
    });
    std::fs::write(server.path("f"), contents).unwrap();
    (server, recorder)
}

#[test]
fn logins_transfers_file_changes_and_logouts_are_observed() {
    let (server, seen) = start(b"0123456789", |_| {});
    let mut c = server.connect();
    c.ok("USER anonymous", 331);
    c.ok("PASS me@example.org", 230);
    let peer = c.stream.local_addr().unwrap();
    seen.wait_for("login", |e| match e {
        Event::Login { peer: p, user, refused: None, tls: false } if *p == peer => Some(user.clone()),
        _ => None,
    });
    c.ok("TYPE I", 200);
    assert_eq!(c.fetch(Mode::Epsv, "RETR f"), b"0123456789");
    c.upload(Mode::Port, "STOR up", b"uploaded");
    c.fetch(Mode::Pasv, "NLST");
    let transfers: Vec<(Direction, String, u64, DataMode)> =
        [Direction::Download, Direction::Upload, Direction::Listing]
            .iter()
            .map(|want| {
                seen.wait_for("transfer", |e| match e {
                    Event::Transfer(t) if t.direction == *want && t.failure.is_none() && !t.tls => {
                        Some((t.direction, t.path.clone(), t.bytes, t.mode))
                    }
                    _ => None,
                })
            })
            .collect();
    assert_eq!(
        transfers,
        [
            (Direction::Download, "/f".to_string(), 10, DataMode::ExtendedPassive),
            (Direction::Upload, "/up".to_string(), 8, DataMode::Active),
            (Direction::Listing, "/".to_string(), "f\r\nup\r\n".len() as u64, DataMode::Passive),
        ]
    );
    c.ok("MKD d", 257);
    c.ok("RNFR up", 350);
    c.ok("RNTO d/up2", 250);
    c.ok("MFMT 20200102030405 d/up2", 213);
    c.ok("DELE d/up2", 250);
    c.ok("RMD d", 250);
    let expected = [
        FileOp::Mkdir("/d".into()),
        FileOp::Rename { from: "/up".into(), to: "/d/up2".into() },
        FileOp::SetMtime { path: "/d/up2".into(), secs: 1_577_934_245 },
        FileOp::Delete("/d/up2".into()),
        FileOp::Rmdir("/d".into()),
    ];
    for op in &expected {
        seen.wait_for("file", |e| {
            matches!(e, Event::File { op: o, user, .. } if o == op && user == "ftp").then_some(())
        });
    }
    c.ok("QUIT", 221);
    let user = seen.wait_for("logout", |e| match e {
        Event::Logout { peer: p, user, .. } if *p == peer => Some(user.clone()),
        _ => None,
    });
    assert_eq!(user, "ftp");
}

#[test]
fn refusals_bans_and_data_connection_failures_are_observed() {
    let (server, seen) = start(b"x", |f| {
        f.anonymous = Some(false);
        f.ban_failures = Some(2);
        f.max_login_failures = Some(5);
        f.data_timeout = Some(1);
    });
    let mut c = server.connect();
    c.ok("USER anonymous", 331);
    c.ok("PASS x", 530);
    c.ok("USER nobody", 331);
    assert_eq!(c.cmd("PASS wrong").0, 421, "the second failure bans");
    seen.wait_for("refusal", |e| {
        matches!(e, Event::Login { user, refused: Some(LoginRefused::Credentials), .. } if user == "nobody")
            .then_some(())
    });
    let banned = seen.wait_for("ban", |e| match e {
        Event::Ban { address, duration } => Some((*address, *duration)),
        _ => None,
    });
    assert_eq!(banned.0, std::net::IpAddr::from([127, 0, 0, 1]));
    assert!(banned.1 > Duration::ZERO);

    // A passive port nobody connects to: the cause probe would name.
    let (server, seen) = start(b"x", |f| f.data_timeout = Some(1));
    let mut c = server.connect();
    c.ok("USER anonymous", 331);
    c.ok("PASS me@example.org", 230);
    c.pasv();
    c.ok("RETR f", 150);
    assert_eq!(c.reply().0, 425);
    let cause = seen.wait_for("data failure", |e| match e {
        Event::DataFailed { cause, .. } => Some(*cause),
        _ => None,
    });
    assert_eq!(cause, DataFailure::PassivePortTimeout);
    seen.wait_for("failed transfer", |e| match e {
        Event::Transfer(t) if t.failure.as_ref().is_some_and(|(code, _)| *code == 425) => Some(()),
        _ => None,
    });
}
