//! Property tests of virtual path resolution: whatever a client sends, the
//! resolved path stays inside the root and is normalized, so storage
//! backends only ever see clean relative paths.

use ferroftp_server::path::VirtualPath;
use proptest::prelude::*;

/// Client path arguments: arbitrary strings, and strings built from the
/// pieces that matter (`..`, `.`, empty components, slashes, look-alikes).
fn path_arg() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => Just("..".to_string()),
        2 => Just(".".to_string()),
        2 => Just(String::new()),
        1 => prop::sample::select(vec!["...", ".. ", " ..", "..\\..", "\\", "%2e%2e", ".a", "a.", "~", "\0", "é"])
            .prop_map(str::to_string),
        3 => "[a-z.]{1,6}",
        1 => any::<String>(),
    ];
    prop_oneof![
        1 => any::<String>(),
        1 => "[/.a]{0,24}",
        3 => (any::<bool>(), prop::collection::vec(piece, 0..12), any::<bool>()).prop_map(
            |(absolute, pieces, trailing)| {
                let mut s = if absolute { "/".to_string() } else { String::new() };
                s.push_str(&pieces.join("/"));
                if trailing {
                    s.push('/');
                }
                s
            }
        ),
    ]
}

fn check_normalized(p: &VirtualPath) -> Result<(), TestCaseError> {
    let shown = p.to_string();
    prop_assert!(shown.starts_with('/'), "{:?}", shown);
    let relative = p.relative();
    if p.is_root() {
        // The root is the one path whose relative form is ".".
        prop_assert_eq!(&shown, "/");
        prop_assert_eq!(&relative, ".");
        return Ok(());
    }
    prop_assert!(!relative.starts_with('/'), "{:?}", relative);
    for component in relative.split('/') {
        prop_assert!(!component.is_empty(), "empty component in {:?}", relative);
        prop_assert!(component != "." && component != "..", "{:?} in {:?}", component, relative);
    }
    prop_assert_eq!(shown, format!("/{relative}"));
    prop_assert!(!p.file_name().unwrap_or("").contains('/'));
    Ok(())
}

proptest! {
    // No regression files: a failure prints its minimal input instead.
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn resolved_paths_are_normalized(a in path_arg(), b in path_arg()) {
        let cwd = VirtualPath::root().resolve(&a);
        check_normalized(&cwd)?;
        let p = cwd.resolve(&b);
        check_normalized(&p)?;
        check_normalized(&p.parent())?;
    }

    #[test]
    fn absolute_paths_ignore_the_working_directory(a in path_arg(), b in path_arg()) {
        let absolute = format!("/{b}");
        let cwd = VirtualPath::root().resolve(&a);
        prop_assert_eq!(cwd.resolve(&absolute), VirtualPath::root().resolve(&absolute));
        prop_assert_eq!(cwd.resolve(&absolute), VirtualPath::root().resolve(&b));
    }

    #[test]
    fn resolving_the_shown_path_is_identity(a in path_arg(), b in path_arg()) {
        let p = VirtualPath::root().resolve(&a).resolve(&b);
        let shown = p.to_string();
        // From anywhere, the displayed absolute path names the same place.
        prop_assert_eq!(&VirtualPath::root().resolve(&shown), &p);
        prop_assert_eq!(&VirtualPath::root().resolve(&a).resolve(&shown), &p);
        // Resolving is idempotent on its own output.
        prop_assert_eq!(&p.resolve(&shown), &p);
    }

    #[test]
    fn dot_dot_never_climbs_above_root(depth in 0usize..8, ups in 0usize..16, tail in path_arg()) {
        let mut cwd = VirtualPath::root();
        for i in 0..depth {
            cwd = cwd.join(&format!("d{i}"));
        }
        let arg = vec![".."; ups].join("/");
        let up = cwd.resolve(&arg);
        check_normalized(&up)?;
        prop_assert_eq!(up.to_string().matches('/').count(), depth.saturating_sub(ups).max(1));
        prop_assert_eq!(up.is_root(), ups >= depth);
        check_normalized(&up.resolve(&tail))?;
    }
}
