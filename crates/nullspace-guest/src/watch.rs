//! `file_watch` on the WebSocket: inotify watches on a directory (and, when recursive, every directory
//! below it, including ones created later), reported as create/write/remove/rename/chmod events with
//! names relative to the watched root. A rename inside the tree is one `rename` event under the new name
//! (its two inotify halves are paired by cookie); a move out of the tree is one under the old name. Watches are added with the credentials of the request's user
//! (inotify needs read access to each directory), walking as [`crate::files::walk`] does. The watch
//! lives until the socket closes (never on the client's `timeout_secs`, which the client enforces
//! itself). guestd's upload staging directory is never watched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use nullspace_types::watch_api::{FileWatchRequest, WatchServerMessage};
use tokio::task::JoinSet;

use crate::error::{GuestError, GuestResult};
use crate::files::as_user::run_as;
use crate::files::target::resolve;
use crate::files::walk::{Budget, Walk, SEARCH_LIMITS};
use crate::state::Sandbox;
use crate::users::User;
use crate::ws::{send, Outbox};

/// How long a rename's first half waits for its second (both are queued together by the kernel).
const MOVE_PAIR_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Most directories one recursive watch follows.
const MAX_WATCHED_DIRS: usize = 8192;

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DONT_FOLLOW
}

/// Watched directories: their path relative to the root, by watch descriptor.
type Dirs = HashMap<WatchDescriptor, String>;

/// What one watch follows.
struct Watched {
    root: String,
    dirs: Dirs,
    user: Option<User>,
    hidden: PathBuf,
}

/// Starts a watch; its events flow to `outbox` until the socket closes (the task is in `tasks`).
pub async fn start(sandbox: &Sandbox, request: FileWatchRequest, outbox: Outbox, tasks: &mut JoinSet<()>) {
    let id = request.id.clone();
    match arm(sandbox, &request).await {
        Ok((inotify, watched)) => {
            send(&outbox, &WatchServerMessage::FileWatchStarted { id: id.clone() }).await;
            tasks.spawn(pump(id, request.recursive, inotify, watched, outbox));
        }
        Err(error) => send(&outbox, &WatchServerMessage::Error { id, message: error.message() }).await,
    }
}

async fn arm(sandbox: &Sandbox, request: &FileWatchRequest) -> GuestResult<(Inotify, Watched)> {
    let target = resolve(sandbox, &request.path, request.user.as_deref())?;
    let (root, recursive) = (target.path.clone(), request.recursive);
    let hidden = sandbox.uploads().root().to_path_buf();
    let staging = hidden.clone();
    let (inotify, dirs) = run_as(target.user.as_ref(), move || {
        let metadata = std::fs::metadata(&root).map_err(|error| GuestError::file_op("watch", &root, error))?;
        if !metadata.is_dir() {
            return Err(GuestError::invalid(format!("{root} is not a directory; watch a directory")));
        }
        let inotify = Inotify::init().map_err(|error| GuestError::file_op("watch", &root, error))?;
        let mut dirs = Dirs::new();
        let mut watches = inotify.watches();
        let wd = watches.add(&root, mask()).map_err(|error| GuestError::file_op("watch", &root, error))?;
        dirs.insert(wd, String::new());
        if recursive {
            add_tree(&mut watches, &root, "", &staging, &mut dirs, MAX_WATCHED_DIRS);
        }
        Ok((inotify, dirs))
    })
    .await?;
    Ok((inotify, Watched { root: target.path, dirs, user: target.user, hidden }))
}

/// Watches every directory below `root`/`relative` (not following symlinks) until `dirs` holds `limit`.
fn add_tree(watches: &mut Watches, root: &str, relative: &str, hidden: &Path, dirs: &mut Dirs, limit: usize) {
    let start = join(root, relative);
    let mut walk = Walk::new(Path::new(&start), 1, usize::MAX);
    let mut budget = Budget::new(SEARCH_LIMITS);
    while let Some(entry) = walk.next_entry(&mut budget) {
        if dirs.len() >= limit {
            tracing::warn!(root, "recursive watch reached its directory limit");
            return;
        }
        if !entry.file_type().is_dir() || entry.path().starts_with(hidden) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        if let Ok(wd) = watches.add(entry.path(), mask()) {
            dirs.insert(wd, rel.to_string_lossy().into_owned());
        }
    }
}

