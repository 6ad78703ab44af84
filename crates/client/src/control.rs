//! The control connection from the client side: send a command, read its
//! reply (single- or multi-line, bounded), and keep a transcript like the
//! seed's telnet session.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferroftp_proto::Reply;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::tls::{ClientStream, TlsClient};

/// Longest reply line accepted from a server.
const MAX_REPLY_LINE: usize = 64 * 1024;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 100_000;

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A network error.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Nothing happened in time.
    #[error("{0}: timed out")]
    Timeout(String),
    /// The server sent something that is not an FTP reply.
    #[error("bad reply from the server: {0}")]
    Protocol(String),
    /// The server answered with an unexpected reply.
    #[error("{command}: {}", reply_text(.reply))]
    Refused {
        /// The command (password hidden).
        command: String,
        /// The reply.
        reply: Reply,
    },
}

/// A reply as one line of text: `530 Login incorrect.`
pub fn reply_text(reply: &Reply) -> String {
    format!("{} {}", reply.code, reply.lines.last().map(String::as_str).unwrap_or(""))
}

/// Which way a transcript line went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Sent,
    /// Server to client.
    Received,
}

/// One line of the control-channel transcript.
#[derive(Debug, Clone)]
pub struct TranscriptLine {
    /// Which way.
    pub direction: Direction,
    /// The line, without its line end (passwords masked).
    pub text: String,
}

/// A connected control channel.
#[derive(Debug)]
pub struct Control {
    reader: BufReader<ReadHalf<ClientStream>>,
    writer: WriteHalf<ClientStream>,
    /// TLS, once the control connection is protected: data connections
    /// use the same configuration, so they resume its session.
    pub tls: Option<TlsClient>,
    /// Time allowed for each step.
    pub timeout: Duration,
    /// Everything sent and received.
    pub transcript: Vec<TranscriptLine>,
    /// Our address on the control connection.
    pub local: SocketAddr,
    /// The server's address.
    pub peer: SocketAddr,
}

async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ClientError::Io { what: what.to_string(), source }),
        Err(_) => Err(ClientError::Timeout(what.to_string())),
    }
}

impl Control {
    /// Connects to `addr` and reads the greeting. Returns the control
    /// channel, the greeting, and how long the TCP connect took.
    ///
    /// # Errors
    /// [`ClientError::Io`] or [`ClientError::Timeout`].
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<(Control, Reply, Duration), ClientError> {
        Control::connect_with(addr, timeout, None).await
    }

    /// As [`Control::connect`]; with `implicit_tls`, TLS starts before the
    /// greeting (implicit FTPS, ftps://).
    ///
    /// # Errors
    /// As [`Control::connect`], and the TLS handshake's error.
    pub async fn connect_with(
        addr: SocketAddr,
        timeout: Duration,
        implicit_tls: Option<TlsClient>,
    ) -> Result<(Control, Reply, Duration), ClientError> {
        let started = Instant::now();
        let stream = within(timeout, &format!("connecting to {addr}"), TcpStream::connect(addr)).await?;
        let connect_time = started.elapsed();
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().map_err(|source| ClientError::Io { what: "local address".into(), source })?;
        let stream = match &implicit_tls {
            Some(tls) => within(timeout, "TLS handshake", tls.connect(stream)).await?,
            None => ClientStream::Tcp(stream),
        };
        let (read, writer) = tokio::io::split(stream);
        let mut control = Control {
            reader: BufReader::new(read),
            writer,
            tls: implicit_tls,
            timeout,
            transcript: Vec::new(),
            local,
            peer: addr,
        };
        let greeting = control.read_reply().await?;
        Ok((control, greeting, connect_time))
    }

    /// AUTH TLS, then the handshake on the control connection (explicit
    /// FTPS).
    ///
    /// # Errors
    /// [`ClientError::Refused`] if the server does not answer 234, or the
    /// handshake's error.
    pub async fn auth_tls(&mut self, tls: TlsClient) -> Result<(), ClientError> {
        let reply = self.command("AUTH TLS").await?;
        if reply.code != 234 {
            return Err(ClientError::Refused { command: "AUTH TLS".into(), reply });
        }
        if !self.reader.buffer().is_empty() {
            return Err(ClientError::Protocol("the server sent more after 234".into()));
        }
        // Put the halves back together, run the handshake, split again.
        let placeholder = || {
            let (r, w) = tokio::io::split(ClientStream::Closed);
            (BufReader::new(r), w)
        };
        let (empty_reader, empty_writer) = placeholder();
        let reader = std::mem::replace(&mut self.reader, empty_reader).into_inner();
        let writer = std::mem::replace(&mut self.writer, empty_writer);
        let ClientStream::Tcp(tcp) = reader.unsplit(writer) else {
            return Err(ClientError::Protocol("the control connection is already TLS".into()));
        };
        let stream = within(self.timeout, "TLS handshake", tls.connect(tcp)).await?;
        let (r, w) = tokio::io::split(stream);
        self.reader = BufReader::new(r);
        self.writer = w;
        self.tls = Some(tls);
        Ok(())
    }

