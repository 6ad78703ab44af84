//! The built `ferroftp` binary: start-up messages, config errors that name
//! the key, the users-file commands, and a hand session like the seed's.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{serve, BIN};

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

fn converse(port: u16, input: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(input).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_anonymously_read_only_by_default() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), b"hi").unwrap();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap()]);
    let out = converse(port, b"USER ftp\nPASS 123\nPWD\nSTAT\nMKD nope\nSIZE hello.txt\nQUIT\n");
    let codes: Vec<&str> = out
        .lines()
        .filter(|l| l.len() > 3 && l.as_bytes()[0].is_ascii_digit() && &l[3..4] == " ")
        .map(|l| &l[..3])
        .collect();
    assert_eq!(codes, ["220", "331", "230", "257", "211", "550", "213", "221"], "{out}");
    assert!(out.contains("Logged in as ftp"), "{out}");
    assert!(!root.path().join("nope").exists());
}

/// The scheduling policy of each of the process's threads (field 41 of
/// /proc/PID/task/TID/stat: 0 SCHED_OTHER, 3 SCHED_BATCH).
fn thread_policies(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        // A thread that ended meanwhile has no stat to read.
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| {
            let after_name = stat.rsplit_once(')').unwrap().1;
            after_name.split_whitespace().nth(41 - 3).unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn batch_scheduling_puts_every_thread_under_sched_batch_only_when_asked() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Left as started: under the policy of the process that started it
    // (SCHED_OTHER, unless the tests themselves run under another).
    let started_under = thread_policies(std::process::id())[0];
    assert_ne!(started_under, 3, "the tests themselves run under SCHED_BATCH");
    for (setting, expected) in [(None, started_under), (Some("false"), started_under), (Some("true"), 3)] {
        let config = dir.path().join("sched.toml");
        std::fs::write(&config, setting.map(|s| format!("batch_scheduling = {s}\n")).unwrap_or_default()).unwrap();
        let (server, port) = serve(&["--config", config.to_str().unwrap(), "--root", root]);
        // A session on a runtime thread, so the runtime has started them.
        assert!(converse(port, b"QUIT\r\n").starts_with("220"));
        // The default ("transfers") moves only a thread streaming a big
        // transfer, and only while it does (unit-tested in sched.rs).
        let policies = thread_policies(server.0.id());
        assert!(policies.len() >= 2 && policies.iter().all(|&p| p == expected), "{setting:?}: {policies:?}");
    }
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    for (text, key) in [
        ("listn = \"127.0.0.1:21\"\n", "listn"),
        ("passive_ports = \"9-1\"\n", "passive_ports"),
        ("idle_timeout = \"soon\"\n", "idle_timeout"),
        ("root = \"/nonexistent/ferroftp\"\n", "root"),
        ("batch_scheduling = \"sometimes\"\n", "batch_scheduling"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = Command::new(BIN).args(["serve", "--config", bad.to_str().unwrap()]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text} -> {err}");
    }
    let out = Command::new(BIN).args(["serve", "--passive-ports", "100-90"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("passive_ports"));
}

fn user_cmd(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses early exits without reading: ignore EPIPE.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn user_commands_manage_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let file = dir.path().join("users.toml");
    let f = file.to_str().unwrap();
    let h = home.to_str().unwrap();
    assert!(user_cmd(&["add", "--file", f, "bob", "--home", h, "--write", "--password-stdin"], "first pw\n")
        .status
        .success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains("first pw"), "{text}");
    assert!(!user_cmd(&["add", "--file", f, "bob", "--home", h, "--password-stdin"], "x\n").status.success());
    assert!(!user_cmd(&["add", "--file", f, "anonymous", "--home", h, "--password-stdin"], "x\n").status.success());
    let list = user_cmd(&["list", "--file", f], "");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("bob\tread-write"), "{listed}");
    assert!(!listed.contains("argon2"), "{listed}");

    let (server, port) = serve(&["--users", f, "--no-anonymous"]);
    let out = converse(port, b"USER bob\r\nPASS first pw\r\nMKD made\r\nQUIT\r\n");
    assert!(out.contains("230 ") && out.contains("257 "), "{out}");
    drop(server);

    assert!(user_cmd(&["passwd", "--file", f, "bob", "--password-stdin"], "second pw\n").status.success());
    let (server, port) = serve(&["--users", f, "--no-anonymous"]);
    let out =
        converse(port, b"USER bob\r\nPASS first pw\r\nUSER bob\r\nPASS second pw\r\nUSER ftp\r\nPASS x\r\nQUIT\r\n");
    let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
    assert_eq!(codes, ["220", "331", "530", "331", "230", "331", "530", "221"], "{out}");
    drop(server);

    assert!(user_cmd(&["del", "--file", f, "bob"], "").status.success());
    assert!(!user_cmd(&["del", "--file", f, "bob"], "").status.success());
    assert!(!String::from_utf8_lossy(&user_cmd(&["list", "--file", f], "").stdout).contains("bob"));
}

#[test]
fn get_of_a_missing_file_exits_1_and_leaves_no_file() {
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let out = Command::new(BIN)
        .args(["get", &format!("ftp://127.0.0.1:{port}/missing"), "-o", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("550"));
    assert!(!target.exists());
}

/// Reads one reply line (single-line replies only) from a control stream.
fn reply_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line
}

#[test]
fn a_killed_server_never_leaves_a_replaced_file_half_written() {
    let root = tempfile::tempdir().unwrap();
    let good: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.path().join("important.db"), &good).unwrap();
    let (mut server, port) = serve(&["--root", root.path().to_str().unwrap(), "--anonymous-write"]);
    let control = TcpStream::connect(("127.0.0.1", port)).unwrap();
    control.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = control.try_clone().unwrap();
    let mut r = BufReader::new(control);
    assert!(reply_line(&mut r).starts_with("220"));
    for (cmd, code) in [("USER ftp", "331"), ("PASS x", "230"), ("TYPE I", "200")] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        assert!(reply_line(&mut r).starts_with(code));
    }
    w.write_all(b"EPSV\r\n").unwrap();
    let epsv = reply_line(&mut r);
    let data_port: u16 = epsv.split('|').nth(3).unwrap().parse().unwrap();
    let mut data = TcpStream::connect(("127.0.0.1", data_port)).unwrap();
    w.write_all(b"STOR important.db\r\n").unwrap();
    assert!(reply_line(&mut r).starts_with("150"));
    data.write_all(&vec![0xAB; 500_000]).unwrap();
    // Wait until the server has taken what we sent, then kill it hard.
    // Polled: the server tells how far an upload has come only when asked
    // (STAT); no event marks it.
    let mut stat = String::new();
    for _ in 0..2000 {
        w.write_all(b"STAT\r\n").unwrap();
        stat = reply_line(&mut r);
        if stat.contains("500000 bytes") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(stat.contains("500000 bytes"), "the upload never reached 500000 bytes: {stat}");
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    drop(data);
    assert!(std::fs::read(root.path().join("important.db")).unwrap() == good, "the old file was damaged");
    // After a restart the file is served whole, and the leftover temporary
    // file is not listed.
    let (_server, port) = serve(&["--root", root.path().to_str().unwrap()]);
    let out = converse(port, b"USER ftp\r\nPASS x\r\nSIZE important.db\r\nSTAT /\r\nQUIT\r\n");
    assert!(out.contains("213 2000000"), "{out}");
    assert!(!out.contains(".ferroftp-upload-"), "{out}");
}

/// The lines a process writes to a pipe, read on a thread of their own
/// as they come.
struct Lines {
    incoming: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { incoming, seen: Vec::new() }
    }

    /// Waits (bounded) for a line that contains `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("no line with {text:?} ({e}); got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every line, once the writer has closed the pipe (bounded).
    fn all(mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen.join("\n"),
                Err(e) => panic!("the pipe stayed open ({e}); got:\n{}", self.seen.join("\n")),
            }
        }
    }
}

