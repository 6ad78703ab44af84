//! Parsing one control-connection line into a typed [`Command`].
//!
//! Everything a client sends is hostile until parsed here: verbs are
//! matched case-insensitively, arguments are checked for type and range,
//! and every failure is a [`ParseError`] that names the FTP reply it maps
//! to. Nothing here panics or allocates beyond the (bounded) line.

use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};

use crate::hostport::{self, EpsvArg, HostPortError};
use crate::listing::MLSX_FACTS;
use crate::reply::code;

/// A password as sent with PASS; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The representation type set by TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// TYPE A: ASCII, CRLF line ends on the wire, LF on disk.
    Ascii,
    /// TYPE I or L 8: bytes as they are.
    Binary,
}

/// A SITE subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteCommand {
    /// SITE HELP.
    Help,
    /// SITE CHMOD mode path.
    Chmod {
        /// Permission bits, octal 0-7777.
        mode: u32,
        /// The path whose mode changes.
        path: String,
    },
    /// SITE UMASK [mode]: show or set the session's umask.
    Umask(Option<u32>),
    /// SITE IDLE [seconds]: show or set the session's idle timeout.
    Idle(Option<u64>),
}

/// An AUTH mechanism (RFC 2228 section 3, RFC 4217 section 4): the name
/// as sent, trimmed and in upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMechanism {
    /// AUTH TLS (RFC 4217).
    Tls,
    /// AUTH TLS-C: TLS on the control connection (older drafts of RFC 4217).
    TlsC,
    /// AUTH SSL: what old clients send for TLS.
    Ssl,
    /// AUTH TLS-P: TLS on the control connection and (as PROT P) on data
    /// connections (older drafts of RFC 4217).
    TlsP,
    /// Any other mechanism (GSSAPI, KERBEROS_V4...), upper case; the parser
    /// never puts one of the names above here. The server answers it after
    /// its own checks (no TLS configured, TLS already on), so it is not a
    /// [`ParseError`].
    Other(String),
}

impl AuthMechanism {
    /// The mechanism's name as AUTH carries it.
    pub fn name(&self) -> &str {
        match self {
            AuthMechanism::Tls => "TLS",
            AuthMechanism::TlsC => "TLS-C",
            AuthMechanism::Ssl => "SSL",
            AuthMechanism::TlsP => "TLS-P",
            AuthMechanism::Other(name) => name,
        }
    }

    /// Reads AUTH's argument: case-insensitive, surrounding white space
    /// ignored. Never fails: an unknown name is [`AuthMechanism::Other`].
    fn parse(arg: &str) -> AuthMechanism {
        let name = arg.trim().to_ascii_uppercase();
        match name.as_str() {
            "TLS" => AuthMechanism::Tls,
            "TLS-C" => AuthMechanism::TlsC,
            "SSL" => AuthMechanism::Ssl,
            "TLS-P" => AuthMechanism::TlsP,
            _ => AuthMechanism::Other(name),
        }
    }
}

impl fmt::Display for AuthMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A data channel protection level (RFC 2228 section 3, PROT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtLevel {
    /// C: no protection.
    Clear,
    /// S: integrity protection only.
    Safe,
    /// E: confidentiality only.
    Confidential,
    /// P: integrity and confidentiality (TLS).
    Private,
    /// Not one of the four levels: the argument, trimmed and in upper
    /// case. The server answers it after its own checks (AUTH and PBSZ
    /// first), so it is not a [`ParseError`].
    Unknown(String),
}

impl ProtLevel {
    /// The level's code as PROT carries it (`C`, `S`, `E`, `P`), or the
    /// unknown argument.
    pub fn code(&self) -> &str {
        match self {
            ProtLevel::Clear => "C",
            ProtLevel::Safe => "S",
            ProtLevel::Confidential => "E",
            ProtLevel::Private => "P",
            ProtLevel::Unknown(arg) => arg,
        }
    }

    /// Reads PROT's argument: case-insensitive, surrounding white space
    /// ignored. Never fails: anything else is [`ProtLevel::Unknown`].
    fn parse(arg: &str) -> ProtLevel {
        let code = arg.trim().to_ascii_uppercase();
        match code.as_str() {
            "C" => ProtLevel::Clear,
            "S" => ProtLevel::Safe,
            "E" => ProtLevel::Confidential,
            "P" => ProtLevel::Private,
            _ => ProtLevel::Unknown(code),
        }
    }
}

impl fmt::Display for ProtLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What OPTS sets (RFC 2389 section 4): the command whose options change
/// and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptsArg {
    /// OPTS MLST fact;fact;... (RFC 3659 section 7.9): the facts MLST and
    /// MLSD show from now on. Only facts of [`MLSX_FACTS`], in its order,
    /// each once; unknown facts are dropped and an empty list is allowed.
    Mlst(Vec<&'static str>),
    /// OPTS HASH [algorithm] (draft-bryan-ftpext-hash): `None` asks for the
    /// current algorithm; a name (trimmed, not empty) selects one, and the
    /// server looks it up.
    Hash(Option<String>),
    /// OPTS UTF8 [ON | OFF], also spelt UTF-8: `true` for ON or no value.
    /// (Not in RFC 2640, which announces UTF8 in FEAT; Windows clients and
    /// FileZilla send it.)
    Utf8(bool),
}

impl fmt::Display for OptsArg {
    /// The canonical argument, which parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptsArg::Mlst(facts) if facts.is_empty() => f.write_str("MLST"),
            OptsArg::Mlst(facts) => {
                f.write_str("MLST ")?;
                facts.iter().try_for_each(|fact| write!(f, "{fact};"))
            }
            OptsArg::Hash(None) => f.write_str("HASH"),
            OptsArg::Hash(Some(name)) => write!(f, "HASH {name}"),
            OptsArg::Utf8(on) => write!(f, "UTF8 {}", if *on { "ON" } else { "OFF" }),
        }
    }
}

