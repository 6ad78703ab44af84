//! `ftp://[user[:password]@]host[:port][/path]` URLs.

use std::fmt;

/// Why a URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    Parse(#[from] url::ParseError),
    /// A scheme other than ftp:// or ftps://.
    #[error("unsupported scheme {0:?}: use ftp://, ftps:// (implicit TLS) or ftpes:// (explicit TLS)")]
    Scheme(String),
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// The user or password is not valid percent-encoded UTF-8.
    #[error("the user name or password is not valid UTF-8 after percent-decoding")]
    Encoding,
}

/// A parsed FTP URL.
#[derive(Clone, PartialEq, Eq)]
pub struct FtpUrl {
    /// True for ftps:// (implicit TLS).
    pub tls: bool,
    /// True for ftpes:// (explicit TLS: AUTH TLS on port 21).
    pub explicit_tls: bool,
    /// Accept any server certificate (set from `--insecure`, not the URL).
    pub insecure: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (21, or 990 for ftps://, unless given).
    pub port: u16,
    /// User name (`anonymous` unless given).
    pub user: String,
    /// Password (an e-mail-like string for anonymous unless given).
    pub password: String,
    /// Path, percent-decoded, starting with `/` (may be just `/`).
    pub path: String,
}

impl fmt::Debug for FtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FtpUrl")
            .field("tls", &self.tls)
            .field("explicit_tls", &self.explicit_tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .field("path", &self.path)
            .finish()
    }
}

fn decode(s: &str) -> Result<String, UrlError> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| UrlError::Encoding)
}

impl FtpUrl {
    /// Parses a URL.
    ///
    /// # Errors
    /// A [`UrlError`] saying what is wrong.
    pub fn parse(text: &str) -> Result<FtpUrl, UrlError> {
        let url = url::Url::parse(text)?;
        let (tls, explicit_tls) = match url.scheme() {
            "ftp" => (false, false),
            "ftps" => (true, false),
            "ftpes" => (false, true),
            other => return Err(UrlError::Scheme(other.to_string())),
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(UrlError::NoHost),
        };
        let port = url.port().unwrap_or(if tls { 990 } else { 21 });
        let user = if url.username().is_empty() { "anonymous".to_string() } else { decode(url.username())? };
        let password = match url.password() {
            Some(p) => decode(p)?,
            None if user == "anonymous" || user == "ftp" => "ferroftp@".to_string(),
            None => String::new(),
        };
        let path = decode(url.path())?;
        let path = if path.is_empty() { "/".to_string() } else { path };
        Ok(FtpUrl { tls, explicit_tls, insecure: false, host, port, user, password, path })
    }

    /// `host:port` for connecting (IPv6 hosts bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The TLS settings the URL asks for, if any.
    ///
    /// # Errors
    /// A message when the host is no valid TLS server name.
    pub fn tls_client(&self) -> Result<Option<crate::tls::TlsClient>, String> {
        if self.tls || self.explicit_tls {
            crate::tls::TlsClient::new(&self.host, self.insecure).map(Some)
        } else {
            Ok(None)
        }
    }

    /// True when the path names a directory (ends with `/`).
    pub fn is_directory(&self) -> bool {
        self.path.ends_with('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_minimal() {
        let u = FtpUrl::parse("ftp://al%20ice:p%40ss@127.0.0.1:2121/dir/%E6%B5%8B%E8%AF%95%20a.txt").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str()), ("al ice", "p@ss"));
        assert_eq!(u.authority(), "127.0.0.1:2121");
        assert_eq!(u.path, "/dir/测试 a.txt");
        assert!(!format!("{u:?}").contains("p@ss"));
        let m = FtpUrl::parse("ftp://[::1]").unwrap();
        assert_eq!((m.authority().as_str(), m.user.as_str(), m.path.as_str()), ("[::1]:21", "anonymous", "/"));
        assert!(m.is_directory());
        assert_eq!(FtpUrl::parse("ftps://h").unwrap().port, 990);
        let e = FtpUrl::parse("ftpes://h").unwrap();
        assert!(e.explicit_tls && !e.tls && e.port == 21);
        assert!(matches!(FtpUrl::parse("http://h/"), Err(UrlError::Scheme(_))));
        assert!(FtpUrl::parse("nonsense").is_err());
    }
}
