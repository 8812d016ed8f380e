//! Paths from requests and archives: the shared relative-path cleaning (`rel_path::clean`), the shared
//! absolute normalization (`rel_path::normalize_absolute`/`resolve_under`, used by guestd's files and exec
//! paths, the code gateway and the Dockerfile front end), guestd's request path resolution, archive
//! symlink checks and the server's viewer-asset paths.
//!
//! Invariants: a cleaned relative path is plain components only (never `..`, never absolute, never NUL),
//! joined to a root it stays below it, and cleaning it again changes nothing; a normalized absolute path
//! starts at `/`, has no `.`, `..` or empty components and is a fixed point; resolving a path without `..`
//! under a base stays below the base; an archive symlink accepted as staying inside resolves inside.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use nullspace_types::rel_path::{clean, normalize_absolute, resolve_under, RelPathError};
use nullspace_types::upload_api::link_stays_inside;

/// The input is up to four lines: the path, the cwd, the home directory and a symlink target.
struct Input<'a> {
    path: &'a str,
    base: &'a str,
    home: &'a str,
    link: &'a str,
}

impl<'a> Input<'a> {
    fn parse(text: &'a str) -> Self {
        let mut lines = text.splitn(4, '\n');
        let mut next = || lines.next().unwrap_or("");
        Self { path: next(), base: next(), home: next(), link: next() }
    }
}

fn assert_normalized(path: &str, what: &str) {
    assert!(path.starts_with('/'), "{what}: {path:?} is not absolute");
    if path != "/" {
        assert!(!path.ends_with('/'), "{what}: {path:?} ends with a slash");
        for part in path[1..].split('/') {
            assert!(!matches!(part, "" | "." | ".."), "{what}: {path:?} has a {part:?} component");
        }
    }
    assert_eq!(normalize_absolute(path), path, "{what}: normalizing {path:?} again changed it");
}

fn check_clean(path: &str) {
    for allow_absolute in [false, true] {
        match clean(Path::new(path), allow_absolute) {
            Ok(cleaned) => {
                assert!(cleaned.components().all(|c| matches!(c, Component::Normal(_))), "{path:?} -> {cleaned:?}");
                assert!(!cleaned.as_os_str().as_encoded_bytes().contains(&0));
                assert_eq!(clean(&cleaned, false), Ok(cleaned.clone()), "cleaning {cleaned:?} again changed it");
                let root = Path::new("/srv/root");
                assert!(root.join(&cleaned).starts_with(root), "{path:?} escapes the root");
                assert!(!path.split('/').any(|part| part == ".."), "{path:?} climbs but was accepted");
                if !allow_absolute {
                    assert!(!path.starts_with('/'), "{path:?} is absolute but was accepted");
                }
            }
            Err(RelPathError::Nul) => assert!(path.contains('\0')),
            Err(RelPathError::ParentDir) => assert!(path.split('/').any(|part| part == "..")),
            Err(RelPathError::Absolute) => assert!(!allow_absolute && path.starts_with('/')),
        }
    }
}

/// Where `link`, found at `entry` (relative to an archive root), points, resolved lexically from the
/// root: `None` when it climbs above the root.
fn lexical_depth(entry: &Path, link: &Path) -> Option<usize> {
    let mut depth = entry.parent().map_or(0, |parent| parent.components().count());
    for component in link.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1)?,
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(depth)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let input = Input::parse(text);
    check_clean(input.path);

    let normalized = normalize_absolute(input.path);
    assert_normalized(&normalized, "normalize_absolute");

    let base = normalize_absolute(input.base);
    let home = normalize_absolute(input.home);
    let resolved = resolve_under(&base, input.path);
    assert_normalized(&resolved, "resolve_under");
    if !input.path.starts_with('/') && !input.path.split('/').any(|part| part == "..") {
        assert!(Path::new(&resolved).starts_with(&base), "{:?} under {base:?} left it: {resolved:?}", input.path);
    }

    // guestd's request paths: every answer is a normalized absolute path; only empty or NUL paths fail.
    match nullspace_guest::fuzzing::resolve_path(input.path, &base, &home) {
        Ok(path) => {
            assert_normalized(&path, "guest resolve");
            if input.path.starts_with('/') {
                assert_eq!(path, normalized);
            }
        }
        Err(refusal) => {
            assert_eq!(refusal.status, 400);
            assert!(input.path.is_empty() || input.path.contains('\0'), "{:?} refused", input.path);
        }
    }

    // Archive symlinks (guestd's upload extraction and downloads, the client's extraction).
    if let Ok(entry) = clean(Path::new(input.path), false) {
        let link = Path::new(input.link);
        if link_stays_inside(&entry, link) {
            assert!(lexical_depth(&entry, link).is_some(), "{link:?} at {entry:?} climbs out");
            // `..` only before the first name: a `..` after a name would be resolved by the kernel
            // from wherever that name leads (another symlink), not from the name's lexical parent.
            let mut named = false;
            for component in link.components() {
                match component {
                    Component::Normal(_) => named = true,
                    Component::ParentDir => assert!(!named, "{link:?} climbs after a name"),
                    _ => {}
                }
            }
        }
    }

    // The server's viewer-asset paths: plain, visible components only.
    if let Some(asset) = nullspace_server::fuzzing::viewer_asset_path(input.path) {
        for component in asset.components() {
            let Component::Normal(name) = component else { panic!("{asset:?} has a {component:?}") };
            assert!(!name.to_string_lossy().starts_with('.'), "{asset:?} has a hidden component");
        }
    }
});