/// One parsed FTP command (RFC 959 section 4.1, plus RFC 2428 EPRT/EPSV,
/// RFC 2389 FEAT/OPTS and RFC 3659 SIZE/MDTM).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the verb of the same name
pub enum Command {
    User(String),
    Pass(Password),
    Acct(String),
    Cwd(String),
    Cdup,
    Smnt(String),
    Rein,
    Quit,
    Port(SocketAddrV4),
    Pasv,
    Eprt(SocketAddr),
    Epsv(EpsvArg),
    Type(TransferType),
    /// STRU F (the only structure supported).
    Stru,
    /// MODE S (the only mode supported).
    Mode,
    Retr(String),
    Stor(String),
    /// STOU; an argument, if given, is used as a name hint.
    Stou(Option<String>),
    Appe(String),
    Allo(u64),
    Rest(u64),
    Rnfr(String),
    Rnto(String),
    Abor,
    Dele(String),
    Rmd(String),
    Mkd(String),
    Pwd,
    List(Option<String>),
    Nlst(Option<String>),
    Site(SiteCommand),
    Syst,
    Stat(Option<String>),
    Help(Option<String>),
    Noop,
    Feat,
    Opts(OptsArg),
    Size(String),
    Mdtm(String),
    /// MLST [path] (RFC 3659): facts of one entry, on the control connection.
    Mlst(Option<String>),
    /// MLSD [dir] (RFC 3659): facts of a directory's entries, on a data connection.
    Mlsd(Option<String>),
    /// MFMT time path: set the modification time (seconds since the epoch, UTC).
    Mfmt {
        /// The new time.
        time: i64,
        /// The file.
        path: String,
    },
    /// HASH path (draft-bryan-ftpext-hash).
    Hash(String),
    /// AVBL [dir]: free space.
    Avbl(Option<String>),
    /// CLNT name: the client says what it is.
    Clnt(String),
    /// HOST name (RFC 7151): pick a virtual host before USER.
    Host(String),
    /// AUTH mechanism (RFC 2228/4217).
    Auth(AuthMechanism),
    /// PBSZ size (RFC 2228); TLS uses 0.
    Pbsz(u64),
    /// PROT level (RFC 2228).
    Prot(ProtLevel),
    /// CCC: clear the control connection (RFC 2228).
    Ccc,
}

/// Why a line is not a valid command. Each maps to one reply code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An empty line or an unknown verb: 500.
    #[error("Unknown command {0:?}.")]
    Unknown(String),
    /// A missing or malformed argument: 501.
    #[error("{verb}: {reason}.")]
    BadArgument {
        /// The verb, upper case.
        verb: &'static str,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// A valid parameter this server does not implement: 504.
    #[error("{verb}: {reason}.")]
    UnsupportedParameter {
        /// The verb, upper case.
        verb: &'static str,
        /// What is not supported.
        reason: String,
    },
    /// EPRT/EPSV with a network protocol other than 1 or 2: 522.
    #[error("Network protocol not supported, use (1,2).")]
    ProtocolNotSupported,
}

impl ParseError {
    /// The reply code this error is answered with.
    pub fn reply_code(&self) -> u16 {
        match self {
            ParseError::Unknown(_) => code::SYNTAX_ERROR,
            ParseError::BadArgument { .. } => code::SYNTAX_ERROR_ARGS,
            ParseError::UnsupportedParameter { .. } => code::NOT_IMPLEMENTED_FOR_PARAMETER,
            ParseError::ProtocolNotSupported => code::NETWORK_PROTOCOL_NOT_SUPPORTED,
        }
    }
}

