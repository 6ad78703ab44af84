//! The control connection's two halves, plain or TLS, and the AUTH TLS
//! upgrade between them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// The reading half of the control connection.
pub(crate) enum ControlReader {
    /// Plain text.
    Plain(OwnedReadHalf),
    /// After AUTH TLS (or on the implicit-TLS port).
    Tls(ReadHalf<TlsStream<TcpStream>>),
    /// Between the halves being taken for an upgrade and put back.
    Closed,
}

/// The writing half of the control connection.
pub(crate) enum ControlWriter {
    /// Plain text.
    Plain(OwnedWriteHalf),
    /// After AUTH TLS.
    Tls(WriteHalf<TlsStream<TcpStream>>),
    /// Between the halves being taken for an upgrade and put back.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "control connection is being upgraded")
}

impl AsyncRead for ControlReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlReader::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ControlReader::Tls(r) => Pin::new(r).poll_read(cx, buf),
            ControlReader::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for ControlWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ControlWriter::Plain(w) => Pin::new(w).poll_write(cx, buf),
            ControlWriter::Tls(w) => Pin::new(w).poll_write(cx, buf),
            ControlWriter::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlWriter::Plain(w) => Pin::new(w).poll_flush(cx),
            ControlWriter::Tls(w) => Pin::new(w).poll_flush(cx),
            ControlWriter::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlWriter::Plain(w) => Pin::new(w).poll_shutdown(cx),
            ControlWriter::Tls(w) => Pin::new(w).poll_shutdown(cx),
            ControlWriter::Closed => Poll::Ready(Err(closed())),
        }
    }
}

/// Runs the TLS handshake on a plain control connection (after the 234
/// reply to AUTH) and returns the TLS halves.
///
/// # Errors
/// The handshake's error, or `NotConnected` if the halves are not plain.
pub(crate) async fn upgrade(
    reader: ControlReader,
    writer: ControlWriter,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<(ControlReader, ControlWriter)> {
    let (ControlReader::Plain(r), ControlWriter::Plain(w)) = (reader, writer) else {
        return Err(closed());
    };
    let stream = r.reunite(w).map_err(|e| io::Error::other(e.to_string()))?;
    let tls = tokio_rustls::TlsAcceptor::from(config).accept(stream).await?;
    let (r, w) = tokio::io::split(tls);
    Ok((ControlReader::Tls(r), ControlWriter::Tls(w)))
}

/// CCC: after the 200 reply, end TLS on the control connection and go on
/// in plain text on the same TCP connection (RFC 4217 12.3).
///
/// Clients differ: curl (by default) waits for our close_notify and does
/// not answer it; ftplib sends its own and waits for ours. So ours goes
/// first, then we look at what the client sends next without letting TLS
/// read it: a TLS alert record (its close_notify) is read and dropped,
/// anything else is already the plain-text command stream.
///
/// # Errors
/// `NotConnected` if the halves are not TLS, or the I/O error.
pub(crate) async fn downgrade(
    reader: ControlReader,
    writer: ControlWriter,
) -> io::Result<(ControlReader, ControlWriter)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ControlReader::Tls(r), ControlWriter::Tls(w)) = (reader, writer) else {
        return Err(closed());
    };
    let mut tls = r.unsplit(w);
    tls.get_mut().1.send_close_notify();
    tls.flush().await?;
    let (mut tcp, _) = tls.into_inner();
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    // A TLS record starts with its content type, 20-24 (TLS 1.3 sends its
    // close_notify as an encrypted record, type 23); plain text starts
    // with a command letter. The whole record goes, however it arrives.
    if (20..=24).contains(&first[0]) {
        let mut head = [0u8; 5];
        tcp.read_exact(&mut head).await?;
        if head[1] != 3 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "neither TLS nor plain text after CCC"));
        }
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut record = vec![0u8; len];
        tcp.read_exact(&mut record).await?;
    }
    let (r, w) = tcp.into_split();
    Ok((ControlReader::Plain(r), ControlWriter::Plain(w)))
}
