//! Virtual paths: what a client sees, always absolute and normalized.
//!
//! A client names files relative to its working directory or from its
//! root; [`VirtualPath::resolve`] turns either into a normalized absolute
//! path in which `..` can never climb above `/`. Storage backends receive
//! only [`VirtualPath::relative`], which has no `..` or `.` components and
//! no leading slash. The backend confines paths again (cap-std), so this is
//! the first of two walls, not the only one.

/// An absolute, normalized path inside the session's root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VirtualPath {
    /// Normalized components, none empty, `.` or `..`.
    components: Vec<String>,
}

impl VirtualPath {
    /// The root, `/`.
    pub fn root() -> Self {
        VirtualPath::default()
    }

    /// Resolves a client-supplied path against `self` (the working
    /// directory). Absolute arguments start from the root.
    // SECURITY: `..` at the root stays at the root, as in a chroot, so no
    // argument (`../../etc/passwd`, `/..`, `a/../../..`) names anything
    // above the session's root.
    pub fn resolve(&self, arg: &str) -> VirtualPath {
        let mut components = if arg.starts_with('/') { Vec::new() } else { self.components.clone() };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    components.pop();
                }
                name => components.push(name.to_string()),
            }
        }
        VirtualPath { components }
    }

    /// The parent directory (the root's parent is the root).
    pub fn parent(&self) -> VirtualPath {
        let mut components = self.components.clone();
        components.pop();
        VirtualPath { components }
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The path relative to the storage root, as backends take it: `.`
    /// for the root, else components joined by `/`.
    pub fn relative(&self) -> String {
        if self.components.is_empty() {
            ".".to_string()
        } else {
            self.components.join("/")
        }
    }

    /// Whether this path lies strictly beneath `dir`.
    pub fn is_beneath(&self, dir: &VirtualPath) -> bool {
        self.components.len() > dir.components.len() && self.components.starts_with(&dir.components)
    }

    /// The names from the root down.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.components.iter().map(String::as_str)
    }

    /// A child of this directory.
    pub fn join(&self, name: &str) -> VirtualPath {
        let mut components = self.components.clone();
        components.push(name.to_string());
        VirtualPath { components }
    }
}

impl std::fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.components.is_empty() {
            return f.write_str("/");
        }
        for c in &self.components {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute() {
        let cwd = VirtualPath::root().resolve("a/b");
        assert_eq!(cwd.to_string(), "/a/b");
        assert_eq!(cwd.resolve("c").to_string(), "/a/b/c");
        assert_eq!(cwd.resolve("/x/./y/").to_string(), "/x/y");
        assert_eq!(cwd.resolve("..").to_string(), "/a");
        assert_eq!(cwd.resolve("c").relative(), "a/b/c");
        assert_eq!(VirtualPath::root().relative(), ".");
    }

    #[test]
    fn never_climbs_above_root() {
        let cwd = VirtualPath::root().resolve("a");
        for arg in ["../../..", "/..", "../../etc/passwd", "a/../../../b"] {
            let p = cwd.resolve(arg);
            assert!(!p.relative().split('/').any(|c| c == ".."), "{arg} -> {p}");
        }
        assert_eq!(cwd.resolve("../../etc/passwd").to_string(), "/etc/passwd");
    }
}
