//! Control-connection line decoding: Telnet-aware, bounded, and tolerant
//! of bare LF line ends.
//!
//! The control connection speaks the Telnet protocol (RFC 959 section 4).
//! Clients such as `nc` end lines with a bare LF while `telnet` sends CRLF;
//! both are accepted. Telnet commands (IAC sequences, including the
//! Interrupt Process and Data Mark that precede ABOR) are removed from the
//! stream. A line longer than the limit is discarded as it arrives, never
//! buffered, and reported once as [`LineEvent::TooLong`].

/// Longest command line accepted, in bytes, not counting the line end.
pub const MAX_LINE: usize = 4096;

const IAC: u8 = 255;
const DONT: u8 = 254;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const IP: u8 = 244;

/// What the decoder found in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line, without its line end and Telnet commands.
    Line(Vec<u8>),
    /// A line exceeded [`MAX_LINE`]; its bytes were dropped.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    Data,
    Iac,
    Negotiation,
    Subnegotiation,
    SubnegotiationIac,
}

/// Incremental decoder from control-connection bytes to lines.
#[derive(Debug)]
pub struct LineDecoder {
    /// The line gathered so far (never longer than `max`).
    line: Vec<u8>,
    /// Where we are within Telnet command sequences.
    telnet: Telnet,
    /// Set while the rest of an over-long line is being dropped.
    discarding: bool,
    /// The longest line accepted.
    max: usize,
    /// A Telnet Interrupt Process arrived since the last check.
    interrupted: bool,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder that accepts lines up to `max` bytes.
    pub fn new(max: usize) -> Self {
        LineDecoder { line: Vec::new(), telnet: Telnet::Data, discarding: false, max, interrupted: false }
    }

    /// True once after a Telnet Interrupt Process (IAC IP) arrived: the
    /// client is about to send the Synch and ABOR.
    pub fn take_interrupt(&mut self) -> bool {
        std::mem::take(&mut self.interrupted)
    }

    /// True when part of a line has been received but not its end.
    pub fn has_partial_line(&self) -> bool {
        !self.line.is_empty() || self.discarding
    }

    /// Feeds bytes from the connection; complete lines are pushed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<LineEvent>) {
        for &b in bytes {
            match self.telnet {
                Telnet::Data => {
                    if b == IAC {
                        self.telnet = Telnet::Iac;
                    } else {
                        self.push(b, out);
                    }
                }
                Telnet::Iac => {
                    self.telnet = match b {
                        IAC => {
                            self.push(IAC, out);
                            Telnet::Data
                        }
                        WILL..=DONT => Telnet::Negotiation,
                        SB => Telnet::Subnegotiation,
                        IP => {
                            self.interrupted = true;
                            Telnet::Data
                        }
                        // IP, DM, AO, AYT, NOP ... carry no data.
                        240..=249 => Telnet::Data,
                        // Not a Telnet command: the IAC stood alone (as when
                        // the urgent DM after `IAC` was taken out of band),
                        // so the byte is data.
                        data => {
                            self.push(data, out);
                            Telnet::Data
                        }
                    }
                }
                Telnet::Negotiation => self.telnet = Telnet::Data,
                Telnet::Subnegotiation => {
                    if b == IAC {
                        self.telnet = Telnet::SubnegotiationIac;
                    }
                }
                Telnet::SubnegotiationIac => self.telnet = if b == SE { Telnet::Data } else { Telnet::Subnegotiation },
            }
        }
    }

    fn push(&mut self, b: u8, out: &mut Vec<LineEvent>) {
        if b == b'\n' {
            if self.discarding {
                self.discarding = false;
                out.push(LineEvent::TooLong);
            } else {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > self.max {
                    out.push(LineEvent::TooLong);
                } else {
                    out.push(LineEvent::Line(line));
                }
            }
            return;
        }
        if self.discarding {
            return;
        }
        // One byte of slack for the CR of a CRLF at exactly the limit.
        if self.line.len() > self.max {
            // SECURITY: an endless line must not grow memory; drop it.
            self.line = Vec::new();
            self.discarding = true;
            return;
        }
        self.line.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Vec<LineEvent> {
        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        d.feed(input, &mut out);
        out
    }

    fn line(s: &[u8]) -> LineEvent {
        LineEvent::Line(s.to_vec())
    }

    #[test]
    fn crlf_and_bare_lf() {
        assert_eq!(decode(b"USER ftp\r\nPASS x\n"), vec![line(b"USER ftp"), line(b"PASS x")]);
    }

    #[test]
    fn split_across_feeds() {
        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        d.feed(b"NO", &mut out);
        assert!(out.is_empty());
        assert!(d.has_partial_line());
        d.feed(b"OP\r", &mut out);
        d.feed(b"\n", &mut out);
        assert_eq!(out, vec![line(b"NOOP")]);
    }

    #[test]
    fn telnet_ip_and_synch_before_abor() {
        // IAC IP IAC DM ABOR CRLF, as clients send it with urgent data inline.
        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        d.feed(b"\xff\xf4\xff", &mut out);
        assert!(d.take_interrupt());
        assert!(!d.take_interrupt());
        d.feed(b"\xf2ABOR\r\n", &mut out);
        assert_eq!(out, vec![line(b"ABOR")]);
    }

    #[test]
    fn synch_with_dm_taken_out_of_band() {
        // Without SO_OOBINLINE the kernel removes the urgent DM byte.
        assert_eq!(decode(b"\xff\xf4\xffABOR\r\n"), vec![line(b"ABOR")]);
    }

    #[test]
    fn escaped_iac_is_data_and_negotiation_dropped() {
        assert_eq!(decode(b"\xff\xfb\x01a\xff\xffb\xff\xfa\x18\x01\xff\xf0c\n"), vec![line(b"a\xffbc")]);
    }

    #[test]
    fn long_line_is_dropped_without_buffering() {
        let mut d = LineDecoder::new(8);
        let mut out = Vec::new();
        for _ in 0..1000 {
            d.feed(b"xxxxxxxxxxxxxxxx", &mut out);
            assert!(d.line.len() <= 9);
        }
        d.feed(b"\r\nNOOP\r\n", &mut out);
        assert_eq!(out, vec![LineEvent::TooLong, line(b"NOOP")]);
    }

    #[test]
    fn line_at_limit_is_accepted() {
        let mut d = LineDecoder::new(4);
        let mut out = Vec::new();
        d.feed(b"abcd\r\nabcde\n", &mut out);
        assert_eq!(out, vec![line(b"abcd"), LineEvent::TooLong]);
    }
}
