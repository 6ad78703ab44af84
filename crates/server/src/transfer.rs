//! Transfers: copying between a data connection and storage, as a task
//! the session can watch (progress) and cancel (ABOR).
//!
//! Each transfer opens its data connection itself, so the session can send
//! the 150 reply first, as the seed shows (`150 Here comes the directory
//! listing.` and only then does `nc` connect).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferroftp_proto::ascii;
use ferroftp_proto::code;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::data::{DataError, DataSetup};
use crate::storage::{Reader, StorageError, Writer};

/// Size of the copy buffer.
const CHUNK: usize = 64 * 1024;

/// What a transfer moves.
pub enum Job {
    /// Storage (or a listing) to the client: RETR, LIST, NLST.
    Send {
        /// The source.
        source: Reader,
        /// Convert LF to CRLF (TYPE A).
        ascii: bool,
    },
    /// The client to storage: STOR, APPE, STOU.
    Receive {
        /// The target.
        sink: Writer,
        /// Convert CRLF to LF (TYPE A).
        ascii: bool,
    },
}

/// Why a transfer failed, and its reply.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The data connection could not be opened: 425.
    #[error("Failed to establish data connection: {0}")]
    CantOpen(#[from] DataError),
    /// The data connection broke mid-transfer: 426.
    #[error("Data connection broken; transfer aborted: {0}")]
    Network(io::Error),
    /// Storage failed mid-transfer: 451, 452, 552...
    #[error("Transfer failed: {0}")]
    Storage(StorageError),
}

impl TransferError {
    /// The reply code for this failure.
    pub fn reply_code(&self) -> u16 {
        match self {
            TransferError::CantOpen(_) => code::CANT_OPEN_DATA,
            TransferError::Network(_) => code::TRANSFER_ABORTED,
            TransferError::Storage(e) => e.reply_code(),
        }
    }
}

/// Runs one transfer to completion; returns the bytes moved on the wire.
///
/// # Errors
/// A [`TransferError`] naming what failed.
pub async fn run(
    setup: DataSetup,
    open_timeout: Duration,
    job: Job,
    progress: Arc<AtomicU64>,
) -> Result<u64, TransferError> {
    let mut data = setup.open(open_timeout).await?;
    match job {
        Job::Send { mut source, ascii } => {
            let mut buf = vec![0u8; CHUNK];
            let mut converter = ascii.then(ascii::ToWire::default);
            let mut converted = Vec::new();
            let mut total = 0u64;
            loop {
                let n = source.read(&mut buf).await.map_err(|e| TransferError::Storage(e.into()))?;
                if n == 0 {
                    break;
                }
                let wire: &[u8] = match converter.as_mut() {
                    Some(c) => {
                        converted.clear();
                        c.convert(&buf[..n], &mut converted);
                        &converted
                    }
                    None => &buf[..n],
                };
                data.write_all(wire).await.map_err(TransferError::Network)?;
                total += wire.len() as u64;
                progress.store(total, Ordering::Relaxed);
            }
            data.shutdown().await.map_err(TransferError::Network)?;
            Ok(total)
        }
        Job::Receive { mut sink, ascii } => {
            let mut buf = vec![0u8; CHUNK];
            let mut converter = ascii.then(ascii::FromWire::default);
            let mut converted = Vec::new();
            let mut total = 0u64;
            loop {
                let n = data.read(&mut buf).await.map_err(TransferError::Network)?;
                let disk: &[u8] = match converter.as_mut() {
                    Some(c) => {
                        converted.clear();
                        if n == 0 {
                            c.finish(&mut converted);
                        } else {
                            c.convert(&buf[..n], &mut converted);
                        }
                        &converted
                    }
                    None => &buf[..n],
                };
                sink.write_all(disk).await.map_err(|e| TransferError::Storage(e.into()))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                progress.store(total, Ordering::Relaxed);
            }
            sink.flush().await.map_err(|e| TransferError::Storage(e.into()))?;
            sink.shutdown().await.map_err(|e| TransferError::Storage(e.into()))?;
            Ok(total)
        }
    }
}
