//! Property tests of the wire protocol: the command parser and the line
//! decoder never panic and stay bounded on hostile input, and every
//! encoding round-trips through its parser.
//!
//! Case counts are modest so the file runs in a few seconds; raise them
//! locally with `PROPTEST_CASES=100000`.

use std::net::{SocketAddr, SocketAddrV4};

use ferroftp_proto::ascii::{FromWire, ToWire};
use ferroftp_proto::hostport::{
    epsv_reply_text, format_eprt, format_host_port, parse_eprt, parse_epsv_reply, parse_pasv_reply, parse_port,
    pasv_reply_text,
};
use ferroftp_proto::line::MAX_LINE;
use ferroftp_proto::listing::MLSX_FACTS;
use ferroftp_proto::{AuthMechanism, Command, LineDecoder, LineEvent, OptsArg, ProtLevel, Reply};
use proptest::prelude::*;

const IAC: u8 = 255;

fn config(cases: u32) -> ProptestConfig {
    // No regression files: a failure prints its minimal input instead.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------- helpers

/// Maps 16 random bits to a byte biased towards what matters to the
/// decoder and the parser: line ends, Telnet IAC and its commands, spaces,
/// digits, the host-port punctuation and verb letters. (Drawing a `u16` and
/// mapping it is far cheaper than a `prop_oneof!` per byte in debug builds.)
fn bias(v: u16) -> u8 {
    let [kind, low] = v.to_be_bytes();
    match kind {
        0..=95 => low,
        96..=127 => b'\n',
        128..=149 => b'\r',
        150..=171 => IAC,
        172..=181 => 240 + low % 15,
        182..=203 => b' ',
        204..=225 => b'0' + low % 10,
        226..=235 => b",|.:()"[usize::from(low) % 6],
        236..=255 => b'A' + low % 26,
    }
}

/// Up to `max_len` biased bytes.
fn wire_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u16>(), 0..max_len).prop_map(|v| v.into_iter().map(bias).collect())
}

/// Up to `max_len` biased bytes, with every `from` byte replaced by `to`.
fn wire_bytes_without(max_len: usize, from: u8, to: u8) -> impl Strategy<Value = Vec<u8>> {
    wire_bytes(max_len).prop_map(move |v| v.into_iter().map(|b| if b == from { to } else { b }).collect())
}

/// Splits `data` at the given cut points (taken modulo the length, sorted).
fn split_at_points<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| if data.is_empty() { 0 } else { c % (data.len() + 1) }).collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for p in points {
        chunks.push(&data[start..p]);
        start = p;
    }
    chunks.push(&data[start..]);
    chunks
}

/// Feeds `chunks` one after the other; returns the events, whether an
/// interrupt was seen, and whether a partial line is left over.
fn decode_chunks(max: usize, chunks: &[&[u8]]) -> (Vec<LineEvent>, bool, bool) {
    let mut d = LineDecoder::new(max);
    let mut out = Vec::new();
    let mut interrupted = false;
    for chunk in chunks {
        d.feed(chunk, &mut out);
        interrupted |= d.take_interrupt();
    }
    (out, interrupted, d.has_partial_line())
}

/// The decoder as a specification, for input with no Telnet IAC: split on
/// LF, drop one trailing CR, and a line longer than `max` is `TooLong`.
fn model_decode(max: usize, data: &[u8]) -> Vec<LineEvent> {
    let mut events = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let mut line = &rest[..i];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        events.push(if line.len() > max { LineEvent::TooLong } else { LineEvent::Line(line.to_vec()) });
        rest = &rest[i + 1..];
    }
    events
}

/// A line that starts with a real verb, so the argument parsers are reached.
fn command_line() -> impl Strategy<Value = Vec<u8>> {
    let verbs: Vec<&'static str> = ferroftp_proto::command::COMMANDS.iter().map(|(v, _)| *v).collect();
    let arg = prop_oneof![
        4 => wire_bytes(64),
        2 => "[ 0-9a-zA-Z,|.:!/\\-]{0,48}".prop_map(String::into_bytes),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..8192),
    ];
    (prop::sample::select(verbs), any::<bool>(), prop::option::of(arg)).prop_map(|(verb, lower, arg)| {
        let mut line = if lower { verb.to_ascii_lowercase() } else { verb.to_string() }.into_bytes();
        if let Some(arg) = arg {
            line.push(b' ');
            line.extend(arg);
        }
        line
    })
}

