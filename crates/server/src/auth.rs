//! Virtual users: the TOML users file and argon2id password checks.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! home = "/srv/ftp/alice"
//! write = true
//! mounts = ["pub"]
//! ```
//!
//! Unknown users are checked against a dummy hash so that the time a
//! failed login takes does not reveal whether the name exists.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};

use crate::permissions::Permissions;

/// A users-file error, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read or written.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("users file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the key or user).
        message: String,
    },
    /// No such user (for passwd/del).
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// The user exists already (for add).
    #[error("user {0:?} exists already")]
    UserExists(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// One virtual user as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// argon2id PHC hash of the password.
    pub password: String,
    /// Home directory: the user's root.
    pub home: PathBuf,
    /// Whether the user may change files.
    #[serde(default)]
    pub write: bool,
    /// Mount names (from the server's `[mounts]`) the user may SMNT.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Rights, overriding `write`: any of list, read, write, append,
    /// delete, rename, mkdir, rmdir, chmod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// File-creation mask, octal (e.g. "022").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<String>,
    /// Most sessions of this user at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<usize>,
    /// Upload limit per session, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_rate: Option<u64>,
    /// Download limit per session, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_rate: Option<u64>,
    /// Most bytes the user's home may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// Most files the user's home may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_files: Option<u64>,
}

impl UserEntry {
    /// A read-only or read-write user with nothing else set.
    pub fn new(name: String, password: String, home: PathBuf, write: bool) -> UserEntry {
        UserEntry {
            name,
            password,
            home,
            write,
            mounts: Vec::new(),
            permissions: None,
            umask: None,
            max_sessions: None,
            upload_rate: None,
            download_rate: None,
            quota_bytes: None,
            quota_files: None,
        }
    }

    /// The user's rights: `permissions` if given, else all with `write`
    /// and list+read without.
    pub fn rights(&self) -> Permissions {
        match &self.permissions {
            Some(list) => Permissions::parse(list).unwrap_or(Permissions::READ_ONLY),
            None if self.write => Permissions::ALL,
            None => Permissions::READ_ONLY,
        }
    }

    /// The user's umask, if set.
    pub fn umask_bits(&self) -> Option<u32> {
        self.umask.as_deref().and_then(|u| parse_umask(u).ok())
    }
}

/// Parses an octal umask 000-777.
///
/// # Errors
/// A message naming the bad value.
pub fn parse_umask(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777 && !text.is_empty() && text.len() <= 4)
        .ok_or_else(|| format!("umask {text:?} is not octal 000-777"))
}

/// The users file: a list of users.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users, in file order.
    #[serde(default)]
    pub user: Vec<UserEntry>,
}

/// Names that always mean anonymous login and so cannot be virtual users.
pub const ANONYMOUS_NAMES: [&str; 2] = ["anonymous", "ftp"];

impl UsersFile {
    /// Loads and validates a users file.
    ///
    /// # Errors
    /// [`AuthError::Io`] or [`AuthError::Invalid`] naming the problem.
    pub fn load(path: &Path) -> Result<UsersFile, AuthError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| AuthError::Io { path: path.to_path_buf(), source })?;
        let file: UsersFile = toml::from_str(&text)
            .map_err(|e| AuthError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
        for (i, u) in file.user.iter().enumerate() {
            let invalid = |message: String| AuthError::Invalid { path: path.to_path_buf(), message };
            if u.name.is_empty() || u.name.contains(char::is_whitespace) {
                return Err(invalid(format!("user #{}: name must be a non-empty word", i + 1)));
            }
            if ANONYMOUS_NAMES.contains(&u.name.to_ascii_lowercase().as_str()) {
                return Err(invalid(format!("user {:?}: that name is reserved for anonymous login", u.name)));
            }
            if file.user[..i].iter().any(|o| o.name == u.name) {
                return Err(invalid(format!("user {:?} appears twice", u.name)));
            }
            PasswordHash::new(&u.password)
                .map_err(|e| invalid(format!("user {:?}: password is not a PHC hash: {e}", u.name)))?;
            if let Some(list) = &u.permissions {
                Permissions::parse(list).map_err(|e| invalid(format!("user {:?}: permissions: {e}", u.name)))?;
            }
            if let Some(mask) = &u.umask {
                parse_umask(mask).map_err(|e| invalid(format!("user {:?}: {e}", u.name)))?;
            }
            if u.max_sessions == Some(0) {
                return Err(invalid(format!("user {:?}: max_sessions must be at least 1", u.name)));
            }
        }
        Ok(file)
    }

    /// Loads the file, or an empty list if it does not exist yet.
    ///
    /// # Errors
    /// As [`UsersFile::load`], except for a missing file.
    pub fn load_or_default(path: &Path) -> Result<UsersFile, AuthError> {
        if path.exists() {
            UsersFile::load(path)
        } else {
            Ok(UsersFile::default())
        }
    }

    /// Writes the file atomically (temporary file, then rename).
    ///
    /// # Errors
    /// [`AuthError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let io = |source| AuthError::Io { path: path.to_path_buf(), source };
        let text = toml::to_string_pretty(self)
            .map_err(|e| AuthError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Finds a user by name.
    pub fn find(&self, name: &str) -> Option<&UserEntry> {
        self.user.iter().find(|u| u.name == name)
    }

    /// Checks a name and password; returns the user when both match.
    /// Takes about as long whether or not the user exists.
    pub fn verify(&self, name: &str, password: &str) -> Option<&UserEntry> {
        let user = self.find(name);
        let hash = user.map_or(DUMMY_HASH, |u| u.password.as_str());
        let ok = verify_password(hash, password);
        user.filter(|_| ok)
    }
}

