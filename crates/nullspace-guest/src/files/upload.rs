//! Streaming writes of raw bytes (`PUT /file`, batch-write parts) in constant memory: into a temporary
//! file beside the target, then renamed over it, so readers never see a half-written file. Owner and mode
//! of a replaced file are kept (as far as the acting user may: a user's replacement is its own). The
//! file is opened, and later renamed, with the credentials of the request's user; the bytes stream into
//! the open file in between, and are synced before the rename (see [`crate::files::bulk`]).

use std::fmt::Display;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::error::{GuestError, GuestResult};
use crate::files::as_user::run_as;
use crate::files::bulk::ChunkWriter;
use crate::files::ops;
use crate::users::User;

static UPLOAD_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file opened for a streaming write: the file itself, or a temporary beside `path` to rename over it.
struct Opened {
    file: std::fs::File,
    temp: Option<String>,
    existing: Option<std::fs::Metadata>,
}

/// Creates the parents of `path` and opens what the bytes go to.
fn open_for_write(path: &str) -> GuestResult<Opened> {
    ops::ensure_parents(path)?;
    let existing = std::fs::symlink_metadata(path).ok();
    if existing.as_ref().is_some_and(|metadata| metadata.file_type().is_symlink() || !metadata.is_file()) {
        // A symlink (or a special file) is written through in place, like `cat > path` would.
        let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path);
        let file = file.map_err(|error| GuestError::file_op("write", path, error))?;
        return Ok(Opened { file, temp: None, existing });
    }
    let temp = temp_path(path);
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o666).open(&temp);
    let file = file.map_err(|error| GuestError::file_op("write", path, error))?;
    Ok(Opened { file, temp: Some(temp), existing })
}

/// Writes the byte `stream` to `path` (creating parents) as `user` (guestd itself when `None`),
/// replacing it atomically. The new file is synced before it replaces the old one, and the rename
/// after it, so a completed upload survives a crash.
pub async fn write_stream<S, E>(path: &str, user: Option<&User>, mut stream: S) -> GuestResult<()>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let Opened { file, temp, existing } = {
        let path = path.to_owned();
        run_as(user, move || open_for_write(&path)).await?
    };
    let leftover = temp.clone();
    let result = async move {
        let writer = ChunkWriter::start(file, true);
        let fed = copy_into(&writer, &mut stream, path).await;
        if let Err(error) = fed {
            drop(writer);
            return Err(error);
        }
        writer.finish().await.map_err(|error| GuestError::file_op("write", path, error))?;
        let Some(temp) = temp else { return Ok(()) };
        let path = path.to_owned();
        run_as(user, move || {
            adopt_ownership(&temp, &path, existing.as_ref())?;
            std::fs::rename(&temp, &path).map_err(|error| GuestError::file_op("write", &path, error))?;
            sync_parent(&path);
            Ok(())
        })
        .await
    }
    .await;
    if let (Err(_), Some(temp)) = (&result, leftover) {
        let _ = run_as(user, move || Ok(std::fs::remove_file(temp))).await;
    }
    result
}

/// Feeds `stream` to `writer`; the writer's own error (a full disk) wins over the body's.
async fn copy_into<S, E>(writer: &ChunkWriter, stream: &mut S, path: &str) -> GuestResult<()>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|error| GuestError::invalid(format!("upload of {path} broke off: {error}; retry it")))?;
        if writer.send(chunk).await.is_err() {
            // The writer stopped on an error: `finish` reports it.
            return Ok(());
        }
    }
    Ok(())
}

/// Syncs the directory holding `path` so a rename survives a crash (best effort).
pub fn sync_parent(path: &str) {
    if let Some(parent) = Path::new(path).parent() {
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
}

/// Gives the new file `temp` (about to replace `path`) the mode of the `existing` file and, when guestd
/// acts as root, its owner (a user cannot give files away: its replacement stays its own).
pub fn adopt_ownership(temp: &str, path: &str, existing: Option<&std::fs::Metadata>) -> GuestResult<()> {
    let fail = |error| GuestError::file_op("set ownership of", path, error);
    let Some(metadata) = existing else { return Ok(()) };
    std::fs::set_permissions(temp, std::fs::Permissions::from_mode(metadata.mode() & 0o7777)).map_err(fail)?;
    // SAFETY: a getter without arguments; the effective uid of this thread (a user's file worker or root).
    let acting_as_root = unsafe { libc::syscall(libc::SYS_geteuid) } == 0;
    if acting_as_root {
        std::os::unix::fs::chown(temp, Some(metadata.uid()), Some(metadata.gid())).map_err(fail)?;
        // chown clears setuid/setgid bits: set the mode again.
        std::fs::set_permissions(temp, std::fs::Permissions::from_mode(metadata.mode() & 0o7777)).map_err(fail)?;
    }
    Ok(())
}

/// A unique hidden temporary name beside `path` (`.name.upload-…`, which file watches skip).
pub fn temp_path(path: &str) -> String {
    let target = Path::new(path);
    let dir = target.parent().map(|dir| dir.display().to_string()).unwrap_or_else(|| "/".into());
    let name = target.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let unique = UPLOAD_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}/.{name}.upload-{}-{unique}", dir.trim_end_matches('/'), std::process::id())
}

/// Runs blocking filesystem work off the async threads.
pub async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> GuestResult<T> + Send + 'static) -> GuestResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| GuestError::Internal { context: format!("file task failed: {error}") })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
        futures::stream::iter(parts.iter().map(|part| Ok(Bytes::from_static(part))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn streams_into_place_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.bin").display().to_string();
        write_stream(&path, None, chunks(&[b"ab", b"cd"])).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_stream(&path, None, chunks(&[b"new"])).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[tokio::test]
    async fn broken_streams_leave_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f").display().to_string();
        std::fs::write(&path, "old").unwrap();
        let broken = futures::stream::iter(vec![Ok(Bytes::from_static(b"x")), Err("reset")]);
        assert!(write_stream(&path, None, broken).await.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