fn check_parse(line: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = Command::parse(line) {
        let code = e.reply_code();
        prop_assert!(matches!(code, 500 | 501 | 504 | 522), "{line:?} -> {e:?} with reply code {code}");
        // The message goes into a reply; it must not be unbounded.
        prop_assert!(e.to_string().len() <= 512 + line.len() * 8, "{e}");
    }
    Ok(())
}

// ---------------------------------------------------------- the parser

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(line in prop::collection::vec(any::<u8>(), 0..8192)) {
        check_parse(&line)?;
    }

    #[test]
    fn parse_never_panics_on_biased_bytes(line in wire_bytes(512)) {
        check_parse(&line)?;
    }

    #[test]
    fn parse_never_panics_on_known_verbs(line in command_line()) {
        check_parse(&line)?;
    }

    #[test]
    fn verb_case_does_not_matter(line in command_line()) {
        let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let mut lower = line.clone();
        lower[..verb_end].make_ascii_lowercase();
        match (Command::parse(&line), Command::parse(&lower)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.reply_code(), b.reply_code()),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
        }
    }

    #[test]
    fn port_and_eprt_commands_round_trip(v4 in any::<SocketAddrV4>(), addr in any::<SocketAddr>()) {
        let port = format!("PORT {}", format_host_port(v4));
        prop_assert_eq!(Command::parse(port.as_bytes()), Ok(Command::Port(v4)));
        let expected = SocketAddr::new(addr.ip(), addr.port());
        let eprt = format!("EPRT {}", format_eprt(addr));
        prop_assert_eq!(Command::parse(eprt.as_bytes()), Ok(Command::Eprt(expected)));
    }
}

// ------------------------------------------- AUTH, PROT and OPTS arguments

/// Some white space: none, spaces, a tab, or Unicode white space (which
/// `str::trim` and `split_whitespace` count, and a split on ' ' does not).
fn blank() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", " ", "  ", "\t", " \t ", "\u{3000}", "\u{a0}"]).prop_map(String::from)
}

/// `word` in a random mix of upper and lower case.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    })
}

/// What follows OPTS's option: mostly the one space it splits on.
fn separator() -> impl Strategy<Value = String> {
    prop_oneof![Just(" ".to_string()), blank()]
}

/// One word of an argument: a name the parsers know, in any case, or not.
fn word() -> impl Strategy<Value = String> {
    let known = ["MLST", "HASH", "UTF8", "UTF-8", "ON", "OFF", "TLS", "TLS-C", "TLS-P", "SSL", "C", "S", "E", "P"];
    prop_oneof![
        3 => prop::sample::select(known.to_vec()).prop_flat_map(any_case),
        1 => prop::sample::select(MLSX_FACTS.to_vec()).prop_flat_map(any_case),
        1 => "[A-Za-z0-9.;-]{0,10}",
    ]
}

/// An MLST fact list: known and unknown facts, `;` separated, with blanks.
fn fact_list() -> impl Strategy<Value = String> {
    let fact = prop_oneof![
        3 => prop::sample::select(MLSX_FACTS.to_vec()).prop_flat_map(any_case),
        1 => "[A-Za-z.]{0,8}",
    ];
    prop::collection::vec((fact, blank(), any::<bool>()), 0..10).prop_map(|facts| {
        facts.into_iter().map(|(f, b, semi)| format!("{b}{f}{b}{}", if semi { ";" } else { "" })).collect()
    })
}

/// Words with blanks between them; `sep` after the first (OPTS splits
/// its option from the value there).
fn words() -> impl Strategy<Value = String> {
    (blank(), prop::collection::vec((word(), blank()), 0..4), separator()).prop_map(|(lead, words, sep)| {
        let mut arg = lead;
        for (i, (w, b)) in words.into_iter().enumerate() {
            arg.push_str(&w);
            arg.push_str(if i == 0 { &sep } else { &b });
        }
        arg
    })
}