/// A valid hash of a random password, verified against for unknown names.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$KfZ2NcLQV0o0B0kK7O0p0xWm7A0g5gq0w5g3h0Yp6Yw";

/// Work areas of finished password checks, kept for the next ones.
///
/// argon2id needs 19 MiB per check. Allocated and freed per login, those
/// areas fragmented the heap: small allocations made between two logins
/// kept the freed area from being reused whole, and the server grew by
/// megabytes per login (seen: 3.9 MiB per idle session after 200 logins).
/// Reused areas keep the memory at one area per concurrent check.
static SPARE_WORK_AREAS: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// True if `password` matches the PHC `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut area = SPARE_WORK_AREAS.lock().ok().and_then(|mut spare| spare.pop()).unwrap_or_default();
    area.resize(params.block_count(), Block::default());
    let mut computed = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut computed,
        &mut area,
    );
    if let Ok(mut spare) = SPARE_WORK_AREAS.lock() {
        spare.push(area);
    }
    // Output's equality is constant-time.
    hashed.is_ok() && Output::new(&computed).is_ok_and(|c| c == expected)
}

/// Hashes a password with argon2id and a random salt.
///
/// # Errors
/// [`AuthError::Hash`] if hashing fails.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let file = UsersFile { user: vec![UserEntry::new("alice".into(), h, "/tmp".into(), true)] };
        assert!(file.verify("alice", "s3cret").is_some());
        assert!(file.verify("alice", "wrong").is_none());
        assert!(file.verify("bob", "s3cret").is_none());
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    /// Reused work areas give the same answers as fresh ones, for hashes
    /// made by the argon2 crate's own hasher with other costs too.
    #[test]
    fn reused_work_areas_verify_like_fresh_ones() {
        use argon2::password_hash::PasswordVerifier;
        let small = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 3, 1, Some(16)).unwrap());
        let salt = SaltString::generate(&mut OsRng);
        let small_hash = small.hash_password(b"pw2", &salt).unwrap().to_string();
        let default_hash = hash_password("pw1").unwrap();
        for _ in 0..3 {
            for (hash, right, wrong) in [(&default_hash, "pw1", "pw2"), (&small_hash, "pw2", "pw1")] {
                assert!(verify_password(hash, right), "{hash}");
                assert!(!verify_password(hash, wrong), "{hash}");
                let parsed = PasswordHash::new(hash).unwrap();
                assert!(Argon2::default().verify_password(right.as_bytes(), &parsed).is_ok());
            }
        }
        assert!(!verify_password("not a hash", "pw1"));
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.toml");
        std::fs::write(&p, "[[user]]\nname = \"a\"\npassword = \"plain\"\nhome = \"/\"\n").unwrap();
        let e = UsersFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("PHC"), "{e}");
        std::fs::write(&p, "[[user]]\nname = \"a\"\npasword = \"x\"\nhome = \"/\"\n").unwrap();
        let e = UsersFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("pasword"), "{e}");
        let hash = hash_password("x").unwrap();
        std::fs::write(
            &p,
            format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\nhome = \"/\"\npermissions = [\"fly\"]\n"),
        )
        .unwrap();
        let e = UsersFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("fly"), "{e}");
        std::fs::write(&p, format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\nhome = \"/\"\numask = \"999\"\n"))
            .unwrap();
        let e = UsersFile::load(&p).unwrap_err().to_string();
        assert!(e.contains("umask"), "{e}");
    }
}
