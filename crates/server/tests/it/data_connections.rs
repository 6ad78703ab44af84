//! Data-connection set-up: announced addresses, port ranges, the peer
//! check, bounce protection, EPSV ALL, timeouts and the active source port.
//! Every address here is a loopback one; 127.0.0.2 plays the foreign host.
//! Each runs on both storage backends.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};

use ferroftp_server::{Config, FileConfig};

use crate::helpers::*;

on_both_backends!(
    pasv_announces_public_address_and_uses_the_range,
    a_two_port_passive_range_serves_download_after_download,
    sessions_take_turns_in_a_two_port_range,
    public_address_may_be_a_host_name,
    a_full_passive_range_answers_425,
    passive_connection_from_a_foreign_address_is_refused,
    a_foreign_connection_already_queued_before_retr_is_skipped,
    a_session_reuses_its_passive_port_drops_stale_connections_and_lets_it_go,
    passive_peer_check_can_be_turned_off_for_proxies,
    bounce_protection_refuses_foreign_hosts_and_low_ports,
    epsv_all_forbids_other_setups,
    nobody_connecting_gives_425_and_the_session_goes_on,
    active_connections_come_from_port_20_when_allowed,
    ipv6_control_connection_uses_epsv_and_eprt,
    modes_can_be_switched_off,
);

/// Connects to `addr` from 127.0.0.2, the stand-in for another host.
fn connect_from_foreign_host(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

fn pasv_announces_public_address_and_uses_the_range(backend: Backend) {
    let (first, last) = (fixed_port(backend, 31100), fixed_port(backend, 31110));
    let server = TestServer::start_on(backend, |f| {
        f.passive_ports = Some(format!("{first}-{last}"));
        f.public_address = Some("127.0.0.9".into());
    });
    let mut c = server.login();
    for _ in 0..5 {
        let addr = c.pasv();
        assert_eq!(addr.ip().to_string(), "127.0.0.9");
        assert!((first..=last).contains(&addr.port()), "{addr}");
        let port = c.epsv();
        assert!((first..=last).contains(&port), "{port}");
    }
    // The listener is on the control connection's address, so the
    // announced port works there.
    let port = c.epsv();
    server.files().write("f", b"data");
    c.send("RETR f");
    assert_eq!(c.reply().0, 150);
    let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"data");
    assert_eq!(c.reply().0, 226);
}

/// The server closes a download first, so each data connection leaves its
/// port in TIME_WAIT on the server's side for a minute. Without
/// SO_REUSEADDR on the passive listener, a range of two ports would serve
/// two downloads and then answer 425.
fn a_two_port_passive_range_serves_download_after_download(backend: Backend) {
    let (first, last) = (fixed_port(backend, 31130), fixed_port(backend, 31131));
    let server = TestServer::start_on(backend, |f| f.passive_ports = Some(format!("{first}-{last}")));
    let body = random_bytes(10_000, 3);
    server.files().write("f", &body);
    let mut c = server.login();
    c.ok("TYPE I", 200);
    for i in 0..20 {
        let mode = if i % 2 == 0 { Mode::Pasv } else { Mode::Epsv };
        assert_eq!(c.fetch(mode, "RETR f"), body, "download {i}");
    }
}

fn sessions_take_turns_in_a_two_port_range(backend: Backend) {
    // Three sessions share two ports: a session must not keep its port
    // after its transfer when the range is this small.
    let (first, last) = (fixed_port(backend, 31140), fixed_port(backend, 31141));
    let server = TestServer::start_on(backend, |f| f.passive_ports = Some(format!("{first}-{last}")));
    let body = random_bytes(5_000, 4);
    server.files().write("f", &body);
    let mut sessions: Vec<_> = (0..3)
        .map(|_| {
            let mut c = server.login();
            c.ok("TYPE I", 200);
            c
        })
        .collect();
    for round in 0..4 {
        for (n, c) in sessions.iter_mut().enumerate() {
            assert!(c.fetch(Mode::Epsv, "RETR f") == body, "round {round}, session {n}: bytes differ");
        }
    }
}

