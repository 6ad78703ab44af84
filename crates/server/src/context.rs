//! What every session of a server shares: settings, accounts, storage,
//! limits, observers. Its own module so that the listener (`server`) and
//! the sessions (`session`) both depend on it and not on each other.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::accounts::Authenticator;
use crate::config::Config;
use crate::limits::Limits;
use crate::storage::{Backend, Storage};

/// A virtual host's own roots and users (RFC 7151 HOST).
#[derive(Debug)]
pub(crate) struct VirtualHost {
    /// The anonymous root, if anonymous login is allowed.
    pub anonymous_storage: Option<Arc<dyn Storage>>,
    /// Who may log in.
    pub accounts: Option<Arc<dyn Authenticator>>,
}

/// What every session shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// Validated settings.
    pub config: Config,
    /// Virtual users, if a users file is configured.
    pub accounts: Option<Arc<dyn Authenticator>>,
    /// The anonymous root, if anonymous login is on.
    pub anonymous_storage: Option<Arc<dyn Storage>>,
    /// Named mounts for SMNT.
    pub mounts: BTreeMap<String, Arc<dyn Storage>>,
    /// Virtual hosts by lower-case name.
    pub hosts: BTreeMap<String, Arc<VirtualHost>>,
    /// FTPS, when a certificate is configured.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The IPv4 address announced in 227 replies, if configured.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Connection counts and bans.
    pub limits: Arc<Limits>,
    /// Quota usage per user, shared while the user has sessions.
    pub usage: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<crate::quota::Usage>>>,
    /// Where storage comes from: roots, mounts and users' homes.
    pub backend: Arc<Backend>,
    /// Who is told what sessions do.
    pub observers: crate::events::Observers,
}