/// An argument for AUTH, PROT or OPTS: words the parsers look for with
/// blanks between them, an OPTS option with a fact list or more words, or
/// anything at all.
fn security_arg() -> impl Strategy<Value = String> {
    let option = prop::sample::select(vec!["MLST", "HASH", "UTF8", "UTF-8"]).prop_flat_map(any_case);
    prop_oneof![
        3 => words(),
        3 => (option, separator(), prop_oneof![fact_list(), words()])
            .prop_map(|(o, sep, value)| format!("{o}{sep}{value}")),
        1 => (any_case("MLST"), separator(), fact_list()).prop_map(|(o, sep, facts)| format!("{o}{sep}{facts}")),
        1 => any::<String>(),
        1 => wire_bytes(64).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// What OPTS did before its parsing moved into proto, as the server saw
/// it: a fact selection, a HASH query or name to look up, or a reply code.
#[derive(Debug, PartialEq)]
enum OptsOutcome {
    Mlst(Vec<&'static str>),
    HashQuery,
    HashSelect(String),
    Code(u16),
}

/// The model: `OPTS` in the server's `opts()` (status.rs at 77eff41),
/// after the parser's check for a missing argument.
fn model_opts(arg: &str) -> OptsOutcome {
    if arg.trim().is_empty() || arg.contains('\0') {
        return OptsOutcome::Code(501);
    }
    let (option, value) = arg.trim().split_once(' ').unwrap_or((arg.trim(), ""));
    if option.eq_ignore_ascii_case("MLST") {
        let wanted: Vec<&str> = value.split(';').map(str::trim).filter(|f| !f.is_empty()).collect();
        return OptsOutcome::Mlst(
            MLSX_FACTS.iter().copied().filter(|f| wanted.iter().any(|w| w.eq_ignore_ascii_case(f))).collect(),
        );
    }
    if option.eq_ignore_ascii_case("HASH") {
        let value = value.trim();
        return if value.is_empty() { OptsOutcome::HashQuery } else { OptsOutcome::HashSelect(value.to_string()) };
    }
    let mut words = arg.split_whitespace();
    match (words.next().map(str::to_ascii_uppercase).as_deref(), words.next().map(str::to_ascii_uppercase).as_deref()) {
        (Some("UTF8" | "UTF-8"), Some("ON") | None) => OptsOutcome::Code(200),
        (Some("UTF8" | "UTF-8"), Some(_)) => OptsOutcome::Code(504),
        _ => OptsOutcome::Code(501),
    }
}

/// What the server now makes of `OPTS arg`.
fn parsed_opts(arg: &str) -> Result<OptsOutcome, TestCaseError> {
    Ok(match Command::parse(format!("OPTS {arg}").as_bytes()) {
        Ok(Command::Opts(OptsArg::Mlst(facts))) => OptsOutcome::Mlst(facts),
        Ok(Command::Opts(OptsArg::Hash(None))) => OptsOutcome::HashQuery,
        Ok(Command::Opts(OptsArg::Hash(Some(name)))) => OptsOutcome::HashSelect(name),
        // The server's answers to UTF8 ON and OFF.
        Ok(Command::Opts(OptsArg::Utf8(on))) => OptsOutcome::Code(if on { 200 } else { 504 }),
        Err(e) => OptsOutcome::Code(e.reply_code()),
        Ok(other) => return Err(TestCaseError::fail(format!("OPTS {arg:?} parsed as {other:?}"))),
    })
}

/// The text a known verb's typed argument is written back as, if the verb
/// is one of these three.
fn canonical(cmd: &Command) -> Option<String> {
    match cmd {
        Command::Auth(m) => Some(format!("AUTH {m}")),
        Command::Prot(level) => Some(format!("PROT {level}")),
        Command::Opts(arg) => Some(format!("OPTS {arg}")),
        _ => None,
    }
}

/// A mechanism or level name the parsers do not know.
fn other_name(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    "[A-Z0-9_.-]{1,12}( [A-Z0-9]{1,4})?".prop_filter("a known name", move |n| !known.contains(&n.as_str()))
}

const MECHANISMS: &[&str] = &["TLS", "TLS-C", "SSL", "TLS-P"];
const LEVELS: &[&str] = &["C", "S", "E", "P"];

fn mechanism() -> impl Strategy<Value = AuthMechanism> {
    prop_oneof![
        Just(AuthMechanism::Tls),
        Just(AuthMechanism::TlsC),
        Just(AuthMechanism::Ssl),
        Just(AuthMechanism::TlsP),
        other_name(MECHANISMS).prop_map(AuthMechanism::Other),
    ]
}

fn level() -> impl Strategy<Value = ProtLevel> {
    prop_oneof![
        Just(ProtLevel::Clear),
        Just(ProtLevel::Safe),
        Just(ProtLevel::Confidential),
        Just(ProtLevel::Private),
        other_name(LEVELS).prop_map(ProtLevel::Unknown),
    ]
}

fn opts_arg() -> impl Strategy<Value = OptsArg> {
    prop_oneof![
        prop::sample::subsequence(MLSX_FACTS.to_vec(), 0..=MLSX_FACTS.len()).prop_map(OptsArg::Mlst),
        Just(OptsArg::Hash(None)),
        "[A-Za-z0-9-]{1,8}( [A-Za-z0-9-]{1,8})?".prop_map(|n| OptsArg::Hash(Some(n))),
        any::<bool>().prop_map(OptsArg::Utf8),
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn security_args_never_panic(arg in security_arg(), lower in any::<bool>()) {
        for verb in ["AUTH", "PROT", "OPTS"] {
            let verb = if lower { verb.to_ascii_lowercase() } else { verb.to_string() };
            check_parse(format!("{verb} {arg}").as_bytes())?;
        }
    }

    #[test]
    fn opts_answers_as_before(arg in security_arg()) {
        prop_assert_eq!(parsed_opts(&arg)?, model_opts(&arg), "OPTS {:?}", arg);
    }

    #[test]
    fn auth_and_prot_carry_what_the_server_matched_before(arg in security_arg()) {
        // Before, the server got the argument trimmed and in upper case and
        // matched it against these names.
        let old = arg.trim().to_ascii_uppercase();
        let refused = old.is_empty() || old.contains('\0');
        match Command::parse(format!("AUTH {arg}").as_bytes()) {
            Ok(Command::Auth(m)) => {
                prop_assert!(!refused);
                prop_assert_eq!(m.name(), old.as_str());
                prop_assert_eq!(matches!(m, AuthMechanism::Other(_)), !MECHANISMS.contains(&old.as_str()));
            }
            Ok(other) => prop_assert!(false, "AUTH {:?} parsed as {:?}", arg, other),
            Err(e) => prop_assert!(refused && e.reply_code() == 501, "AUTH {:?}: {:?}", arg, e),
        }
        match Command::parse(format!("PROT {arg}").as_bytes()) {
            Ok(Command::Prot(level)) => {
                prop_assert!(!refused);
                prop_assert_eq!(level.code(), old.as_str());
                prop_assert_eq!(matches!(level, ProtLevel::Unknown(_)), !LEVELS.contains(&old.as_str()));
            }
            Ok(other) => prop_assert!(false, "PROT {:?} parsed as {:?}", arg, other),
            Err(e) => prop_assert!(refused && e.reply_code() == 501, "PROT {:?}: {:?}", arg, e),
        }
    }

    #[test]
    fn typed_arguments_round_trip(m in mechanism(), level in level(), arg in opts_arg(), lower in any::<bool>()) {
        let lines = [
            (format!("AUTH {m}"), Command::Auth(m)),
            (format!("PROT {level}"), Command::Prot(level)),
            (format!("OPTS {arg}"), Command::Opts(arg)),
        ];
        for (line, expected) in lines {
            // Case counts in a HASH name only (the server looks it up).
            let keeps_case = matches!(expected, Command::Opts(OptsArg::Hash(Some(_))));
            let line = if lower && !keeps_case { line.to_ascii_lowercase() } else { line };
            prop_assert_eq!(Command::parse(line.as_bytes()), Ok(expected), "{:?}", line);
        }
    }

    #[test]
    fn parsed_arguments_parse_again_the_same(arg in security_arg(), line in command_line()) {
        // Whatever AUTH, PROT or OPTS accepted, its canonical form is
        // accepted as the same value.
        let lines = ["AUTH", "PROT", "OPTS"].map(|verb| format!("{verb} {arg}").into_bytes());
        for line in lines.iter().chain([&line]) {
            if let Ok(cmd) = Command::parse(line) {
                if let Some(text) = canonical(&cmd) {
                    prop_assert_eq!(Command::parse(text.as_bytes()), Ok(cmd), "{:?} -> {:?}", line, text);
                }
            }
        }
    }
}

// ------------------------------------------------------- the line decoder

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn decoding_does_not_depend_on_chunking(
        data in wire_bytes(2048),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max in prop_oneof![0usize..80, Just(MAX_LINE)],
    ) {
        let whole = decode_chunks(max, &[&data]);
        let chunked = decode_chunks(max, &split_at_points(&data, &cuts));
        prop_assert_eq!(&whole, &chunked);
        // Byte by byte, the worst case for any state kept across feeds.
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        prop_assert_eq!(&whole, &decode_chunks(max, &bytes));
    }

    #[test]
    fn no_line_is_longer_than_max(data in wire_bytes(2048), max in 0usize..80) {
        let (events, _, _) = decode_chunks(max, &[&data]);
        for event in &events {
            if let LineEvent::Line(line) = event {
                prop_assert!(line.len() <= max, "line of {} bytes with max {}", line.len(), max);
                prop_assert!(!line.contains(&b'\n'));
            }
        }
    }

    #[test]
    fn decoder_matches_model_without_telnet(
        data in wire_bytes_without(2048, IAC, b'x'),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max in 0usize..80,
    ) {
        let (events, interrupted, _) = decode_chunks(max, &split_at_points(&data, &cuts));
        prop_assert_eq!(events, model_decode(max, &data));
        prop_assert!(!interrupted);
    }

    #[test]
    fn escaped_iac_is_data(
        data in wire_bytes(1024),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max in 0usize..80,
    ) {
        // IAC IAC on the wire is one data byte 255.
        let escaped: Vec<u8> =
            data.iter().flat_map(|&b| if b == IAC { vec![IAC, IAC] } else { vec![b] }).collect();
        let (events, interrupted, _) = decode_chunks(max, &split_at_points(&escaped, &cuts));
        prop_assert_eq!(events, model_decode(max, &data));
        prop_assert!(!interrupted);
    }

    #[test]
    fn long_junk_line_is_dropped_and_decoder_recovers(
        junk_len_over in 2usize..4 * MAX_LINE,
        max in prop_oneof![0usize..64, Just(MAX_LINE)],
        fill in prop::collection::vec(any::<u8>().prop_map(|b| if b == b'\n' || b == IAC { b'x' } else { b }), 1..64),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        crlf in any::<bool>(),
    ) {
        // Any run of more than max+1 bytes without LF is one TooLong, and
        // the next line decodes normally: the line buffer was capped and
        // reset, not left holding the junk.
        let junk: Vec<u8> = fill.iter().copied().cycle().take(max + junk_len_over).collect();
        let mut d = LineDecoder::new(max);
        let mut out = Vec::new();
        for chunk in split_at_points(&junk, &cuts) {
            d.feed(chunk, &mut out);
            prop_assert!(out.is_empty());
        }
        prop_assert!(d.has_partial_line());
        let tail: &[u8] = if crlf { b"\r\nNOOP\r\n" } else { b"\nNOOP\n" };
        d.feed(tail, &mut out);
        let noop = if max >= 4 { LineEvent::Line(b"NOOP".to_vec()) } else { LineEvent::TooLong };
        prop_assert_eq!(out, vec![LineEvent::TooLong, noop]);
        prop_assert!(!d.has_partial_line());
    }

    #[test]
    fn decoded_lines_parse_without_panic(data in wire_bytes(4096)) {
        let (events, _, _) = decode_chunks(MAX_LINE, &[&data]);
        for event in events {
            if let LineEvent::Line(line) = event {
                check_parse(&line)?;
            }
        }
    }
}

/// Resident memory of this process, in bytes (Linux only).
#[cfg(target_os = "linux")]
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm resident pages");
    pages * 4096
}

/// The behavioural test above cannot see memory: a decoder that buffered
/// the whole junk line would emit the same events. This one feeds 64 MiB
/// without a line end and checks that resident memory did not follow.
#[cfg(target_os = "linux")]
#[test]
fn endless_line_does_not_grow_memory() {
    const TOTAL: usize = 64 << 20;
    let chunk = vec![b'x'; 64 << 10];
    let mut d = LineDecoder::default();
    let mut out = Vec::new();
    let before = resident_bytes();
    for _ in 0..TOTAL / chunk.len() {
        d.feed(&chunk, &mut out);
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(out.is_empty());
    assert!(grown < TOTAL / 4, "resident memory grew by {grown} bytes while a {TOTAL}-byte line was dropped");
    d.feed(b"\r\nNOOP\r\n", &mut out);
    assert_eq!(out, vec![LineEvent::TooLong, LineEvent::Line(b"NOOP".to_vec())]);
}

// ------------------------------------------------------------ round trips

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn port_round_trip(addr in any::<SocketAddrV4>()) {
        prop_assert_eq!(parse_port(&format_host_port(addr)), Ok(addr));
    }

    #[test]
    fn pasv_reply_round_trip(addr in any::<SocketAddrV4>()) {
        prop_assert_eq!(parse_pasv_reply(&pasv_reply_text(addr)), Ok(addr));
    }

    #[test]
    fn eprt_round_trip(addr in any::<SocketAddr>()) {
        // EPRT carries the address and port only (no IPv6 flow or scope).
        let expected = SocketAddr::new(addr.ip(), addr.port());
        prop_assert_eq!(parse_eprt(&format_eprt(addr)), Ok(expected));
    }

    #[test]
    fn eprt_round_trip_v4_and_v6(v4 in any::<std::net::Ipv4Addr>(), v6 in any::<std::net::Ipv6Addr>(), port in any::<u16>()) {
        for ip in [std::net::IpAddr::V4(v4), std::net::IpAddr::V6(v6)] {
            let addr = SocketAddr::new(ip, port);
            prop_assert_eq!(parse_eprt(&format_eprt(addr)), Ok(addr));
        }
    }

    #[test]
    fn epsv_reply_round_trip(port in any::<u16>()) {
        prop_assert_eq!(parse_epsv_reply(&epsv_reply_text(port)), Ok(port));
    }

    #[test]
    fn host_port_parsers_never_panic(text in any::<String>(), bytes in wire_bytes(256)) {
        let biased = String::from_utf8_lossy(&bytes);
        for t in [text.as_str(), &biased] {
            let _ = parse_port(t);
            let _ = parse_pasv_reply(t);
            let _ = parse_eprt(t);
            let _ = parse_epsv_reply(t);
        }
    }
}

// ---------------------------------------------------- TYPE A and replies

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn ascii_round_trip_without_cr(
        data in wire_bytes_without(2048, b'\r', b'x'),
        to_cuts in prop::collection::vec(any::<usize>(), 0..16),
        from_cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut to = ToWire::default();
        let mut wire = Vec::new();
        for chunk in split_at_points(&data, &to_cuts) {
            to.convert(chunk, &mut wire);
        }
        // On the wire every LF is part of a CRLF.
        prop_assert_eq!(wire.len(), data.len() + data.iter().filter(|&&b| b == b'\n').count());
        for (i, &b) in wire.iter().enumerate() {
            if b == b'\n' {
                prop_assert!(i > 0 && wire[i - 1] == b'\r');
            }
        }
        let mut from = FromWire::default();
        let mut back = Vec::new();
        for chunk in split_at_points(&wire, &from_cuts) {
            from.convert(chunk, &mut back);
        }
        from.finish(&mut back);
        prop_assert_eq!(back, data);
    }

    #[test]
    fn ascii_conversion_does_not_depend_on_chunking(
        data in wire_bytes(2048),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let convert_to = |chunks: &[&[u8]]| {
            let mut c = ToWire::default();
            let mut out = Vec::new();
            for chunk in chunks {
                c.convert(chunk, &mut out);
            }
            out
        };
        let convert_from = |chunks: &[&[u8]]| {
            let mut c = FromWire::default();
            let mut out = Vec::new();
            for chunk in chunks {
                c.convert(chunk, &mut out);
            }
            c.finish(&mut out);
            out
        };
        let chunks = split_at_points(&data, &cuts);
        prop_assert_eq!(convert_to(&[&data]), convert_to(&chunks));
        prop_assert_eq!(convert_from(&[&data]), convert_from(&chunks));
    }

    #[test]
    fn reply_wire_form_has_only_crlf_line_ends(
        code in 100u16..600,
        lines in prop::collection::vec(
            prop_oneof![
                any::<String>(),
                "[a-z0-9 \r\n-]{0,40}",
                wire_bytes(80).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ],
            0..6,
        ),
    ) {
        let reply = Reply { code, lines: lines.clone() };
        let wire = reply.to_wire();
        prop_assert!(wire.ends_with(b"\r\n"));
        let body = &wire[..wire.len() - 2];
        let wire_lines: Vec<&[u8]> = split_crlf(body);
        for line in &wire_lines {
            prop_assert!(!line.contains(&b'\r') && !line.contains(&b'\n'), "bare CR or LF in {:?}", wire);
        }
        prop_assert_eq!(wire_lines.len(), lines.len().max(1));
        let code_text = code.to_string();
        let n = wire_lines.len();
        for (i, line) in wire_lines.iter().enumerate() {
            prop_assert!(line.starts_with(code_text.as_bytes()) || line.starts_with(b" "), "{:?}", line);
            let expected_start = if n == 1 || i == n - 1 {
                format!("{code} ")
            } else if i == 0 {
                format!("{code}-")
            } else {
                " ".to_string()
            };
            prop_assert!(line.starts_with(expected_start.as_bytes()), "line {} of {:?}", i, wire);
        }
    }
}

/// Splits on CRLF.
fn split_crlf(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\r' && bytes[i + 1] == b'\n' {
            lines.push(&bytes[start..i]);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    lines.push(&bytes[start..]);
    lines
}