fn public_address_may_be_a_host_name(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.public_address = Some("localhost".into()));
    let mut c = server.login();
    assert_eq!(c.pasv().ip().to_string(), "127.0.0.1");
}

/// Fixed ports in tests stay below the kernel's ephemeral range
/// (32768-60999), where another test's connection could hold them.
fn a_full_passive_range_answers_425(backend: Backend) {
    let (first, last) = (fixed_port(backend, 31120), fixed_port(backend, 31121));
    let server = TestServer::start_on(backend, |f| f.passive_ports = Some(format!("{first}-{last}")));
    let _a = TcpListener::bind(("127.0.0.1", first)).unwrap();
    let _b = TcpListener::bind(("127.0.0.1", last)).unwrap();
    let mut c = server.login();
    let text = c.ok("PASV", 425);
    assert!(text.contains(&format!("{first}-{last}")), "{text}");
}

fn passive_connection_from_a_foreign_address_is_refused(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    server.files().write("secret", b"only for the client");
    let mut c = server.login();
    let addr = c.pasv();
    c.send("RETR secret");
    assert_eq!(c.reply().0, 150);
    // A thief on another address reaches the port first.
    let mut thief = connect_from_foreign_host(addr);
    thief.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut stolen = Vec::new();
    let _ = thief.read_to_end(&mut stolen);
    assert!(stolen.is_empty(), "the thief got {stolen:?}");
    // The real client still gets the file.
    let mut data = TcpStream::connect(addr).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"only for the client");
    assert_eq!(c.reply().0, 226);
}

fn a_foreign_connection_already_queued_before_retr_is_skipped(backend: Backend) {
    // The server takes a waiting connection straight from the accept queue
    // (no wait); the peer check must hold there too.
    let server = TestServer::start_on(backend, |_| {});
    server.files().write("secret", b"only for the client");
    let mut c = server.login();
    let addr = c.pasv();
    let mut thief = connect_from_foreign_host(addr);
    let mut data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(TIMEOUT)).unwrap();
    c.send("RETR secret");
    assert_eq!(c.reply().0, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"only for the client");
    assert_eq!(c.reply().0, 226);
    thief.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut stolen = Vec::new();
    let _ = thief.read_to_end(&mut stolen);
    assert!(stolen.is_empty(), "the thief got {stolen:?}");
}

fn a_session_reuses_its_passive_port_drops_stale_connections_and_lets_it_go(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    server.files().write("f", b"fresh");
    let mut c = server.login();
    let first = c.pasv();
    // A connection made for the first PASV and never used...
    let mut stale = TcpStream::connect(first).unwrap();
    stale.set_read_timeout(Some(TIMEOUT)).unwrap();
    // ...must not be the one the next transfer takes.
    let second = c.pasv();
    assert_eq!(second, first, "the session's listener is kept for the next PASV");
    let mut data = TcpStream::connect(second).unwrap();
    data.set_read_timeout(Some(TIMEOUT)).unwrap();
    c.send("RETR f");
    assert_eq!(c.reply().0, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"fresh");
    assert_eq!(c.reply().0, 226);
    let mut leftover = Vec::new();
    let _ = stale.read_to_end(&mut leftover);
    assert!(leftover.is_empty(), "the stale connection got {leftover:?}");
    // An idle session lets the port go after a while: a connection waiting
    // in the listener's queue (no transfer takes it) is reset when the
    // listener is closed.
    let mut waiting = TcpStream::connect(first).unwrap();
    waiting.set_read_timeout(Some(TIMEOUT)).unwrap();
    match waiting.read(&mut [0u8; 1]) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("port {} was not let go: {other:?}", first.port()),
    }
    c.ok("NOOP", 200);
    assert!(TcpStream::connect(first).is_err(), "port {} is still listening", first.port());
}

fn passive_peer_check_can_be_turned_off_for_proxies(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.passive_peer_check = Some(false));
    server.files().write("f", b"via proxy");
    let mut c = server.login();
    let addr = c.pasv();
    c.send("RETR f");
    assert_eq!(c.reply().0, 150);
    let mut proxy = connect_from_foreign_host(addr);
    let mut got = Vec::new();
    proxy.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"via proxy");
    assert_eq!(c.reply().0, 226);
}

