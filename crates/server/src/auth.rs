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

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

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

/// True if `password` matches the PHC `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
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
        let file = UsersFile {
            user: vec![UserEntry {
                name: "alice".into(),
                password: h,
                home: "/tmp".into(),
                write: true,
                mounts: vec![],
            }],
        };
        assert!(file.verify("alice", "s3cret").is_some());
        assert!(file.verify("alice", "wrong").is_none());
        assert!(file.verify("bob", "s3cret").is_none());
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
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
    }
}
