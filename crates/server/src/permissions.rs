//! What a user may do: a set of [`Permission`]s, from the users file's
//! `permissions = [...]` list or from the `write` shorthand.

use std::fmt;

/// One right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// LIST, NLST, STAT of a path, SIZE, MDTM.
    List,
    /// RETR.
    Read,
    /// STOR and STOU: create and replace files.
    Write,
    /// APPE, and STOR after REST (resume).
    Append,
    /// DELE.
    Delete,
    /// RNFR and RNTO.
    Rename,
    /// MKD.
    Mkdir,
    /// RMD.
    Rmdir,
    /// SITE CHMOD.
    Chmod,
}

impl Permission {
    /// Every permission, with its name in the users file.
    pub const ALL: [(Permission, &'static str); 9] = [
        (Permission::List, "list"),
        (Permission::Read, "read"),
        (Permission::Write, "write"),
        (Permission::Append, "append"),
        (Permission::Delete, "delete"),
        (Permission::Rename, "rename"),
        (Permission::Mkdir, "mkdir"),
        (Permission::Rmdir, "rmdir"),
        (Permission::Chmod, "chmod"),
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The name used in the users file.
    pub fn name(self) -> &'static str {
        Permission::ALL.iter().find(|(p, _)| *p == self).map_or("?", |(_, n)| n)
    }
}

/// A set of permissions.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u16);

impl Permissions {
    /// list and read.
    pub const READ_ONLY: Permissions = Permissions((1 << Permission::List as u16) | (1 << Permission::Read as u16));
    /// Everything.
    pub const ALL: Permissions = Permissions((1 << 9) - 1);

    /// The set of these permissions.
    pub fn of(list: &[Permission]) -> Permissions {
        Permissions(list.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Parses names from the users file.
    ///
    /// # Errors
    /// The first unknown name, with the list of known ones.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Permissions, String> {
        let mut set = Permissions::default();
        for name in names {
            let name = name.as_ref();
            let p = Permission::ALL.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(p, _)| *p).ok_or_else(
                || {
                    let known: Vec<&str> = Permission::ALL.iter().map(|(_, n)| *n).collect();
                    format!("unknown permission {name:?}; known: {}", known.join(", "))
                },
            )?;
            set.0 |= p.bit();
        }
        Ok(set)
    }

    /// True if `p` is in the set.
    pub fn allows(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// This set plus `other`.
    pub fn with(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Permission::ALL.iter().filter(|(p, _)| self.allows(*p)).map(|(_, n)| *n).collect();
        write!(f, "[{}]", names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let p = Permissions::parse(&["list", "READ", "mkdir"]).unwrap();
        assert!(p.allows(Permission::Read) && p.allows(Permission::Mkdir));
        assert!(!p.allows(Permission::Write) && !p.allows(Permission::Delete));
        assert_eq!(format!("{p:?}"), "[list,read,mkdir]");
        assert!(Permissions::parse(&["fly"]).unwrap_err().contains("known: list"));
        for (perm, _) in Permission::ALL {
            assert!(Permissions::ALL.allows(perm));
        }
        assert!(!Permissions::READ_ONLY.allows(Permission::Write));
    }
}
