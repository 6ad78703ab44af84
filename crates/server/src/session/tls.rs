//! FTPS commands (RFC 2228, RFC 4217): AUTH TLS, PBSZ, PROT, CCC, and the
//! TLS settings a transfer gets.

use std::sync::Arc;

use ferroftp_proto::{code, AuthMechanism, ProtLevel, Reply};

use super::{Action, LoginState, Session};
use crate::transfer::DataTls;

fn reply(code: u16, text: impl Into<String>) -> Action {
    Action::Reply(Reply::new(code, text))
}

impl Session {
    /// AUTH TLS (also TLS-C, SSL, TLS-P): 234, then the handshake.
    pub(super) fn auth(&mut self, mechanism: &AuthMechanism) -> Action {
        let Some(tls) = self.ctx.tls.clone() else {
            return reply(code::NOT_IMPLEMENTED, "TLS is not configured on this server (tls_cert, tls_key).");
        };
        if self.tls.is_some() {
            // After CCC too: one TLS negotiation per connection.
            return reply(code::BAD_SEQUENCE, "Already using TLS.");
        }
        if let AuthMechanism::Other(other) = mechanism {
            return reply(code::NOT_IMPLEMENTED_FOR_PARAMETER, format!("AUTH {other} not supported; use AUTH TLS."));
        }
        // RFC 2228: a new security exchange means logging in again.
        if matches!(self.login, LoginState::LoggedIn(_)) {
            self.reinitialize();
        }
        self.login = LoginState::AwaitingUser;
        self.tls = Some(tls.for_connection());
        self.protect_data = *mechanism == AuthMechanism::TlsP;
        Action::StartTls(Reply::new(code::AUTH_OK, format!("AUTH {mechanism} successful.")))
    }

    /// PBSZ: TLS uses 0.
    pub(super) fn pbsz(&mut self, _size: u64) -> Action {
        if self.tls.is_none() {
            return reply(code::BAD_SEQUENCE, "PBSZ needs AUTH TLS first.");
        }
        self.pbsz = true;
        reply(code::OK, "PBSZ=0")
    }

    /// PROT C (plain data) or P (TLS data).
    pub(super) fn prot(&mut self, level: &ProtLevel) -> Action {
        if self.tls.is_none() || !self.pbsz {
            return reply(code::BAD_SEQUENCE, "PROT needs AUTH TLS and PBSZ first.");
        }
        match level {
            ProtLevel::Clear => {
                self.protect_data = false;
                reply(code::OK, "Data connections will be plain text.")
            }
            ProtLevel::Private => {
                self.protect_data = true;
                reply(code::OK, "Data connections will be protected by TLS.")
            }
            ProtLevel::Safe | ProtLevel::Confidential => {
                reply(code::PROTECTION_LEVEL_NOT_SUPPORTED, format!("PROT {level} not supported; use C or P."))
            }
            ProtLevel::Unknown(other) => {
                reply(code::NOT_IMPLEMENTED_FOR_PARAMETER, format!("Unknown protection level {other:?}."))
            }
        }
    }

    /// CCC: end TLS on the control connection, so firewalls and NAT can
    /// read PORT and PASV again; data connections keep their protection.
    pub(super) fn ccc(&mut self) -> Action {
        if self.tls.is_none() || self.control_cleared {
            return reply(code::CONTROL_NOT_PROTECTED, "The control connection is not protected.");
        }
        if !self.ctx.config.tls.as_ref().is_some_and(|t| t.allow_ccc) {
            return reply(
                code::POLICY_REFUSES,
                "CCC refused by policy (tls_allow_ccc): the control connection stays encrypted.",
            );
        }
        Action::ClearControl(Reply::new(code::OK, "CCC ok: the control connection continues in plain text."))
    }

    /// The TLS a transfer's data connection gets: with PROT P, the
    /// connection's download or upload configuration.
    pub(super) fn data_tls(&self, upload: bool) -> Option<DataTls> {
        let conn = self.tls.as_ref().filter(|_| self.protect_data)?;
        let require_resumption = self.ctx.tls.as_ref().is_some_and(|t| t.require_session_reuse);
        let config = if upload { Arc::clone(&conn.upload) } else { Arc::clone(&conn.download) };
        Some(DataTls { config, require_resumption })
    }
}