/// Watches the new directory `relative` (and what is below it) with the credentials of the watch's
/// user, while fewer than [`MAX_WATCHED_DIRS`] are watched.
async fn follow_new_dir(watched: &mut Watched, watches: &Watches, relative: String) {
    let room = MAX_WATCHED_DIRS.saturating_sub(watched.dirs.len());
    if room == 0 {
        return;
    }
    let (root, hidden, mut watches) = (watched.root.clone(), watched.hidden.clone(), watches.clone());
    let added = run_as(watched.user.as_ref(), move || {
        let mut added = Dirs::new();
        if let Ok(wd) = watches.add(join(&root, &relative), mask()) {
            added.insert(wd, relative.clone());
            add_tree(&mut watches, &root, &relative, &hidden, &mut added, room);
        }
        Ok(added)
    })
    .await;
    watched.dirs.extend(added.unwrap_or_default());
}

async fn pump(id: String, recursive: bool, inotify: Inotify, mut watched: Watched, outbox: Outbox) {
    let mut stream = match inotify.into_event_stream(vec![0u8; 64 * 1024]) {
        Ok(stream) => stream,
        Err(error) => {
            let message = format!("cannot read file events: {error}");
            return send(&outbox, &WatchServerMessage::Error { id, message }).await;
        }
    };
    let watches = stream.watches();
    // A rename is one `rename` event: a MOVED_FROM is held until the next event shows whether its
    // MOVED_TO (same cookie) follows, and is reported under its old name only when it does not (moved out
    // of the tree) within MOVE_PAIR_WAIT.
    let mut held: Option<(u32, WatchServerMessage)> = None;
    loop {
        let next = match held.take() {
            None => stream.next().await,
            Some(pending) => match tokio::time::timeout(MOVE_PAIR_WAIT, stream.next()).await {
                Ok(next) => {
                    held = Some(pending);
                    next
                }
                Err(_) => {
                    send(&outbox, &pending.1).await;
                    continue;
                }
            },
        };
        let Some(Ok(event)) = next else { break };
        if event.mask.contains(EventMask::IGNORED) {
            watched.dirs.remove(&event.wd);
            continue;
        }
        let (Some(dir), Some(name)) = (watched.dirs.get(&event.wd), event.name) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        if is_upload_temp(&name) {
            continue;
        }
        let relative = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let is_dir = event.mask.contains(EventMask::ISDIR);
        let path = join(&watched.root, &relative);
        if Path::new(&path).starts_with(&watched.hidden) {
            continue;
        }
        if recursive && is_dir && event.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            follow_new_dir(&mut watched, &watches, relative.clone()).await;
        }
        let Some(kind) = event_kind(event.mask) else {
            continue;
        };
        let message = WatchServerMessage::FileEvent { id: id.clone(), event: kind.to_owned(), path, name: relative };
        match held.take() {
            Some((cookie, _)) if event.mask.contains(EventMask::MOVED_TO) && cookie == event.cookie => {}
            Some((_, unmatched)) => send(&outbox, &unmatched).await,
            None => {}
        }
        if event.mask.contains(EventMask::MOVED_FROM) {
            held = Some((event.cookie, message));
        } else {
            send(&outbox, &message).await;
        }
    }
    if let Some((_, unmatched)) = held {
        send(&outbox, &unmatched).await;
    }
}

/// The protocol's event name for an inotify mask.
pub fn event_kind(mask: EventMask) -> Option<&'static str> {
    if mask.contains(EventMask::CREATE) {
        Some("create")
    } else if mask.intersects(EventMask::MOVED_FROM | EventMask::MOVED_TO) {
        Some("rename")
    } else if mask.contains(EventMask::DELETE) {
        Some("remove")
    } else if mask.contains(EventMask::MODIFY) {
        Some("write")
    } else if mask.contains(EventMask::ATTRIB) {
        Some("chmod")
    } else {
        None
    }
}

/// Whether `name` is one of guestd's own temporary upload files (not reported).
fn is_upload_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".upload-")
}

fn join(root: &str, relative: &str) -> String {
    if relative.is_empty() {
        root.to_owned()
    } else {
        Path::new(root).join(relative).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_masks_to_protocol_events() {
        assert_eq!(event_kind(EventMask::CREATE | EventMask::ISDIR), Some("create"));
        assert_eq!(event_kind(EventMask::MOVED_TO), Some("rename"));
        assert_eq!(event_kind(EventMask::DELETE), Some("remove"));
        assert_eq!(event_kind(EventMask::MODIFY), Some("write"));
        assert_eq!(event_kind(EventMask::ATTRIB), Some("chmod"));
        assert_eq!(event_kind(EventMask::ACCESS), None);
    }

    #[test]
    fn hides_upload_temporaries() {
        assert!(is_upload_temp(".a.txt.upload-12-0"));
        assert!(!is_upload_temp("a.txt"));
        assert_eq!(join("/w", ""), "/w");
        assert_eq!(join("/w", "a/b"), "/w/a/b");
    }
}