/// Every verb the server understands and its syntax, for HELP.
pub const COMMANDS: &[(&str, &str)] = &[
    ("ABOR", "ABOR (abort the transfer in progress)"),
    ("AUTH", "AUTH <sp> TLS"),
    ("ACCT", "ACCT <sp> account-information"),
    ("ALLO", "ALLO <sp> decimal-integer [<sp> R <sp> decimal-integer]"),
    ("AVBL", "AVBL [<sp> pathname] (free space)"),
    ("APPE", "APPE <sp> pathname"),
    ("CCC", "CCC (clear the control connection)"),
    ("CDUP", "CDUP (change to the parent directory)"),
    ("CLNT", "CLNT <sp> client-name"),
    ("CWD", "CWD <sp> pathname"),
    ("DELE", "DELE <sp> pathname"),
    ("EPRT", "EPRT <sp> |proto|address|port|"),
    ("EPSV", "EPSV [<sp> 1 | 2 | ALL]"),
    ("FEAT", "FEAT (list the extensions supported)"),
    ("HASH", "HASH <sp> pathname"),
    ("HELP", "HELP [<sp> command]"),
    ("HOST", "HOST <sp> host-name"),
    ("LIST", "LIST [<sp> pathname]"),
    ("MDTM", "MDTM <sp> pathname"),
    ("MFMT", "MFMT <sp> YYYYMMDDHHMMSS <sp> pathname"),
    ("MKD", "MKD <sp> pathname"),
    ("MLSD", "MLSD [<sp> pathname]"),
    ("MLST", "MLST [<sp> pathname]"),
    ("MODE", "MODE <sp> S"),
    ("NLST", "NLST [<sp> pathname]"),
    ("NOOP", "NOOP"),
    ("OPTS", "OPTS <sp> command [<sp> options]"),
    ("PASS", "PASS <sp> password"),
    ("PASV", "PASV (the server listens for the data connection)"),
    ("PBSZ", "PBSZ <sp> 0"),
    ("PORT", "PORT <sp> h1,h2,h3,h4,p1,p2"),
    ("PROT", "PROT <sp> C | P"),
    ("PWD", "PWD (print the working directory)"),
    ("QUIT", "QUIT (log out)"),
    ("REIN", "REIN (reinitialize the session)"),
    ("REST", "REST <sp> byte-offset"),
    ("RETR", "RETR <sp> pathname"),
    ("RMD", "RMD <sp> pathname"),
    ("RNFR", "RNFR <sp> pathname"),
    ("RNTO", "RNTO <sp> pathname"),
    ("SITE", "SITE <sp> HELP | CHMOD <sp> mode <sp> path | UMASK [<sp> mode] | IDLE [<sp> seconds]"),
    ("SIZE", "SIZE <sp> pathname"),
    ("SMNT", "SMNT <sp> mount-name"),
    ("STAT", "STAT [<sp> pathname]"),
    ("STOR", "STOR <sp> pathname"),
    ("STOU", "STOU (store under a unique name)"),
    ("STRU", "STRU <sp> F"),
    ("SYST", "SYST"),
    ("TYPE", "TYPE <sp> A [N|T] | I | L 8"),
    ("USER", "USER <sp> username"),
    ("XCUP", "XCUP (same as CDUP)"),
    ("XCWD", "XCWD <sp> pathname (same as CWD)"),
    ("XMKD", "XMKD <sp> pathname (same as MKD)"),
    ("XPWD", "XPWD (same as PWD)"),
    ("XRMD", "XRMD <sp> pathname (same as RMD)"),
];

/// Looks up a verb's HELP syntax, case-insensitively.
pub fn syntax_of(verb: &str) -> Option<&'static str> {
    COMMANDS.iter().find(|(v, _)| v.eq_ignore_ascii_case(verb)).map(|(_, s)| *s)
}

impl Command {
    /// Parses one line (without its line end).
    ///
    /// # Errors
    /// A [`ParseError`] naming the reply for unknown verbs and bad
    /// arguments.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let (verb_bytes, arg_bytes) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        let verb_text = String::from_utf8_lossy(verb_bytes);
        if verb_bytes.is_empty() || verb_bytes.len() > 8 || !verb_bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(ParseError::Unknown(verb_text.chars().take(32).collect()));
        }
        let verb = verb_text.to_ascii_uppercase();
        let arg: Option<String> = match arg_bytes {
            None => None,
            Some(bytes) => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| ParseError::BadArgument {
                    verb: static_verb(&verb),
                    reason: "argument is not valid UTF-8".into(),
                })?;
                if text.contains('\0') {
                    return Err(ParseError::BadArgument {
                        verb: static_verb(&verb),
                        reason: "argument contains a NUL byte".into(),
                    });
                }
                // A bare trailing space (`PASV `) counts as no argument.
                if text.is_empty() {
                    None
                } else {
                    Some(text)
                }
            }
        };
        parse_verb(&verb, arg)
    }
}