fn bounce_protection_refuses_foreign_hosts_and_low_ports(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.login();
    // Refused before any connection is attempted.
    let text = c.ok("PORT 127,0,0,2,200,10", 504);
    assert!(text.contains("bounce"), "{text}");
    c.ok("EPRT |1|127.0.0.2|51210|", 504);
    c.ok("PORT 127,0,0,1,0,25", 504);
    c.ok("EPRT |1|127.0.0.1|80|", 504);
    c.ok("EPRT |2|::1|5000|", 504);
    // Nothing was set up, so a transfer has no data connection.
    c.ok("LIST", 425);
}

fn epsv_all_forbids_other_setups(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let mut c = server.login();
    c.ok("EPSV ALL", 200);
    c.ok("PASV", 503);
    c.ok("PORT 127,0,0,1,200,10", 503);
    c.ok("EPRT |1|127.0.0.1|51210|", 503);
    assert_eq!(c.fetch(Mode::Epsv, "NLST"), b"");
}

fn nobody_connecting_gives_425_and_the_session_goes_on(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.data_timeout = Some(1));
    let mut c = server.login();
    c.pasv();
    c.send("LIST");
    assert_eq!(c.reply().0, 150);
    let (code, text) = c.reply();
    assert_eq!(code, 425, "{text}");
    // Active mode to a port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    c.ok(&format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff), 200);
    c.send("LIST");
    assert_eq!(c.reply().0, 150);
    let (code, text) = c.reply();
    assert_eq!(code, 425, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    c.ok("NOOP", 200);
}

fn active_connections_come_from_port_20_when_allowed(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {});
    let privileged = std::net::TcpListener::bind("127.0.0.1:20").is_ok();
    let mut c = server.login();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = listener.local_addr().unwrap();
    c.ok(&format!("EPRT |1|127.0.0.1|{}|", a.port()), 200);
    c.send("NLST");
    assert_eq!(c.reply().0, 150);
    let (_stream, from) = listener.accept().unwrap();
    assert_eq!(c.reply().0, 226);
    if privileged {
        assert_eq!(from.port(), 20, "active source port");
    } else {
        assert_ne!(from.port(), 20, "cannot bind 20 without privilege, so it must fall back");
    }
}

fn ipv6_control_connection_uses_epsv_and_eprt(backend: Backend) {
    let Ok(probe) = TcpListener::bind("[::1]:0") else {
        panic!("IPv6 loopback is not available on this machine");
    };
    drop(probe);
    let server = TestServer::start_on(backend, |f| f.listen = Some("[::1]:0".into()));
    let mut c = Ctl::connect(server.addr);
    c.ok("USER ftp", 331);
    c.ok("PASS x", 230);
    server.files().write("v6", b"six");
    c.ok("PASV", 425);
    c.ok("EPSV 1", 522);
    let port = c.epsv();
    c.send("RETR v6");
    assert_eq!(c.reply().0, 150);
    let mut data = TcpStream::connect(("::1", port)).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"six");
    assert_eq!(c.reply().0, 226);
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.ok(&format!("EPRT |2|::1|{port}|"), 200);
    c.send("RETR v6");
    assert_eq!(c.reply().0, 150);
    let (mut s, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"six");
    assert_eq!(c.reply().0, 226);
}

fn modes_can_be_switched_off(backend: Backend) {
    let server = TestServer::start_on(backend, |f| f.active_enabled = Some(false));
    let mut c = server.login();
    c.ok("PORT 127,0,0,1,200,10", 502);
    c.ok("EPRT |1|127.0.0.1|51210|", 502);
    assert_eq!(c.fetch(Mode::Pasv, "NLST"), b"");
    let server = TestServer::start_on(backend, |f| f.passive_enabled = Some(false));
    let mut c = server.login();
    c.ok("PASV", 502);
    c.ok("EPSV", 502);
    assert_eq!(c.fetch(Mode::Eprt, "NLST"), b"");
    let both = Config::from_file(FileConfig {
        passive_enabled: Some(false),
        active_enabled: Some(false),
        ..Default::default()
    });
    assert!(both.unwrap_err().to_string().contains("active_enabled"));
}
