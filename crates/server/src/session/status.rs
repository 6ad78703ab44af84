//! Informational commands: STAT (the seed's 211 status block, a 213
//! listing, or transfer progress), HELP, FEAT and OPTS.

use ferroftp_proto::command::{syntax_of, COMMANDS};
use ferroftp_proto::{code, OptsArg, Reply, TransferType};

use super::{Action, LoginState, Session};
use crate::hashing::HashAlgorithm;
use crate::permissions::Permission;
use crate::storage::Capabilities;
use ferroftp_proto::listing::MLSX_FACTS;

/// The extensions FEAT announces (besides MLST and HASH, whose lines show
/// the current selection): exactly what the server implements.
const FEATURES: &[&str] =
    &["AVBL", "CLNT", "EPRT", "EPSV", "HOST", "MDTM", "MFMT", "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8"];

/// Whether a backend's [`Capabilities`] include one capability.
type Has = fn(&Capabilities) -> bool;

/// Verbs that need a capability of the session's storage, and which.
const NEEDS: &[(&str, Has)] = &[
    ("APPE", |c| c.append),
    ("AVBL", |c| c.free_space),
    ("MFMT", |c| c.set_mtime),
    ("RNFR", |c| c.rename_files),
    ("RNTO", |c| c.rename_files),
];

/// HELP SITE on storage that keeps no permission bits.
const SITE_WITHOUT_CHMOD: &str = "SITE <sp> HELP | UMASK [<sp> mode] | IDLE [<sp> seconds]";

impl Session {
    /// What the storage this session works in can do: the logged-in
    /// user's, or before login the anonymous root's.
    pub(super) fn capabilities(&self) -> Capabilities {
        if let LoginState::LoggedIn(login) = &self.login {
            return login.storage.capabilities();
        }
        let anonymous = match &self.host {
            Some(host) => host.anonymous_storage.as_ref(),
            None => self.ctx.anonymous_storage.as_ref(),
        };
        anonymous.map_or(self.ctx.backend.capabilities(), |s| s.capabilities())
    }

    /// Whether `verb` works on this session's storage.
    fn supported(&self, verb: &str) -> bool {
        let capabilities = self.capabilities();
        NEEDS.iter().filter(|(v, _)| v.eq_ignore_ascii_case(verb)).all(|(_, has)| has(&capabilities))
    }

    pub(super) fn help(&self, arg: Option<&str>) -> Action {
        match arg {
            Some(verb) if !self.supported(verb) => super::commands::unsupported(&verb.to_ascii_uppercase()),
            Some(verb) if verb.eq_ignore_ascii_case("SITE") && !self.capabilities().chmod => {
                Action::Reply(Reply::new(code::HELP, format!("Syntax: {SITE_WITHOUT_CHMOD}")))
            }
            Some(verb) => match syntax_of(verb) {
                Some(syntax) => Action::Reply(Reply::new(code::HELP, format!("Syntax: {syntax}"))),
                None => Action::Reply(Reply::new(code::NOT_IMPLEMENTED, format!("Unknown command {verb:?}."))),
            },
            None => {
                let verbs: Vec<&str> = COMMANDS.iter().map(|(v, _)| *v).filter(|v| self.supported(v)).collect();
                let body = verbs
                    .chunks(8)
                    .map(|row| row.iter().map(|v| format!("{v:<5}")).collect::<Vec<_>>().join(" "))
                    .collect();
                Action::Reply(Reply::multi(code::HELP, "The following commands are recognized.", body, "Help OK."))
            }
        }
    }

    pub(super) fn feat(&self) -> Action {
        Action::Reply(Reply::multi(code::SYSTEM_STATUS, "Features:", self.feature_lines(), "End"))
    }

