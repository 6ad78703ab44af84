//! FTP replies: a numeric code and one or more lines of text, and the
//! named reply codes of RFC 959 section 4.2 and its extensions.
//!
//! Handlers build a [`Reply`]; only [`Reply::to_wire`] knows how the
//! single-line and multi-line forms look on the control connection.

/// The reply codes ferroftp sends, named as RFC 959 (and RFCs 2228, 2428,
/// 3659) describe them. Handlers use these names, never bare numbers.
pub mod code {
    /// 110: restart marker reply.
    pub const RESTART_MARKER: u16 = 110;
    /// 120: service ready in N minutes.
    pub const SERVICE_READY_LATER: u16 = 120;
    /// 125: data connection already open; transfer starting.
    pub const DATA_ALREADY_OPEN: u16 = 125;
    /// 150: file status okay; about to open data connection.
    pub const OPENING_DATA: u16 = 150;
    /// 200: command okay.
    pub const OK: u16 = 200;
    /// 202: command not implemented, superfluous at this site.
    pub const SUPERFLUOUS: u16 = 202;
    /// 211: system status, or system help reply.
    pub const SYSTEM_STATUS: u16 = 211;
    /// 212: directory status.
    pub const DIRECTORY_STATUS: u16 = 212;
    /// 213: file status.
    pub const FILE_STATUS: u16 = 213;
    /// 214: help message.
    pub const HELP: u16 = 214;
    /// 215: NAME system type.
    pub const SYSTEM_TYPE: u16 = 215;
    /// 220: service ready for new user.
    pub const SERVICE_READY: u16 = 220;
    /// 221: service closing control connection.
    pub const CLOSING: u16 = 221;
    /// 225: data connection open; no transfer in progress.
    pub const DATA_OPEN_NO_TRANSFER: u16 = 225;
    /// 226: closing data connection; requested file action successful.
    pub const CLOSING_DATA: u16 = 226;
    /// 227: entering passive mode (h1,h2,h3,h4,p1,p2).
    pub const ENTERING_PASSIVE: u16 = 227;
    /// 229: entering extended passive mode (|||port|), RFC 2428.
    pub const ENTERING_EXTENDED_PASSIVE: u16 = 229;
    /// 230: user logged in, proceed.
    pub const LOGGED_IN: u16 = 230;
    /// 234: security data exchange complete (AUTH TLS), RFC 2228.
    pub const AUTH_OK: u16 = 234;
    /// 250: requested file action okay, completed.
    pub const FILE_ACTION_OK: u16 = 250;
    /// 257: "PATHNAME" created (also the PWD reply).
    pub const PATHNAME_CREATED: u16 = 257;
    /// 331: user name okay, need password.
    pub const NEED_PASSWORD: u16 = 331;
    /// 332: need account for login.
    pub const NEED_ACCOUNT: u16 = 332;
    /// 350: requested file action pending further information.
    pub const PENDING_FURTHER_INFO: u16 = 350;
    /// 421: service not available, closing control connection.
    pub const SERVICE_NOT_AVAILABLE: u16 = 421;
    /// 425: can't open data connection.
    pub const CANT_OPEN_DATA: u16 = 425;
    /// 426: connection closed; transfer aborted.
    pub const TRANSFER_ABORTED: u16 = 426;
    /// 450: requested file action not taken; file unavailable (busy).
    pub const FILE_UNAVAILABLE_TRANSIENT: u16 = 450;
    /// 451: requested action aborted: local error in processing.
    pub const LOCAL_ERROR: u16 = 451;
    /// 452: requested action not taken; insufficient storage space.
    pub const INSUFFICIENT_STORAGE: u16 = 452;
    /// 500: syntax error, command unrecognized (also: line too long).
    pub const SYNTAX_ERROR: u16 = 500;
    /// 501: syntax error in parameters or arguments.
    pub const SYNTAX_ERROR_ARGS: u16 = 501;
    /// 502: command not implemented.
    pub const NOT_IMPLEMENTED: u16 = 502;
    /// 503: bad sequence of commands.
    pub const BAD_SEQUENCE: u16 = 503;
    /// 504: command not implemented for that parameter.
    pub const NOT_IMPLEMENTED_FOR_PARAMETER: u16 = 504;
    /// 521: data connection cannot be opened with this PROT setting, RFC 4217.
    pub const DATA_PROTECTION_REQUIRED: u16 = 521;
    /// 522: network protocol not supported (EPRT/EPSV), RFC 2428.
    pub const NETWORK_PROTOCOL_NOT_SUPPORTED: u16 = 522;
    /// 530: not logged in.
    pub const NOT_LOGGED_IN: u16 = 530;
    /// 532: need account for storing files.
    pub const NEED_ACCOUNT_FOR_STORING: u16 = 532;
    /// 533: command protection level denied for policy reasons (CCC on a
    /// plain connection), RFC 2228.
    pub const CONTROL_NOT_PROTECTED: u16 = 533;
    /// 534: request denied for policy reasons, RFC 2228.
    pub const POLICY_REFUSES: u16 = 534;
    /// 536: requested PROT level not supported by mechanism, RFC 2228.
    pub const PROTECTION_LEVEL_NOT_SUPPORTED: u16 = 536;
    /// 550: requested action not taken; file unavailable.
    pub const FILE_UNAVAILABLE: u16 = 550;
    /// 551: requested action aborted: page type unknown.
    pub const PAGE_TYPE_UNKNOWN: u16 = 551;
    /// 552: requested file action aborted: exceeded storage allocation.
    pub const EXCEEDED_STORAGE: u16 = 552;
    /// 553: requested action not taken; file name not allowed.
    pub const FILE_NAME_NOT_ALLOWED: u16 = 553;
    /// 554: requested action not taken: invalid REST parameter (RFC 1123
    /// 4.1.3.4, RFC 3659 5.5).
    pub const INVALID_RESTART: u16 = 554;
}