/// The canonical `&'static str` for a known verb, for error messages.
fn static_verb(verb: &str) -> &'static str {
    COMMANDS.iter().find(|(v, _)| *v == verb).map(|(v, _)| *v).unwrap_or("command")
}

fn required(verb: &'static str, arg: Option<String>, what: &str) -> Result<String, ParseError> {
    match arg {
        Some(a) if !a.trim().is_empty() => Ok(a),
        _ => Err(ParseError::BadArgument { verb, reason: format!("missing {what}") }),
    }
}

fn bad(verb: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError::BadArgument { verb, reason: reason.into() }
}

fn unsupported(verb: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError::UnsupportedParameter { verb, reason: reason.into() }
}

fn parse_u64(verb: &'static str, arg: &str) -> Result<u64, ParseError> {
    let arg = arg.trim();
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(verb, format!("{arg:?} is not a non-negative decimal number")));
    }
    arg.parse().map_err(|_| bad(verb, "number too large"))
}

fn host_port_error(verb: &'static str, e: HostPortError) -> ParseError {
    match e {
        HostPortError::UnsupportedProtocol => ParseError::ProtocolNotSupported,
        HostPortError::Malformed(why) => bad(verb, why),
    }
}

fn parse_verb(verb: &str, arg: Option<String>) -> Result<Command, ParseError> {
    use Command as C;
    Ok(match verb {
        "USER" => C::User(required("USER", arg, "user name")?),
        "PASS" => C::Pass(Password(arg.unwrap_or_default())),
        "ACCT" => C::Acct(required("ACCT", arg, "account")?),
        "CWD" | "XCWD" => C::Cwd(required("CWD", arg, "directory")?),
        "CDUP" | "XCUP" => C::Cdup,
        "SMNT" => C::Smnt(required("SMNT", arg, "mount name")?),
        "REIN" => C::Rein,
        "QUIT" => C::Quit,
        "PORT" => C::Port(
            hostport::parse_port(&required("PORT", arg, "h1,h2,h3,h4,p1,p2")?)
                .map_err(|e| host_port_error("PORT", e))?,
        ),
        "PASV" => C::Pasv,
        "EPRT" => C::Eprt(
            hostport::parse_eprt(&required("EPRT", arg, "|proto|address|port|")?)
                .map_err(|e| host_port_error("EPRT", e))?,
        ),
        "EPSV" => C::Epsv(hostport::parse_epsv_arg(arg.as_deref()).map_err(|e| host_port_error("EPSV", e))?),
        "TYPE" => C::Type(parse_type(&required("TYPE", arg, "type code")?)?),
        "STRU" => match required("STRU", arg, "structure code")?.trim().to_ascii_uppercase().as_str() {
            "F" => C::Stru,
            "R" | "P" => return Err(unsupported("STRU", "only file structure (F) is supported")),
            other => return Err(bad("STRU", format!("unknown structure {other:?}; use F"))),
        },
        "MODE" => match required("MODE", arg, "mode code")?.trim().to_ascii_uppercase().as_str() {
            "S" => C::Mode,
            "B" | "C" => return Err(unsupported("MODE", "only stream mode (S) is supported")),
            other => return Err(bad("MODE", format!("unknown mode {other:?}; use S"))),
        },
        "RETR" => C::Retr(required("RETR", arg, "file name")?),
        "STOR" => C::Stor(required("STOR", arg, "file name")?),
        "STOU" => C::Stou(arg.filter(|a| !a.trim().is_empty())),
        "APPE" => C::Appe(required("APPE", arg, "file name")?),
        "ALLO" => {
            let a = required("ALLO", arg, "size")?;
            let mut words = a.split_whitespace();
            let size = parse_u64("ALLO", words.next().unwrap_or(""))?;
            match (words.next(), words.next(), words.next()) {
                (None, _, _) => {}
                (Some(r), Some(n), None) if r.eq_ignore_ascii_case("R") => {
                    parse_u64("ALLO", n)?;
                }
                _ => return Err(bad("ALLO", "expected ALLO size [R record-size]")),
            }
            C::Allo(size)
        }
        "REST" => C::Rest(parse_u64("REST", &required("REST", arg, "byte offset")?)?),
        "RNFR" => C::Rnfr(required("RNFR", arg, "file name")?),
        "RNTO" => C::Rnto(required("RNTO", arg, "file name")?),
        "ABOR" => C::Abor,
        "DELE" => C::Dele(required("DELE", arg, "file name")?),
        "RMD" | "XRMD" => C::Rmd(required("RMD", arg, "directory")?),
        "MKD" | "XMKD" => C::Mkd(required("MKD", arg, "directory")?),
        "PWD" | "XPWD" => C::Pwd,
        "LIST" => C::List(arg),
        "NLST" => C::Nlst(arg),
        "SITE" => C::Site(parse_site(&required("SITE", arg, "site command")?)?),
        "SYST" => C::Syst,
        "STAT" => C::Stat(arg),
        "HELP" => C::Help(arg.map(|a| a.trim().to_string()).filter(|a| !a.is_empty())),
        "NOOP" => C::Noop,
        "FEAT" => C::Feat,
        "OPTS" => C::Opts(parse_opts(&required("OPTS", arg, "option")?)?),
        "SIZE" => C::Size(required("SIZE", arg, "file name")?),
        "MDTM" => C::Mdtm(required("MDTM", arg, "file name")?),
        "MLST" => C::Mlst(arg.filter(|a| !a.is_empty())),
        "MLSD" => C::Mlsd(arg.filter(|a| !a.is_empty())),
        "MFMT" => {
            let a = required("MFMT", arg, "time and file name")?;
            let (time, path) = a.split_once(' ').ok_or_else(|| bad("MFMT", "expected MFMT YYYYMMDDHHMMSS path"))?;
            let time = crate::listing::parse_timestamp(time)
                .ok_or_else(|| bad("MFMT", format!("{time:?} is not a time YYYYMMDDHHMMSS")))?;
            if path.is_empty() {
                return Err(bad("MFMT", "missing file name"));
            }
            C::Mfmt { time, path: path.to_string() }
        }
        "HASH" => C::Hash(required("HASH", arg, "file name")?),
        "AUTH" => C::Auth(AuthMechanism::parse(&required("AUTH", arg, "mechanism")?)),
        "PBSZ" => C::Pbsz(parse_u64("PBSZ", &required("PBSZ", arg, "buffer size")?)?),
        "PROT" => C::Prot(ProtLevel::parse(&required("PROT", arg, "protection level")?)),
        "CCC" => C::Ccc,
        "AVBL" => C::Avbl(arg.filter(|a| !a.is_empty())),
        "CLNT" => C::Clnt(arg.unwrap_or_default()),
        "HOST" => {
            let host = required("HOST", arg, "host name")?.trim().to_string();
            let plain = host.trim_start_matches('[').trim_end_matches(']');
            if plain.is_empty()
                || !plain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
            {
                return Err(bad("HOST", format!("{host:?} is not a host name or address")));
            }
            C::Host(host.to_ascii_lowercase())
        }
        other => return Err(ParseError::Unknown(other.chars().take(32).collect())),
    })
}

