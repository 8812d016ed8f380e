//! guestd's `directory_tar` upload publishing (`uploads::extract::publish_tar`): the archive is checked
//! and extracted into a target inside a fresh temporary directory, as completing an upload does.
//!
//! Invariants: no panic; nothing appears or changes beside the target (a sentinel file and the
//! directory's listing are compared; no temporary name is left behind); the target holds only
//! directories, regular files and symlinks; every symlink, resolved the way the kernel would (through
//! the other symlinks), points inside the target; a refusal is a 4xx.
#![no_main]

use std::fs;
use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use nullspace_types::upload_api::UploadConflict;

const SENTINEL: &[u8] = b"outside the target";

/// Where `path` leads, following symlinks like the kernel (at most 40 of them); components that do
/// not exist are taken as they are.
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut current = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            current.pop();
            continue;
        }
        let next = current.join(&name);
        match fs::symlink_metadata(&next) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return None; // ELOOP: the kernel resolves nothing
                }
                let target = fs::read_link(&next).ok()?;
                if target.is_absolute() {
                    current = PathBuf::from("/");
                }
                for component in target.components().rev() {
                    match component {
                        Component::Normal(name) => pending.push(name.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => current = next,
        }
    }
    Some(current)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, tar)) = data.split_first() else { return };
    let conflict = match mode % 3 {
        0 => UploadConflict::Merge,
        1 => UploadConflict::Replace,
        _ => UploadConflict::Error,
    };
    let outer = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let outer_path = fs::canonicalize(outer.path()).unwrap();
    let target = outer_path.join("target");
    fs::write(outer_path.join("sentinel"), SENTINEL).unwrap();
    if mode & 4 != 0 {
        // An existing target with a file and a directory for the archive to merge into or replace.
        fs::create_dir_all(target.join("sub")).unwrap();
        fs::write(target.join("existing.txt"), b"old").unwrap();
    }
    let before = listing(&outer_path);

    let result = nullspace_guest::fuzzing::publish_tar(tar, staging.path(), target.to_str().unwrap(), conflict);
    if let Err(refusal) = &result {
        assert!((400..500).contains(&refusal.status), "refused with {}: {:?}", refusal.status, refusal.body);
    }

    assert_eq!(fs::read(outer_path.join("sentinel")).unwrap(), SENTINEL, "the sentinel beside the target changed");
    let mut after = listing(&outer_path);
    if result.is_ok() && !before.contains(&"target".to_owned()) {
        after.retain(|name| name != "target");
    }
    assert_eq!(before, after, "entries appeared or vanished beside the target ({result:?})");
    assert_eq!(listing(staging.path()), ["part-0"], "the staging directory changed");

    if target.exists() {
        let root = fs::canonicalize(&target).unwrap();
        for entry in walkdir(&target) {
            let metadata = fs::symlink_metadata(&entry).unwrap();
            let kind = metadata.file_type();
            assert!(kind.is_dir() || kind.is_file() || kind.is_symlink(), "{entry:?} is a special file");
            if kind.is_symlink() {
                if let Some(resolved) = resolve(&entry) {
                    assert!(
                        resolved.starts_with(&root),
                        "symlink {entry:?} -> {:?} resolves to {resolved:?}, outside the target",
                        fs::read_link(&entry).unwrap()
                    );
                }
            }
        }
    }
});

/// Every entry below `dir`, never following symlinks.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}
