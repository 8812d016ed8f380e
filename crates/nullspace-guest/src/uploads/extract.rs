//! Publishing a `directory_tar` upload. A first pass reads the staged tar once, hashing every byte and
//! checking every entry (relative paths without `..`; files, directories and relative symlinks that
//! stay inside the target; nothing else). Only a verified archive is extracted, in a second pass:
//! into a hidden sibling that is renamed into place (new target, `replace`), or entry by entry into
//! the existing directory (`merge`), each file through a temporary name so none is seen truncated.
//! Writes never follow a symlink inside the target.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nullspace_types::upload_api::{link_stays_inside, UploadConflict, UploadFailureReason as R};
use serde_json::json;
use tar::{Archive, EntryType};

use super::error::UploadError;
use super::publish::{checksum_mismatch, conflict, sync_parent, Published};
use super::reader::{HashingReader, PartsReader};
use super::record::Record;
use crate::error::{GuestError, GuestResult};
use crate::files::ops::ensure_parents;
use crate::files::upload::temp_path;

/// One checked archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Skip,
    Dir(PathBuf, u32),
    File(PathBuf, u32),
    Link(PathBuf, PathBuf),
}

fn entry_error(record: &Record, reason: R, entry: &Path, why: &str) -> UploadError {
    UploadError::new(reason, format!("archive entry {:?} {why}", entry.display().to_string()))
        .upload(&record.upload_id)
        .path(&record.target_path)
        .details(json!({"entry": entry.display().to_string()}))
}

/// `path` as a clean relative path (empty for the root), or why it is refused.
fn relative(path: &Path) -> Result<PathBuf, nullspace_types::rel_path::RelPathError> {
    nullspace_types::rel_path::clean_relative(path)
}

fn classify<T: Read>(record: &Record, entry: &tar::Entry<'_, T>) -> GuestResult<Item> {
    let raw = entry
        .path()
        .map_err(|_| entry_error(record, R::DirectoryExtractInvalidPath, Path::new("?"), "has an unreadable path"))?;
    let raw = raw.into_owned();
    let kind = entry.header().entry_type();
    if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink) {
        return Ok(Item::Skip);
    }
    let rel = relative(&raw).map_err(|why| entry_error(record, R::DirectoryExtractInvalidPath, &raw, why.as_str()))?;
    let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
    match kind {
        EntryType::Directory if rel.as_os_str().is_empty() => Ok(Item::Skip),
        EntryType::Directory => Ok(Item::Dir(rel, mode)),
        _ if rel.as_os_str().is_empty() => {
            Err(entry_error(record, R::DirectoryExtractInvalidPath, &raw, "names the target itself").into())
        }
        EntryType::Regular | EntryType::Continuous => Ok(Item::File(rel, mode)),
        EntryType::Symlink => {
            let link = entry.link_name().ok().flatten().map(|link| link.into_owned());
            match link {
                Some(link) if link_stays_inside(&rel, &link) => Ok(Item::Link(rel, link)),
                _ => Err(GuestError::from(entry_error(
                    record,
                    R::DirectoryExtractInvalidSymlink,
                    &raw,
                    "is a symlink that is absolute or points outside the target",
                ))),
            }
        }
        _ => Err(GuestError::from(entry_error(
            record,
            R::DirectoryExtractUnsupportedEntry,
            &raw,
            "is not a file, directory or symlink (hard links and special files are not supported)",
        ))),
    }
}

/// First pass: hashes the whole archive and checks every entry; returns the files and links it holds.
fn verify(record: &Record, parts: Vec<File>, expected: Option<&str>) -> GuestResult<u64> {
    let mut archive = Archive::new(HashingReader::new(PartsReader::new(parts)));
    let mut first_error: Option<GuestError> = None;
    let mut files = 0u64;
    let not_tar = |error: io::Error| -> GuestError {
        entry_error(
            record,
            R::DirectoryExtractUnsupportedEntry,
            Path::new("archive"),
            &format!("is not a valid tar archive: {error}"),
        )
        .into()
    };
    match archive.entries() {
        Ok(entries) => {
            for entry in entries {
                match entry.map_err(not_tar).and_then(|entry| classify(record, &entry)) {
                    Ok(Item::File(..) | Item::Link(..)) => files += 1,
                    Ok(_) => {}
                    Err(error) => {
                        first_error = Some(error);
                        break;
                    }
                }
            }
        }
        Err(error) => first_error = Some(not_tar(error)),
    }
    let (actual, _) = archive
        .into_inner()
        .finish()
        .map_err(|error| GuestError::file_op("read staged upload of", &record.target_path, error))?;
    if let Some(expected) = expected.filter(|expected| *expected != actual) {
        return Err(checksum_mismatch(record, expected, &actual).into());
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(files),
    }
}

/// Publishes the staged `parts` of a `directory_tar` upload under the record's target.
pub fn publish_tar(record: &Record, parts: Vec<File>, expected: Option<&str>) -> GuestResult<Published> {
    let again = parts
        .iter()
        .map(File::try_clone)
        .collect::<io::Result<Vec<_>>>()
        .map_err(|error| GuestError::file_op("read staged upload of", &record.target_path, error))?;
    let files = verify(record, parts, expected)?;
    let target = record.target_path.as_str();
    let existing = fs::symlink_metadata(target).ok();
    let merge_in_place = match (&existing, record.conflict) {
        (Some(_), UploadConflict::Error) => return Err(conflict(record, "already exists").into()),
        (Some(metadata), UploadConflict::Merge) if !metadata.is_dir() => {
            return Err(conflict(record, "exists and is not a directory").into())
        }
        (Some(_), UploadConflict::Merge) => true,
        _ => false,
    };
    ensure_parents(target)?;
    let root = if merge_in_place {
        PathBuf::from(target)
    } else {
        let staged = PathBuf::from(temp_path(target));
        fs::create_dir(&staged).map_err(|error| GuestError::file_op("create", target, error))?;
        staged
    };
    let extracted = extract_into(record, &root, again);
    if merge_in_place {
        extracted?;
        return Ok(Published { bytes: record.content_length, files });
    }
    let swapped = extracted.and_then(|()| swap_into_place(&root, target, existing.is_some()));
    if swapped.is_err() {
        let _ = fs::remove_dir_all(&root);
    }
    swapped?;
    Ok(Published { bytes: record.content_length, files })
}