    fn feature_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = FEATURES.iter().filter(|f| self.supported(f)).map(|f| (*f).to_string()).collect();
        if self.ctx.tls.is_some() {
            lines.extend(["AUTH TLS", "PBSZ", "PROT"].map(String::from));
        }
        if self.ctx.config.tls.as_ref().is_some_and(|t| t.allow_ccc) {
            lines.push("CCC".into());
        }
        let mlst: String =
            MLSX_FACTS.iter().map(|f| format!("{f}{};", if self.mlst_facts.contains(f) { "*" } else { "" })).collect();
        lines.push(format!("MLST {mlst}"));
        let hash: String = HashAlgorithm::ALL
            .iter()
            .map(|a| format!("{}{};", a.name(), if *a == self.hash { "*" } else { "" }))
            .collect();
        lines.push(format!("HASH {hash}"));
        lines.sort();
        lines
    }

    pub(super) fn opts(&mut self, arg: OptsArg) -> Action {
        match arg {
            OptsArg::Mlst(facts) => {
                self.mlst_facts = facts;
                let shown: String = self.mlst_facts.iter().map(|f| format!("{f};")).collect();
                Action::Reply(Reply::new(code::OK, format!("MLST OPTS {shown}")))
            }
            OptsArg::Hash(None) => Action::Reply(Reply::new(code::OK, self.hash.name())),
            OptsArg::Hash(Some(name)) => match HashAlgorithm::parse(&name) {
                Some(a) => {
                    self.hash = a;
                    Action::Reply(Reply::new(code::OK, a.name()))
                }
                None => Action::Reply(Reply::new(
                    code::SYNTAX_ERROR_ARGS,
                    "Unknown algorithm, current selection not changed.",
                )),
            },
            OptsArg::Utf8(true) => Action::Reply(Reply::new(code::OK, "Always in UTF8 mode.")),
            OptsArg::Utf8(false) => {
                Action::Reply(Reply::new(code::NOT_IMPLEMENTED_FOR_PARAMETER, "UTF8 cannot be turned off."))
            }
        }
    }

    /// The seed's "No session bandwidth limit" line, or the limits.
    fn bandwidth_line(&self) -> String {
        let (down, up) = self.logged_in().map_or((None, None), |l| (l.download_rate, l.upload_rate));
        match (down, up) {
            (None, None) => "No session bandwidth limit".to_string(),
            (Some(d), Some(u)) if d == u => format!("Session bandwidth limit in bytes per second is {d}"),
            _ => {
                let show = |r: Option<u64>| r.map_or("unlimited".to_string(), |r| r.to_string());
                format!("Session bandwidth limit in bytes per second is {} down, {} up", show(down), show(up))
            }
        }
    }

    pub(super) async fn stat(&self, arg: Option<&str>) -> Action {
        if let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) {
            if !self.may(Permission::List) {
                return Action::Reply(Reply::new(code::FILE_UNAVAILABLE, "Permission denied."));
            }
            let path = self.cwd.resolve(arg);
            return match self.listing_text(&path, false).await {
                Ok(text) => {
                    let lines = text.split_terminator("\r\n").map(str::to_string).collect();
                    Action::Reply(Reply::multi(code::FILE_STATUS, format!("Status of {arg}:"), lines, "End of status"))
                }
                Err(e) => Action::Reply(Reply::new(e.reply_code(), format!("Cannot stat {arg}: {e}."))),
            };
        }
        let user = match &self.login {
            LoginState::LoggedIn(l) => format!("Logged in as {}", l.name),
            _ => "Not logged in".to_string(),
        };
        let body = vec![
            format!("Connected to {}", self.peer.ip()),
            user,
            format!("TYPE: {}", if self.transfer_type == TransferType::Ascii { "ASCII" } else { "BINARY" }),
            self.bandwidth_line(),
            format!("Session timeout in seconds is {}", self.idle_timeout.as_secs()),
            if self.tls.is_some() && !self.control_cleared {
                "Control connection is encrypted"
            } else {
                "Control connection is plain text"
            }
            .to_string(),
            if self.protect_data && self.tls.is_some() {
                "Data connections will be encrypted"
            } else {
                "Data connections will be plain text"
            }
            .to_string(),
            format!("At session startup, client count was {}", self.clients_at_start),
            format!("ferroftp {} - secure, fast, stable", crate::VERSION),
        ];
        Action::Reply(Reply::multi(code::SYSTEM_STATUS, "FTP server status:", body, "End of status"))
    }
}
