//! Host-port encodings of the data-connection commands: PORT and the 227
//! PASV reply (RFC 959), EPRT and the 229 EPSV reply (RFC 2428).
//!
//! The arithmetic the seed does by hand lives here: in
//! `(192,168,0,129,170,218)` the port is 170*256+218 = 43738.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Why a host-port argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// Not six comma-separated numbers 0-255 (PORT) or not
    /// `<d>proto<d>addr<d>port<d>` (EPRT). Maps to reply 501.
    #[error("malformed host-port argument: {0}")]
    Malformed(&'static str),
    /// An EPRT/EPSV network protocol other than 1 (IPv4) or 2 (IPv6).
    /// Maps to reply 522.
    #[error("network protocol not supported, use (1,2)")]
    UnsupportedProtocol,
}

/// Parses a PORT argument `h1,h2,h3,h4,p1,p2`.
///
/// # Errors
/// [`HostPortError::Malformed`] unless it is exactly six numbers 0-255.
pub fn parse_port(arg: &str) -> Result<SocketAddrV4, HostPortError> {
    let mut n = [0u8; 6];
    let mut parts = arg.trim().split(',');
    for slot in n.iter_mut() {
        let part = parts.next().ok_or(HostPortError::Malformed("expected six numbers h1,h2,h3,h4,p1,p2"))?;
        let part = part.trim();
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostPortError::Malformed("each of h1,h2,h3,h4,p1,p2 must be a number 0-255"));
        }
        *slot =
            part.parse().map_err(|_| HostPortError::Malformed("each of h1,h2,h3,h4,p1,p2 must be a number 0-255"))?;
    }
    if parts.next().is_some() {
        return Err(HostPortError::Malformed("expected six numbers h1,h2,h3,h4,p1,p2"));
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Ok(SocketAddrV4::new(ip, u16::from(n[4]) * 256 + u16::from(n[5])))
}

/// Formats an address as PORT's argument and the 227 reply's numbers:
/// `h1,h2,h3,h4,p1,p2`.
pub fn format_host_port(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let port = addr.port();
    format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff)
}

/// The text of a 227 reply for `addr`.
pub fn pasv_reply_text(addr: SocketAddrV4) -> String {
    format!("Entering Passive Mode ({}).", format_host_port(addr))
}

/// Finds the address in a 227 reply's text: the first run of six
/// comma-separated numbers, with or without parentheses (RFC 1123 4.1.2.6
/// tells clients to scan for it).
///
/// # Errors
/// [`HostPortError::Malformed`] when no such run is present.
pub fn parse_pasv_reply(text: &str) -> Result<SocketAddrV4, HostPortError> {
    let bytes = text.as_bytes();
    for start in 0..bytes.len() {
        if !bytes[start].is_ascii_digit() || (start > 0 && bytes[start - 1].is_ascii_digit()) {
            continue;
        }
        let end =
            bytes[start..].iter().position(|b| !(b.is_ascii_digit() || *b == b',')).map_or(bytes.len(), |p| start + p);
        if let Ok(addr) = parse_port(&text[start..end]) {
            return Ok(addr);
        }
    }
    Err(HostPortError::Malformed("no h1,h2,h3,h4,p1,p2 in the 227 reply"))
}

/// Parses an EPRT argument such as `|1|132.235.1.2|6275|` or
/// `|2|::1|5282|`; the delimiter is whatever the first character is.
///
/// # Errors
/// [`HostPortError::UnsupportedProtocol`] for a protocol other than 1 or 2,
/// [`HostPortError::Malformed`] for anything else that does not parse or
/// whose address does not match its protocol.
pub fn parse_eprt(arg: &str) -> Result<SocketAddr, HostPortError> {
    let arg = arg.trim();
    let delim = arg.chars().next().ok_or(HostPortError::Malformed("empty EPRT argument"))?;
    if !(33..=126).contains(&(delim as u32)) || delim.is_ascii_digit() {
        return Err(HostPortError::Malformed("EPRT delimiter must be a printable character"));
    }
    let fields: Vec<&str> = arg.split(delim).collect();
    // "", proto, addr, port, ""
    if fields.len() != 5 || !fields[0].is_empty() || !fields[4].is_empty() {
        return Err(HostPortError::Malformed("expected <d>proto<d>address<d>port<d>"));
    }
    let port: u16 = parse_decimal_port(fields[3])?;
    let ip: IpAddr = match fields[1] {
        "1" => IpAddr::V4(fields[2].parse().map_err(|_| HostPortError::Malformed("not an IPv4 address"))?),
        "2" => IpAddr::V6(fields[2].parse().map_err(|_| HostPortError::Malformed("not an IPv6 address"))?),
        p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => return Err(HostPortError::UnsupportedProtocol),
        _ => return Err(HostPortError::Malformed("network protocol must be a number")),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Formats an EPRT argument for `addr`.
pub fn format_eprt(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("|1|{}|{}|", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("|2|{}|{}|", a.ip(), a.port()),
    }
}

/// The text of a 229 reply announcing `port`.
pub fn epsv_reply_text(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Finds the port in a 229 reply's text: `(<d><d><d>port<d>)`.
///
/// # Errors
/// [`HostPortError::Malformed`] when the text holds no such group.
pub fn parse_epsv_reply(text: &str) -> Result<u16, HostPortError> {
    let open = text.find('(').ok_or(HostPortError::Malformed("no '(' in the 229 reply"))?;
    let close = text[open..].find(')').ok_or(HostPortError::Malformed("no ')' in the 229 reply"))? + open;
    let inner = &text[open + 1..close];
    let delim = inner.chars().next().ok_or(HostPortError::Malformed("empty 229 group"))?;
    let fields: Vec<&str> = inner.split(delim).collect();
    if fields.len() != 5 {
        return Err(HostPortError::Malformed("expected (|||port|) in the 229 reply"));
    }
    parse_decimal_port(fields[3])
}

fn parse_decimal_port(s: &str) -> Result<u16, HostPortError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostPortError::Malformed("port must be a number 0-65535"));
    }
    s.parse().map_err(|_| HostPortError::Malformed("port must be a number 0-65535"))
}