fn swap_into_place(staged: &Path, target: &str, replace: bool) -> GuestResult<()> {
    let fail = |error| GuestError::file_op("replace", target, error);
    if replace {
        let old = temp_path(target);
        fs::rename(target, &old).map_err(fail)?;
        if let Err(error) = fs::rename(staged, target) {
            let _ = fs::rename(&old, target);
            return Err(fail(error));
        }
        let removed = match fs::symlink_metadata(&old) {
            Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(&old),
            _ => fs::remove_file(&old),
        };
        if let Err(error) = removed {
            tracing::warn!(path = %old, %error, "cannot remove the replaced upload target");
        }
    } else {
        fs::rename(staged, target).map_err(fail)?;
    }
    sync_parent(target);
    Ok(())
}

/// Refuses to write below a symlink or through a non-directory inside `root`.
fn check_ancestors(record: &Record, root: &Path, rel: &Path) -> GuestResult<()> {
    let mut current = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for component in parent.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(entry_error(
                    record,
                    R::DirectoryExtractInvalidPath,
                    rel,
                    "would be written through a symlink",
                )
                .into())
            }
            Ok(metadata) if !metadata.is_dir() => {
                return Err(
                    conflict(record, &format!("has a file where {} needs a directory", current.display())).into()
                )
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Second pass: writes the (verified) archive's entries under `root`.
fn extract_into(record: &Record, root: &Path, parts: Vec<File>) -> GuestResult<()> {
    let target = record.target_path.as_str();
    let io_fail = |error: io::Error| GuestError::file_op("extract into", target, error);
    let mut archive = Archive::new(PartsReader::new(parts));
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(io_fail)? {
        let mut entry = entry.map_err(io_fail)?;
        let item = classify(record, &entry)?;
        let rel = match &item {
            Item::Skip => continue,
            Item::Dir(rel, _) | Item::File(rel, _) | Item::Link(rel, _) => rel.clone(),
        };
        check_ancestors(record, root, &rel)?;
        let path = root.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_fail)?;
        }
        let existing = fs::symlink_metadata(&path).ok();
        let existing_dir = existing.as_ref().is_some_and(|metadata| metadata.is_dir());
        match item {
            Item::Skip => {}
            Item::Dir(_, mode) => {
                if existing.is_some() && !existing_dir {
                    fs::remove_file(&path).map_err(io_fail)?;
                }
                if !existing_dir {
                    fs::create_dir(&path).map_err(io_fail)?;
                }
                dir_modes.push((path, mode));
            }
            Item::File(_, mode) => {
                if existing_dir {
                    return Err(conflict(record, &format!("has a directory where {} is a file", rel.display())).into());
                }
                let temp = temp_path(&path.display().to_string());
                let written = (|| {
                    let mut file = File::options().write(true).create_new(true).open(&temp)?;
                    io::copy(&mut entry, &mut file)?;
                    file.set_permissions(fs::Permissions::from_mode(mode))?;
                    drop(file);
                    fs::rename(&temp, &path)
                })();
                if let Err(error) = written {
                    let _ = fs::remove_file(&temp);
                    return Err(io_fail(error));
                }
            }
            Item::Link(_, link) => {
                if existing_dir {
                    return Err(
                        conflict(record, &format!("has a directory where {} is a symlink", rel.display())).into()
                    );
                }
                if existing.is_some() {
                    fs::remove_file(&path).map_err(io_fail)?;
                }
                std::os::unix::fs::symlink(&link, &path).map_err(io_fail)?;
            }
        }
    }
    for (path, mode) in dir_modes.into_iter().rev() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_refuse_parents_and_roots() {
        assert_eq!(relative(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("./")).unwrap(), PathBuf::new());
        assert!(relative(Path::new("a/../../b")).is_err());
        assert!(relative(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn a_symlink_through_another_symlink_cannot_point_outside_the_target() {
        // Found by the `tar_extract` fuzz target: `d -> .` then `e -> d/..` made `e` the target's parent.
        let mut builder = tar::Builder::new(Vec::new());
        for (name, link) in [("d", "."), ("e", "d/..")] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            builder.append_link(&mut header, name, link).unwrap();
        }
        let archive = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("part-0");
        fs::write(&part, &archive).unwrap();
        let target = dir.path().join("target").display().to_string();
        let record = Record::new(
            "up_1".into(),
            nullspace_types::upload_api::UploadKind::DirectoryTar,
            nullspace_types::upload_api::UploadSourceKind::DirectoryArchive,
            target.clone(),
            archive.len() as u64,
            UploadConflict::Merge,
        );
        let error = publish_tar(&record, vec![File::open(&part).unwrap()], None).unwrap_err();
        let (status, body) = error.envelope();
        assert_eq!(status, 400);
        assert!(body.error.contains("points outside the target"), "{}", body.error);
        assert!(!Path::new(&target).exists());
    }
}