/// Connections waiting in the accept queue of the listener on
/// 127.0.0.1:`port`: a listening socket's rx_queue in /proc/net/tcp.
fn waiting_to_be_accepted(port: u16) -> usize {
    let local = format!("0100007F:{port:04X}");
    // The kernel writes the table in pieces: a socket opened or closed
    // meanwhile can shift an entry past a piece, so look again.
    (0..100)
        .find_map(|_| {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            table.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find_map(|f| {
                let listening = f.len() > 4 && f[1] == local && f[3] == "0A";
                listening.then(|| usize::from_str_radix(f[4].split_once(':').unwrap().1, 16).unwrap())
            })
        })
        .expect("the listener is not in /proc/net/tcp")
}

/// Reads a connection's first bytes (bounded): the 220 greeting.
fn assert_greeted(s: &mut TcpStream) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"220"), "{:?}", String::from_utf8_lossy(&buf[..n]));
}

/// Under a low open-files limit the server raises its soft limit to the
/// hard one, says at start what max_clients needs and which setting to
/// change, and once out of descriptors warns once (not at every 50 ms
/// retry), leaves new connections waiting, and greets them when sessions
/// end.
#[test]
fn a_low_open_files_limit_is_raised_named_and_survived() {
    let root = tempfile::tempdir().unwrap();
    // The per-address limit (50) out of the way: every connection here
    // comes from 127.0.0.1.
    let config = root.path().join("c.toml");
    std::fs::write(&config, "max_clients_per_ip = 2000\n").unwrap();
    let script = format!(
        "ulimit -Sn 40 && ulimit -Hn 64 && exec {BIN} serve --listen 127.0.0.1:0 --root {} --config {}",
        root.path().display(),
        config.display()
    );
    let mut command = Command::new("sh");
    command.args(["-c", &script]).stderr(Stdio::piped());
    let (mut server, ports) = common::start(command, &[common::LISTENING]);
    let port = ports[0];
    let mut log = Lines::of(server.0.stderr.take().unwrap());
    // More connections than descriptors: the server greets what it can,
    // runs out (and says so), and the rest wait in the listen queue. No
    // session ends meanwhile, so the queue stays as it is.
    let mut held: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    log.wait_for("out of file descriptors");
    let waiting = waiting_to_be_accepted(port);
    assert!((1..80).contains(&waiting), "{waiting} of 80 connections wait under a limit of 64");
    let greeted = 80 - waiting;
    held[..greeted].iter_mut().for_each(assert_greeted);
    // A session that ends gives its descriptor to the first connection
    // waiting: the server kept trying to accept.
    drop(held.remove(0));
    assert_greeted(&mut held[greeted - 1]);
    drop(held);
    // Sessions ended: new connections are greeted again.
    let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert_greeted(&mut fresh);
    drop(fresh);
    let _ = server.0.kill();
    let log = log.all();
    assert!(log.contains("open-files limit raised from 40 to 64"), "{log}");
    assert!(log.contains("max_clients = 2000 can need 8064 open files"), "{log}");
    assert!(log.contains("Raise the limit (ulimit -n, or LimitNOFILE= in a systemd unit)"), "{log}");
    let warnings = log.matches("out of file descriptors (open-files limit 64)").count();
    assert_eq!(warnings, 1, "one warning per 10 s, not one per retry:\n{log}");
}

/// Log lines written to a pipe or a file (journald, a log shipper,
/// fail2ban) carry no terminal colour codes; on a terminal they may.
#[test]
fn log_lines_to_a_pipe_have_no_colour_codes() {
    let root = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command.args(["serve", "--listen", "127.0.0.1:0", "--root", root.path().to_str().unwrap()]).stderr(Stdio::piped());
    let (mut server, ports) = common::start(command, &[common::LISTENING]);
    // A refused login (no users file): one log line about it, then QUIT
    // ends the session and the server is stopped, closing its stderr.
    let out = converse(ports[0], b"USER nobody\r\nPASS wrong\r\nQUIT\r\n");
    assert!(out.contains("530") && out.contains("221"), "{out}");
    let _ = server.0.kill();
    let mut log = String::new();
    server.0.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("login refused") && log.contains("user=nobody"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in piped log lines: {log:?}");
}
