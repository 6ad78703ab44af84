//! TYPE A line-end conversion: LF on disk, CRLF on the wire.
//!
//! Both converters keep state across chunk boundaries, so a CRLF split
//! between two reads converts the same as one that is not.

/// Converts stored text to the wire: every LF not already preceded by CR
/// becomes CRLF.
#[derive(Debug, Default)]
pub struct ToWire {
    /// The last byte emitted was a CR.
    last_was_cr: bool,
}

impl ToWire {
    /// Converts `input`, appending to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// Converts wire text to storage: CRLF becomes LF; a CR not followed by LF
/// is kept.
#[derive(Debug, Default)]
pub struct FromWire {
    /// A CR arrived at the end of the previous chunk and is held back.
    pending_cr: bool,
}

impl FromWire {
    /// Converts `input`, appending to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// Flushes a CR held back at the very end of the transfer.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_wire_across_chunks() {
        let mut c = ToWire::default();
        let mut out = Vec::new();
        c.convert(b"a\nb\r", &mut out);
        c.convert(b"\nc\n", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }

    #[test]
    fn from_wire_across_chunks() {
        let mut c = FromWire::default();
        let mut out = Vec::new();
        c.convert(b"a\r\nb\r", &mut out);
        c.convert(b"\nc\rd\r", &mut out);
        c.finish(&mut out);
        assert_eq!(out, b"a\nb\nc\rd\r");
    }
}
