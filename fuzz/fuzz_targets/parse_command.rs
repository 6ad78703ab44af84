//! Fuzzes the control-connection path a hostile client reaches first:
//! line decoding (in two chunks, split where the first byte says), command
//! parsing of every decoded line (typed AUTH, PROT and OPTS arguments parse
//! again from their canonical form), and the reply built from the line's
//! text.
//!
//! Run with `scripts/fuzz.sh [seconds]`.

#![no_main]

use ferroftp_proto::{Command, LineDecoder, LineEvent, Reply};
use libfuzzer_sys::fuzz_target;

/// A line limit small enough for short inputs to exceed.
const SMALL_MAX: usize = 8;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (head, tail) = data.split_at(split);

    let mut decoder = LineDecoder::default();
    let mut events = Vec::new();
    decoder.feed(head, &mut events);
    decoder.feed(tail, &mut events);

    // Chunking must not change what is decoded.
    let mut whole = LineDecoder::default();
    let mut whole_events = Vec::new();
    whole.feed(data, &mut whole_events);
    assert_eq!(events, whole_events, "split at {split} changed the decoded lines");

    // The same with a tiny limit, so over-long lines (TooLong, discarding
    // and recovery) are reached without multi-kilobyte inputs.
    let mut small = LineDecoder::new(SMALL_MAX);
    let mut small_events = Vec::new();
    small.feed(head, &mut small_events);
    small.feed(tail, &mut small_events);
    let mut small_whole = LineDecoder::new(SMALL_MAX);
    let mut small_whole_events = Vec::new();
    small_whole.feed(data, &mut small_whole_events);
    assert_eq!(small_events, small_whole_events, "split at {split} changed the decoded lines (max {SMALL_MAX})");
    for event in &small_events {
        if let LineEvent::Line(line) = event {
            assert!(line.len() <= SMALL_MAX, "{line:?} is longer than {SMALL_MAX}");
        }
    }

    for event in &events {
        let line = match event {
            LineEvent::Line(line) => line,
            LineEvent::TooLong => continue,
        };
        assert!(line.len() <= ferroftp_proto::line::MAX_LINE);
        match Command::parse(line) {
            Ok(cmd) => check_canonical(cmd),
            Err(e) => {
                let code = e.reply_code();
                assert!(matches!(code, 500 | 501 | 504 | 522), "{e:?} maps to {code}");
                check_wire(&Reply::new(code, e.to_string()).to_wire());
            }
        }
        let text = String::from_utf8_lossy(line);
        check_wire(&Reply::new(200, text.clone()).to_wire());
        let lines: Vec<String> = text.split(' ').map(str::to_string).collect();
        check_wire(&Reply { code: 211, lines }.to_wire());
    }
});

/// A typed AUTH, PROT or OPTS argument written back in its canonical form
/// parses to the same value.
fn check_canonical(cmd: Command) {
    let text = match &cmd {
        Command::Auth(mechanism) => format!("AUTH {mechanism}"),
        Command::Prot(level) => format!("PROT {level}"),
        Command::Opts(arg) => format!("OPTS {arg}"),
        _ => return,
    };
    assert_eq!(Command::parse(text.as_bytes()), Ok(cmd), "{text:?}");
}

/// Every line of a reply ends with CRLF, holds no other CR or LF, and
/// starts with a reply code or (a multi-line body line) a space.
fn check_wire(wire: &[u8]) {
    assert!(wire.ends_with(b"\r\n"), "{wire:?}");
    for (i, &b) in wire.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR in {wire:?}"),
            b'\n' => assert!(i > 0 && wire[i - 1] == b'\r', "bare LF in {wire:?}"),
            _ => {}
        }
    }
    let mut start = 0;
    while start < wire.len() {
        let end = start + wire[start..].windows(2).position(|w| w == b"\r\n").expect("CRLF-terminated");
        let line = &wire[start..end];
        let coded = line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && matches!(line[3], b' ' | b'-');
        assert!(coded || line.starts_with(b" "), "line {line:?} of {wire:?}");
        start = end + 2;
    }
}