/// One reply: a three-digit code and at least one line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (one of [`code`]).
    pub code: u16,
    /// The text lines; more than one makes a multi-line reply.
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Reply { code, lines: vec![text.into()] }
    }

    /// A multi-line reply: `first` on the opening `code-` line, `body`
    /// lines in between, `last` on the closing `code ` line.
    pub fn multi(code: u16, first: impl Into<String>, body: Vec<String>, last: impl Into<String>) -> Self {
        let mut lines = Vec::with_capacity(body.len() + 2);
        lines.push(first.into());
        lines.extend(body);
        lines.push(last.into());
        Reply { code, lines }
    }

    /// Encodes the reply as it goes on the wire, CRLF line ends.
    ///
    /// Body lines of a multi-line reply are indented by one space, so that
    /// no body line can be mistaken for the closing line (RFC 959 4.2).
    /// CR and LF inside a line (say, from a file name) are replaced, so a
    /// name can never inject a reply line of its own.
    pub fn to_wire(&self) -> Vec<u8> {
        let text: usize = self.lines.iter().map(|l| l.len() + 6).sum();
        let mut out = Vec::with_capacity(text.max(6));
        self.write_to(&mut out);
        out
    }

    /// The wire form of a one-line reply, built without a [`Reply`] (for
    /// fixed texts such as the greeting).
    pub fn line_wire(code: u16, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 6);
        push_line(&mut out, Some((code, b' ')), text);
        out
    }

    /// Appends the reply as it goes on the wire to `out` (see
    /// [`Reply::to_wire`]); two replies sent together share one buffer.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self.lines.as_slice() {
            [] => push_line(out, Some((self.code, b' ')), ""),
            [only] => push_line(out, Some((self.code, b' ')), only),
            [first, body @ .., last] => {
                push_line(out, Some((self.code, b'-')), first);
                for line in body {
                    push_line(out, None, line);
                }
                push_line(out, Some((self.code, b' ')), last);
            }
        }
    }
}

/// Appends one reply line: the code and its separator (`None`: a body
/// line, indented one space), the text with CR and LF turned into spaces,
/// and CRLF.
fn push_line(out: &mut Vec<u8>, code: Option<(u16, u8)>, text: &str) {
    match code {
        Some((code, separator)) => {
            // Reply codes have three digits (RFC 959 4.2).
            let digits = [(code / 100 % 10) as u8, (code / 10 % 10) as u8, (code % 10) as u8];
            out.extend(digits.map(|d| b'0' + d));
            out.push(separator);
        }
        None => out.push(b' '),
    }
    let start = out.len();
    out.extend_from_slice(text.as_bytes());
    for b in &mut out[start..] {
        if matches!(*b, b'\r' | b'\n') {
            *b = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Quotes a path for a 257 reply: wrapped in double quotes, inner double
/// quotes doubled (RFC 959 appendix II).
pub fn quote_path(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        assert_eq!(Reply::new(code::OK, "ok").to_wire(), b"200 ok\r\n");
    }

    #[test]
    fn multi_line_indents_body() {
        let r = Reply::multi(code::SYSTEM_STATUS, "status:", vec!["211 trap".into()], "End");
        assert_eq!(r.to_wire(), b"211-status:\r\n 211 trap\r\n211 End\r\n");
    }

    #[test]
    fn a_line_without_a_reply_is_the_same_line() {
        assert_eq!(Reply::line_wire(code::SERVICE_READY, "hi\n"), Reply::new(code::SERVICE_READY, "hi\n").to_wire());
        assert_eq!(Reply::line_wire(code::SERVICE_READY, "hi"), b"220 hi\r\n");
    }

    #[test]
    fn no_reply_injection() {
        let r = Reply::new(code::OK, "a\r\n230 evil");
        assert_eq!(r.to_wire(), b"200 a  230 evil\r\n");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_path("/a\"b"), "\"/a\"\"b\"");
    }
}