/// The argument of EPSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// Plain `EPSV`: use the control connection's protocol.
    Any,
    /// `EPSV 1` (IPv4) or `EPSV 2` (IPv6).
    Protocol(u8),
    /// `EPSV ALL`: from now on only EPSV may set up data connections.
    All,
}

/// Parses EPSV's optional argument.
///
/// # Errors
/// [`HostPortError::UnsupportedProtocol`] for a number other than 1 or 2,
/// [`HostPortError::Malformed`] for anything else.
pub fn parse_epsv_arg(arg: Option<&str>) -> Result<EpsvArg, HostPortError> {
    match arg.map(str::trim) {
        None | Some("") => Ok(EpsvArg::Any),
        Some(a) if a.eq_ignore_ascii_case("ALL") => Ok(EpsvArg::All),
        Some("1") => Ok(EpsvArg::Protocol(1)),
        Some("2") => Ok(EpsvArg::Protocol(2)),
        Some(a) if a.bytes().all(|b| b.is_ascii_digit()) => Err(HostPortError::UnsupportedProtocol),
        Some(_) => Err(HostPortError::Malformed("EPSV takes 1, 2 or ALL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_arithmetic() {
        let a = parse_port("192,168,0,129,170,218").unwrap();
        assert_eq!(a.port(), 43738);
        assert_eq!(a.ip(), &Ipv4Addr::new(192, 168, 0, 129));
        assert_eq!(parse_port("192,168,0,27,43,103").unwrap().port(), 11111);
        assert_eq!(format_host_port(a), "192,168,0,129,170,218");
    }

    #[test]
    fn port_rejects_garbage() {
        for bad in [
            "",
            "1,2,3,4,5",
            "1,2,3,4,5,6,7",
            "256,0,0,1,1,1",
            "a,b,c,d,e,f",
            "1,2,3,4,5,-6",
            "1,2,3,4,,6",
            "0001,2,3,4,5,6",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pasv_reply_scanning() {
        let a = parse_pasv_reply("Entering Passive Mode (127,0,0,1,200,10).").unwrap();
        assert_eq!(a, "127.0.0.1:51210".parse().unwrap());
        let b = parse_pasv_reply("=127,0,0,1,4,1").unwrap();
        assert_eq!(b.port(), 1025);
        assert!(parse_pasv_reply("Entering Passive Mode").is_err());
    }

    #[test]
    fn eprt_forms() {
        assert_eq!(parse_eprt("|1|132.235.1.2|6275|").unwrap(), "132.235.1.2:6275".parse().unwrap());
        assert_eq!(parse_eprt("!2!::1!5282!").unwrap(), "[::1]:5282".parse().unwrap());
        assert_eq!(parse_eprt("|3|x|1|"), Err(HostPortError::UnsupportedProtocol));
        assert!(matches!(parse_eprt("|1|::1|1|"), Err(HostPortError::Malformed(_))));
        assert!(matches!(parse_eprt("|1|1.2.3.4|70000|"), Err(HostPortError::Malformed(_))));
        assert!(matches!(parse_eprt("|1|1.2.3.4|1"), Err(HostPortError::Malformed(_))));
        let v6: SocketAddr = "[::1]:21".parse().unwrap();
        assert_eq!(parse_eprt(&format_eprt(v6)).unwrap(), v6);
    }

    #[test]
    fn epsv() {
        assert_eq!(parse_epsv_reply(&epsv_reply_text(50000)).unwrap(), 50000);
        assert_eq!(parse_epsv_arg(Some("all")).unwrap(), EpsvArg::All);
        assert_eq!(parse_epsv_arg(None).unwrap(), EpsvArg::Any);
        assert_eq!(parse_epsv_arg(Some("7")), Err(HostPortError::UnsupportedProtocol));
        assert!(matches!(parse_epsv_arg(Some("x")), Err(HostPortError::Malformed(_))));
    }
}