    /// Sends one command line.
    ///
    /// # Errors
    /// [`ClientError::Io`] or [`ClientError::Timeout`].
    pub async fn send(&mut self, line: &str) -> Result<(), ClientError> {
        let shown = if is_pass(line) { "PASS ****".to_string() } else { line.to_string() };
        self.transcript.push(TranscriptLine { direction: Direction::Sent, text: shown.clone() });
        let bytes = format!("{line}\r\n");
        within(self.timeout, &format!("sending {shown}"), self.writer.write_all(bytes.as_bytes())).await
    }

    /// Sends a command and reads its reply.
    ///
    /// # Errors
    /// As [`Control::send`] and [`Control::read_reply`].
    pub async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        self.send(line).await?;
        self.read_reply().await
    }

    /// Sends a command and expects a reply of class `2xx` or `3xx`.
    ///
    /// # Errors
    /// [`ClientError::Refused`] for any other reply.
    pub async fn expect_ok(&mut self, line: &str) -> Result<Reply, ClientError> {
        let reply = self.command(line).await?;
        if (200..400).contains(&reply.code) {
            Ok(reply)
        } else {
            let command = if is_pass(line) { "PASS".into() } else { line.to_string() };
            Err(ClientError::Refused { command, reply })
        }
    }

    async fn read_line(&mut self) -> Result<String, ClientError> {
        let mut buf = Vec::new();
        let timeout = self.timeout;
        let reader = &mut self.reader;
        let n = within(timeout, "reading a reply", async {
            // Bounded: a hostile server cannot make us buffer without end.
            let mut limited = (&mut *reader).take(MAX_REPLY_LINE as u64);
            limited.read_until(b'\n', &mut buf).await
        })
        .await?;
        if n == 0 {
            return Err(ClientError::Io {
                what: "reading a reply".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the control connection",
                ),
            });
        }
        if !buf.ends_with(b"\n") {
            return Err(ClientError::Protocol(format!("reply line longer than {MAX_REPLY_LINE} bytes")));
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        self.transcript.push(TranscriptLine { direction: Direction::Received, text: text.clone() });
        Ok(text)
    }

    /// Reads one reply, single- or multi-line.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] when the text is not an FTP reply.
    pub async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let first = self.read_line().await?;
        let code = parse_code(&first).ok_or_else(|| ClientError::Protocol(first.clone()))?;
        let mut lines = vec![first.get(4..).unwrap_or("").to_string()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let line = self.read_line().await?;
                if line.starts_with(&end) || line == end.trim_end() {
                    lines.push(line.get(4..).unwrap_or("").to_string());
                    break;
                }
                if lines.len() >= MAX_REPLY_LINES {
                    return Err(ClientError::Protocol("multi-line reply without end".into()));
                }
                lines.push(line);
            }
        }
        Ok(Reply { code, lines })
    }

    /// Logs in with USER and PASS (and ACCT is not supported).
    ///
    /// # Errors
    /// [`ClientError::Refused`] naming the reply that refused it.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<Reply, ClientError> {
        let reply = self.command(&format!("USER {user}")).await?;
        match reply.code {
            230 => Ok(reply),
            331 | 332 => self.expect_ok(&format!("PASS {password}")).await,
            _ => Err(ClientError::Refused { command: format!("USER {user}"), reply }),
        }
    }
}

/// True for a PASS line, whose argument must never be shown.
fn is_pass(line: &str) -> bool {
    line.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("PASS "))
}

fn parse_code(line: &str) -> Option<u16> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !matches!(b.get(3), None | Some(b' ') | Some(b'-')) {
        return None;
    }
    line[..3].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_code;

    #[test]
    fn codes() {
        assert_eq!(parse_code("220 hi"), Some(220));
        assert_eq!(parse_code("211-x"), Some(211));
        assert_eq!(parse_code("230"), Some(230));
        assert_eq!(parse_code("2x0 no"), None);
        assert_eq!(parse_code("hello"), None);
    }
}
