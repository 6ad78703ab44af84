//! Connection limits, the login timeout and the brute-force defence. The
//! second address, 127.0.0.2, stands in for another client host. Each
//! runs on both storage backends.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};

use crate::helpers::*;

on_both_backends!(
    a_full_server_answers_421_at_connect,
    connections_per_ip_are_limited,
    not_logging_in_in_time_closes_the_connection,
    rein_starts_the_login_clock_again,
    activity_moves_the_idle_deadline,
    repeated_failed_logins_close_the_connection,
    an_address_that_keeps_failing_is_banned,
);

/// Connects from `local` and returns the first reply line.
fn greeting_from(server: &TestServer, local: &str) -> (TcpStream, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&format!("{local}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut line = String::new();
    BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
    (stream, line)
}

fn a_full_server_answers_421_at_connect(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.max_clients = Some(2));
    let a = server.login();
    let _b = server.connect();
    let (_c, line) = greeting_from(&server, "127.0.0.1");
    assert!(line.starts_with("421 Too many users (2)"), "{line}");
    drop(a);
    // The freed place is taken by the next client. Polled: the server
    // gives the place back only after it has closed the connection, so
    // nothing a client sees marks the moment; trying to connect shows it.
    poll_until("a place is freed for the next client", || greeting_from(&server, "127.0.0.1").1.starts_with("220"));
}

fn connections_per_ip_are_limited(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.max_clients_per_ip = Some(1));
    let _a = server.login();
    let (_b, line) = greeting_from(&server, "127.0.0.1");
    assert!(line.starts_with("421 Too many connections from your address"), "{line}");
    let (_c, line) = greeting_from(&server, "127.0.0.2");
    assert!(line.starts_with("220"), "another address is let in: {line}");
}

fn not_logging_in_in_time_closes_the_connection(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.login_timeout = Some(1));
    // Logged in first, so its login deadline comes before the other's.
    let mut d = server.login();
    let mut c = server.connect();
    c.ok("USER ftp", 331);
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("not logged in in time"), "{text}");
    assert_eq!(c.read_to_end(), "");
    // Logged-in sessions are not affected: the 421 above says the logged-in
    // session's login deadline has passed too.
    d.ok("NOOP", 200);
}

fn rein_starts_the_login_clock_again(backend: Backend) {
    // The session keeps one timer; REIN brings its deadline nearer (from
    // the idle timeout to the login timeout), and the timer must follow.
    let server = TestServer::start_on(backend, |f| f.login_timeout = Some(1));
    let mut c = server.login();
    c.ok("REIN", 220);
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("not logged in in time"), "{text}");
}

fn activity_moves_the_idle_deadline(backend: Backend) {
    // The timer is moved lazily: when it fires early it must re-arm, not
    // close a session that was busy. The server tells the time itself: a
    // connection that does not log in is closed one login timeout (half
    // the idle timeout) after it came, so each NOOP comes half an idle
    // timeout after the one before, and the timer fires early three times.
    let server = TestServer::start_on(backend, |f| {
        f.idle_timeout = Some(2);
        f.login_timeout = Some(1);
    });
    let mut c = server.login();
    for _ in 0..3 {
        let mut tick = server.connect();
        let (code, text) = tick.reply();
        assert!(code == 421 && text.contains("not logged in in time"), "{text}");
        c.ok("NOOP", 200);
    }
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("idle too long"), "{text}");
}

fn repeated_failed_logins_close_the_connection(backend: Backend) {
    let server = TestServer::start_on(backend, |f| {
        f.anonymous = Some(false);
        f.max_login_failures = Some(2);
    });
    let mut c = server.connect();
    c.ok("USER ftp", 331);
    c.ok("PASS wrong", 530);
    c.ok("USER ftp", 331);
    let text = c.ok("PASS wrong", 421);
    assert!(text.contains("Too many failed logins"), "{text}");
    assert_eq!(c.read_to_end(), "");
}

fn an_address_that_keeps_failing_is_banned(backend: Backend) {
    let server = TestServer::start_on(backend, |f| {
        f.anonymous = Some(false);
        f.ban_failures = Some(3);
        f.ban_duration = Some(600);
    });
    for attempt in 1..=3 {
        let mut c = server.connect();
        c.ok("USER admin", 331);
        let (code, text) = c.cmd("PASS guess");
        if attempt < 3 {
            assert_eq!(code, 530, "{text}");
        } else {
            assert_eq!(code, 421, "{text}");
            assert!(text.contains("banned for 600 seconds"), "{text}");
        }
    }
    let (_s, line) = greeting_from(&server, "127.0.0.1");
    assert!(line.starts_with("421 Too many failed logins from your address"), "{line}");
    let (_t, line) = greeting_from(&server, "127.0.0.2");
    assert!(line.starts_with("220"), "other addresses are not banned: {line}");
}