/// OPTS's argument: `MLST` and `HASH` take the rest of the line after one
/// space as their value; `UTF8` and `UTF-8` look at the next word only.
fn parse_opts(arg: &str) -> Result<OptsArg, ParseError> {
    let trimmed = arg.trim();
    let (option, value) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
    if option.eq_ignore_ascii_case("MLST") {
        let wanted: Vec<&str> = value.split(';').map(str::trim).filter(|f| !f.is_empty()).collect();
        let facts = MLSX_FACTS.iter().copied().filter(|f| wanted.iter().any(|w| w.eq_ignore_ascii_case(f))).collect();
        return Ok(OptsArg::Mlst(facts));
    }
    if option.eq_ignore_ascii_case("HASH") {
        let name = value.trim();
        return Ok(OptsArg::Hash((!name.is_empty()).then(|| name.to_string())));
    }
    let mut words = arg.split_whitespace();
    let option = words.next().unwrap_or_default();
    if option.eq_ignore_ascii_case("UTF8") || option.eq_ignore_ascii_case("UTF-8") {
        return match words.next() {
            None => Ok(OptsArg::Utf8(true)),
            Some(on) if on.eq_ignore_ascii_case("ON") => Ok(OptsArg::Utf8(true)),
            Some(off) if off.eq_ignore_ascii_case("OFF") => Ok(OptsArg::Utf8(false)),
            Some(other) => {
                Err(unsupported("OPTS", format!("UTF8 {:?} is not supported; UTF8 is always on", clip(other))))
            }
        };
    }
    Err(bad("OPTS", format!("option not understood: {:?}", clip(arg))))
}

