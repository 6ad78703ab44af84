//! FTPS (RFC 4217) with rustls: certificates, and the TLS configurations
//! of one control connection and its data connections.
//!
//! A data connection must resume the TLS session of its own control
//! connection (unless turned off), so that someone who steals the data
//! port cannot complete the handshake. Each control connection gets its
//! own session store: another client's session or ticket is simply not
//! found there, the handshake is a full one, and it is refused.
//!
//! Two client behaviours shape the details (docs/notes/ftps-research.md):
//! lftp and Python (with `session=`) offer the same TLS 1.3 ticket on
//! every data connection, so tickets in our store are not single-use; and
//! curl 7.88 and lftp never read tickets sent on upload connections, then
//! reset the connection with data unread, so uploads get no tickets.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::StoresServerSessions;
use rustls::ServerConfig;

/// Sessions remembered per control connection.
const SESSIONS_PER_CONNECTION: usize = 32;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the pair.
    #[error("certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// Generating a certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

/// The server's TLS state: the certificate in force, reloadable.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    base: RwLock<Arc<ServerConfig>>,
    /// Data connections must resume the control connection's session.
    pub require_session_reuse: bool,
}

fn load_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem { what: "certificate", path: cert.into(), reason: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem { what: "certificate", path: cert.into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
            path: cert.into(),
            reason: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        what: "key",
        path: key.into(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.max_early_data_size = 0;
    Ok(config)
}

impl Tls {
    /// Loads the certificate chain and key from PEM files.
    ///
    /// # Errors
    /// A [`TlsError`] naming the file and problem.
    pub fn load(cert: &Path, key: &Path, require_session_reuse: bool) -> Result<Tls, TlsError> {
        let config = load_config(cert, key)?;
        Ok(Tls { cert: cert.into(), key: key.into(), base: RwLock::new(Arc::new(config)), require_session_reuse })
    }

    /// Reads the PEM files again (after a certificate renewal); sessions
    /// that start afterwards use the new certificate.
    ///
    /// # Errors
    /// As [`Tls::load`]; the old certificate stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load_config(&self.cert, &self.key)?;
        *self.base.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        Ok(())
    }

    /// The configurations of one control connection and its data
    /// connections, sharing a session store of their own.
    pub fn for_connection(&self) -> ConnTls {
        let base = Arc::clone(&self.base.read().unwrap_or_else(PoisonError::into_inner));
        let store: Arc<dyn StoresServerSessions> = Arc::new(ConnSessionStore::default());
        let with = |tickets: usize| {
            let mut c = (*base).clone();
            c.session_storage = Arc::clone(&store);
            c.send_tls13_tickets = tickets;
            Arc::new(c)
        };
        ConnTls { control: with(CONTROL_TICKETS), download: with(DOWNLOAD_TICKETS), upload: with(UPLOAD_TICKETS) }
    }
}

/// TLS 1.3 tickets sent on a control connection: enough for a client that
/// resumes from several data connections at once.
const CONTROL_TICKETS: usize = 4;
/// Tickets sent on a download's data connection.
const DOWNLOAD_TICKETS: usize = 2;
/// Tickets sent on an upload's data connection: none (see the module's
/// notes: curl and lftp never read them and reset the connection).
const UPLOAD_TICKETS: usize = 0;

/// The TLS configurations of one control connection.
#[derive(Debug, Clone)]
pub struct ConnTls {
    /// For the control connection.
    pub control: Arc<ServerConfig>,
    /// For data connections that send (RETR, LIST...).
    pub download: Arc<ServerConfig>,
    /// For data connections that receive (STOR...): no tickets.
    pub upload: Arc<ServerConfig>,
}

/// A small session store for one control connection. `take` does not
/// delete: clients offer the same TLS 1.3 ticket on every data connection.
/// That is safe here: early data is off, every resumption does a fresh key
/// exchange, and the store dies with its control connection.
#[derive(Debug, Default)]
struct ConnSessionStore {
    entries: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl StoresServerSessions for ConnSessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(k, _)| *k != key);
        if entries.len() >= SESSIONS_PER_CONNECTION {
            entries.remove(0);
        }
        entries.push((key, value));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Writes a self-signed certificate and key for `names` (host names or IP
/// addresses) to `cert` and `key`, for testing.
///
/// # Errors
/// [`TlsError::Generate`] when generating or writing fails.
pub fn write_self_signed(names: Vec<String>, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let pair = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::write(cert, pair.cert.pem()).map_err(|e| TlsError::Generate(format!("{}: {e}", cert.display())))?;
    std::fs::write(key, pair.key_pair.serialize_pem())
        .map_err(|e| TlsError::Generate(format!("{}: {e}", key.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        write_self_signed(vec!["localhost".into(), "127.0.0.1".into()], &cert, &key).unwrap();
        let tls = Tls::load(&cert, &key, true).unwrap();
        let conn = tls.for_connection();
        assert_eq!(conn.upload.send_tls13_tickets, 0);
        assert!(tls.reload().is_ok());
        std::fs::write(&key, "not a key").unwrap();
        assert!(tls.reload().unwrap_err().to_string().contains("k.pem"));
        assert!(Tls::load(&key, &key, true).is_err());
    }

    #[test]
    fn sessions_are_reusable_and_bounded() {
        let store = ConnSessionStore::default();
        for i in 0..40u8 {
            store.put(vec![i], vec![i]);
        }
        assert_eq!(store.take(&[39]), Some(vec![39]));
        assert_eq!(store.take(&[39]), Some(vec![39]), "not single-use");
        assert_eq!(store.get(&[0]), None, "bounded");
    }
}