/// At most 64 characters of `text`, to quote it in an error message.
fn clip(text: &str) -> &str {
    text.char_indices().nth(64).map_or(text, |(i, _)| &text[..i])
}

fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let words: Vec<String> = arg.split_whitespace().map(str::to_ascii_uppercase).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["A"] | ["A", "N"] | ["A", "T"] => Ok(TransferType::Ascii),
        ["I"] | ["L", "8"] => Ok(TransferType::Binary),
        ["A", "C"] => Err(unsupported("TYPE", "ASA carriage control is not supported")),
        ["E"] | ["E", "N" | "T" | "C"] => Err(unsupported("TYPE", "EBCDIC is not supported; use A or I")),
        ["L", n] if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
            Err(unsupported("TYPE", "only local byte size 8 is supported"))
        }
        _ => Err(bad("TYPE", format!("unknown type {arg:?}; use A or I"))),
    }
}

fn parse_octal(verb: &'static str, s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad(verb, format!("{s:?} is not an octal mode 0-7777")));
    }
    u32::from_str_radix(s, 8).map_err(|_| bad(verb, "bad octal mode"))
}

fn parse_site(arg: &str) -> Result<SiteCommand, ParseError> {
    let arg = arg.trim_start();
    let (sub, rest) = match arg.find(' ') {
        Some(i) => (&arg[..i], Some(&arg[i + 1..])),
        None => (arg, None),
    };
    let rest = rest.map(str::trim_start).filter(|r| !r.is_empty());
    match sub.to_ascii_uppercase().as_str() {
        "HELP" => Ok(SiteCommand::Help),
        "CHMOD" => {
            let rest = rest.ok_or_else(|| bad("SITE", "CHMOD needs a mode and a path"))?;
            let (mode, path) = rest.split_once(' ').ok_or_else(|| bad("SITE", "CHMOD needs a mode and a path"))?;
            if path.is_empty() {
                return Err(bad("SITE", "CHMOD needs a path"));
            }
            Ok(SiteCommand::Chmod { mode: parse_octal("SITE", mode)?, path: path.to_string() })
        }
        "UMASK" => Ok(SiteCommand::Umask(rest.map(|r| parse_octal("SITE", r.trim())).transpose()?)),
        "IDLE" => Ok(SiteCommand::Idle(rest.map(|r| parse_u64("SITE", r)).transpose()?)),
        other => Err(ParseError::Unknown(format!("SITE {}", other.chars().take(32).collect::<String>()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn case_insensitive_verbs() {
        assert_eq!(p("user ftp").unwrap(), Command::User("ftp".into()));
        assert_eq!(p("NoOp").unwrap(), Command::Noop);
        assert_eq!(p("xpwd").unwrap(), Command::Pwd);
    }

    #[test]
    fn codes_for_errors() {
        assert_eq!(p("FOO").unwrap_err().reply_code(), 500);
        assert_eq!(p("").unwrap_err().reply_code(), 500);
        assert_eq!(p("RETR").unwrap_err().reply_code(), 501);
        assert_eq!(p("REST abc").unwrap_err().reply_code(), 501);
        assert_eq!(p("TYPE E").unwrap_err().reply_code(), 504);
        assert_eq!(p("TYPE Z").unwrap_err().reply_code(), 501);
        assert_eq!(p("MODE B").unwrap_err().reply_code(), 504);
        assert_eq!(p("MODE X").unwrap_err().reply_code(), 501);
        assert_eq!(p("STRU R").unwrap_err().reply_code(), 504);
        assert_eq!(p("EPRT |3|x|1|").unwrap_err().reply_code(), 522);
        assert_eq!(p("PORT 1,2,3").unwrap_err().reply_code(), 501);
        assert_eq!(p("SITE FROB").unwrap_err().reply_code(), 500);
        assert_eq!(p("SITE CHMOD 999 x").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn types() {
        assert_eq!(p("TYPE A N").unwrap(), Command::Type(TransferType::Ascii));
        assert_eq!(p("type l 8").unwrap(), Command::Type(TransferType::Binary));
        assert_eq!(p("TYPE I").unwrap(), Command::Type(TransferType::Binary));
    }

    #[test]
    fn paths_keep_spaces_and_utf8() {
        assert_eq!(p("RETR 测试 文件 .txt").unwrap(), Command::Retr("测试 文件 .txt".into()));
        assert_eq!(Command::parse(b"RETR \xff").unwrap_err().reply_code(), 501);
        assert_eq!(Command::parse(b"RETR a\0b").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn site_and_allo() {
        assert_eq!(
            p("SITE CHMOD 755 a b").unwrap(),
            Command::Site(SiteCommand::Chmod { mode: 0o755, path: "a b".into() })
        );
        assert_eq!(p("site umask").unwrap(), Command::Site(SiteCommand::Umask(None)));
        assert_eq!(p("ALLO 100 R 10").unwrap(), Command::Allo(100));
        assert_eq!(p("ALLO x").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn extensions() {
        assert_eq!(p("MLSD").unwrap(), Command::Mlsd(None));
        assert_eq!(p("mlst a b").unwrap(), Command::Mlst(Some("a b".into())));
        assert_eq!(
            p("MFMT 20261124151616 my file").unwrap(),
            Command::Mfmt { time: 1_795_533_376, path: "my file".into() }
        );
        assert_eq!(p("MFMT 20261324151616 f").unwrap_err().reply_code(), 501);
        assert_eq!(p("MFMT 2026 f").unwrap_err().reply_code(), 501);
        assert_eq!(p("HOST FTP.Example.com").unwrap(), Command::Host("ftp.example.com".into()));
        assert_eq!(p("HOST [::1]").unwrap(), Command::Host("[::1]".into()));
        assert_eq!(p("HOST a/b").unwrap_err().reply_code(), 501);
        assert_eq!(p("CLNT lftp 4.9").unwrap(), Command::Clnt("lftp 4.9".into()));
    }

    #[test]
    fn auth_mechanisms() {
        assert_eq!(p("AUTH TLS").unwrap(), Command::Auth(AuthMechanism::Tls));
        assert_eq!(p("auth tls").unwrap(), Command::Auth(AuthMechanism::Tls));
        assert_eq!(p("AUTH  Tls-C ").unwrap(), Command::Auth(AuthMechanism::TlsC));
        assert_eq!(p("AUTH ssl").unwrap(), Command::Auth(AuthMechanism::Ssl));
        assert_eq!(p("AUTH tls-p").unwrap(), Command::Auth(AuthMechanism::TlsP));
        // Other mechanisms reach the server, which answers 502, 503 or 504.
        assert_eq!(p("AUTH gssapi").unwrap(), Command::Auth(AuthMechanism::Other("GSSAPI".into())));
        assert_eq!(p("AUTH TLS X").unwrap(), Command::Auth(AuthMechanism::Other("TLS X".into())));
        assert_eq!(p("AUTH TLS1.2").unwrap(), Command::Auth(AuthMechanism::Other("TLS1.2".into())));
        assert_eq!(p("AUTH").unwrap_err().reply_code(), 501);
        assert_eq!(p("AUTH ").unwrap_err().reply_code(), 501);
        assert_eq!(p("AUTH   ").unwrap_err().reply_code(), 501);
        assert_eq!(Command::parse(b"AUTH T\xffLS").unwrap_err().reply_code(), 501);
        for m in [AuthMechanism::Tls, AuthMechanism::TlsC, AuthMechanism::Ssl, AuthMechanism::TlsP] {
            assert_eq!(p(&format!("AUTH {m}")).unwrap(), Command::Auth(m));
        }
    }

    #[test]
    fn prot_levels() {
        assert_eq!(p("PROT C").unwrap(), Command::Prot(ProtLevel::Clear));
        assert_eq!(p("prot s").unwrap(), Command::Prot(ProtLevel::Safe));
        assert_eq!(p("PROT e").unwrap(), Command::Prot(ProtLevel::Confidential));
        assert_eq!(p("PROT  p ").unwrap(), Command::Prot(ProtLevel::Private));
        // Unknown levels reach the server, which answers 503 or 504.
        assert_eq!(p("PROT x").unwrap(), Command::Prot(ProtLevel::Unknown("X".into())));
        assert_eq!(p("PROT P P").unwrap(), Command::Prot(ProtLevel::Unknown("P P".into())));
        assert_eq!(p("PROT Private").unwrap(), Command::Prot(ProtLevel::Unknown("PRIVATE".into())));
        assert_eq!(p("PROT").unwrap_err().reply_code(), 501);
        assert_eq!(p("PROT  ").unwrap_err().reply_code(), 501);
        assert_eq!(Command::parse(b"PROT \0").unwrap_err().reply_code(), 501);
        for level in [ProtLevel::Clear, ProtLevel::Safe, ProtLevel::Confidential, ProtLevel::Private] {
            assert_eq!(p(&format!("PROT {level}")).unwrap(), Command::Prot(level));
        }
    }

    #[test]
    fn opts_mlst() {
        let mlst = |facts: &[&'static str]| Command::Opts(OptsArg::Mlst(facts.to_vec()));
        // The server's order, each fact once, unknown facts dropped.
        assert_eq!(p("OPTS MLST size;Type;bogus;").unwrap(), mlst(&["type", "size"]));
        assert_eq!(p("opts mlst unix.MODE; size ;size;;").unwrap(), mlst(&["size", "UNIX.mode"]));
        assert_eq!(p("OPTS MLST type;size;modify;perm;unique;UNIX.mode;").unwrap(), mlst(&MLSX_FACTS));
        // An empty list is allowed (RFC 3659 7.9).
        assert_eq!(p("OPTS MLST").unwrap(), mlst(&[]));
        assert_eq!(p("OPTS MLST ").unwrap(), mlst(&[]));
        assert_eq!(p("OPTS MLST bogus;").unwrap(), mlst(&[]));
        // The list follows the first space; spaces around a fact are ignored,
        // but a tab is no separator.
        assert_eq!(p("OPTS MLST  size;").unwrap(), mlst(&["size"]));
        assert_eq!(p("OPTS MLST size; type;").unwrap(), mlst(&["type", "size"]));
        assert_eq!(p("OPTS MLST\tsize;").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn opts_hash() {
        assert_eq!(p("OPTS HASH").unwrap(), Command::Opts(OptsArg::Hash(None)));
        assert_eq!(p("OPTS hash   ").unwrap(), Command::Opts(OptsArg::Hash(None)));
        assert_eq!(p("OPTS HASH sha-512").unwrap(), Command::Opts(OptsArg::Hash(Some("sha-512".into()))));
        assert_eq!(p("OPTS HASH  whirlpool ").unwrap(), Command::Opts(OptsArg::Hash(Some("whirlpool".into()))));
        // The server looks the name up, so a name with a space is its to refuse.
        assert_eq!(p("OPTS HASH SHA 1").unwrap(), Command::Opts(OptsArg::Hash(Some("SHA 1".into()))));
        assert_eq!(p("OPTS HASH\tSHA-1").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn opts_utf8() {
        for on in ["OPTS UTF8 ON", "opts utf8 on", "OPTS UTF8", "OPTS UTF-8 ON", "OPTS utf-8", "OPTS  UTF8\tON  "] {
            assert_eq!(p(on).unwrap(), Command::Opts(OptsArg::Utf8(true)), "{on}");
        }
        // Only the first word after the option counts, as before.
        assert_eq!(p("OPTS UTF8 ON NLST").unwrap(), Command::Opts(OptsArg::Utf8(true)));
        assert_eq!(p("OPTS UTF8 OFF").unwrap(), Command::Opts(OptsArg::Utf8(false)));
        assert_eq!(p("OPTS utf-8 off").unwrap(), Command::Opts(OptsArg::Utf8(false)));
        // Any other value: 504, as UTF8 OFF gets from the server.
        for bad in ["OPTS UTF8 NLST", "OPTS UTF8 1", "OPTS UTF-8 YES"] {
            assert_eq!(p(bad).unwrap_err().reply_code(), 504, "{bad}");
        }
        assert_eq!(p("OPTS UTF16 ON").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn opts_refused() {
        assert_eq!(p("OPTS").unwrap_err().reply_code(), 501);
        assert_eq!(p("OPTS  ").unwrap_err().reply_code(), 501);
        assert_eq!(p("OPTS FROB").unwrap_err().reply_code(), 501);
        assert_eq!(p("OPTS MLSTX size;").unwrap_err().reply_code(), 501);
        assert_eq!(p("OPTS HASHES").unwrap_err().reply_code(), 501);
        assert_eq!(p("OPTS RETR x").unwrap_err().reply_code(), 501);
        let e = p("OPTS FROB").unwrap_err();
        assert_eq!(e.to_string(), "OPTS: option not understood: \"FROB\".");
        // A long argument is quoted in part.
        let long = format!("OPTS {}", "x".repeat(1000));
        assert!(p(&long).unwrap_err().to_string().len() < 100);
    }

    #[test]
    fn opts_canonical_form_round_trips() {
        for arg in [
            OptsArg::Mlst(vec![]),
            OptsArg::Mlst(vec!["type", "UNIX.mode"]),
            OptsArg::Mlst(MLSX_FACTS.to_vec()),
            OptsArg::Hash(None),
            OptsArg::Hash(Some("SHA-256".into())),
            OptsArg::Utf8(true),
            OptsArg::Utf8(false),
        ] {
            assert_eq!(p(&format!("OPTS {arg}")).unwrap(), Command::Opts(arg));
        }
    }

    #[test]
    fn password_debug_hidden() {
        let c = p("PASS hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
