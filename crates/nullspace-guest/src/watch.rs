//! `file_watch` on the WebSocket: inotify watches on a directory (and, when recursive, every directory
//! below it, including ones created later), reported as create/write/remove/rename/chmod events with
//! names relative to the watched root. The watch lives until the socket closes (never on the client's
//! `timeout_secs`, which the client enforces itself). guestd's upload staging directory is never
//! watched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use nullspace_types::watch_api::{FileWatchRequest, WatchServerMessage};
use tokio::task::JoinSet;
use walkdir::WalkDir;

use crate::error::GuestError;
use crate::files::target::resolve;
use crate::state::Sandbox;
use crate::ws::{send, Outbox};

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

/// Starts a watch; its events flow to `outbox` until the socket closes (the task is in `tasks`).
pub async fn start(sandbox: &Sandbox, request: FileWatchRequest, outbox: Outbox, tasks: &mut JoinSet<()>) {
    let id = request.id.clone();
    match arm(sandbox, &request) {
        Ok((root, inotify, dirs)) => {
            send(&outbox, &WatchServerMessage::FileWatchStarted { id: id.clone() }).await;
            let hidden = sandbox.uploads().root().to_path_buf();
            tasks.spawn(pump(id, root, request.recursive, inotify, dirs, hidden, outbox));
        }
        Err(error) => send(&outbox, &WatchServerMessage::Error { id, message: error.message() }).await,
    }
}

type Armed = (String, Inotify, HashMap<WatchDescriptor, String>);

fn arm(sandbox: &Sandbox, request: &FileWatchRequest) -> Result<Armed, GuestError> {
    let target = resolve(sandbox, &request.path, request.user.as_deref())?;
    let root = target.path;
    let metadata = std::fs::metadata(&root).map_err(|error| GuestError::file_op("watch", &root, error))?;
    if !metadata.is_dir() {
        return Err(GuestError::invalid(format!("{root} is not a directory; watch a directory")));
    }
    let inotify = Inotify::init().map_err(|error| GuestError::file_op("watch", &root, error))?;
    let mut dirs = HashMap::new();
    let mut watches = inotify.watches();
    let wd = watches.add(&root, mask()).map_err(|error| GuestError::file_op("watch", &root, error))?;
    dirs.insert(wd, String::new());
    if request.recursive {
        add_tree(&mut watches, &root, "", sandbox.uploads().root(), &mut dirs);
    }
    Ok((root, inotify, dirs))
}

/// Watches every directory below `root`/`relative` (not following symlinks).
fn add_tree(
    watches: &mut Watches,
    root: &str,
    relative: &str,
    hidden: &Path,
    dirs: &mut HashMap<WatchDescriptor, String>,
) {
    let start = join(root, relative);
    for entry in WalkDir::new(&start)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_entry(|entry| !entry.path().starts_with(hidden))
        .filter_map(Result::ok)
    {
        if dirs.len() >= MAX_WATCHED_DIRS {
            tracing::warn!(root, "recursive watch reached its directory limit");
            return;
        }
        if !entry.file_type().is_dir() {
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

async fn pump(
    id: String,
    root: String,
    recursive: bool,
    inotify: Inotify,
    mut dirs: HashMap<WatchDescriptor, String>,
    hidden: PathBuf,
    outbox: Outbox,
) {
    let mut stream = match inotify.into_event_stream(vec![0u8; 64 * 1024]) {
        Ok(stream) => stream,
        Err(error) => {
            let message = format!("cannot read file events: {error}");
            return send(&outbox, &WatchServerMessage::Error { id, message }).await;
        }
    };
    let mut watches = stream.watches();
    while let Some(Ok(event)) = stream.next().await {
        if event.mask.contains(EventMask::IGNORED) {
            dirs.remove(&event.wd);
            continue;
        }
        let (Some(dir), Some(name)) = (dirs.get(&event.wd), event.name) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        if is_upload_temp(&name) {
            continue;
        }
        let relative = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let is_dir = event.mask.contains(EventMask::ISDIR);
        if Path::new(&join(&root, &relative)).starts_with(&hidden) {
            continue;
        }
        if recursive && is_dir && event.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            let path = join(&root, &relative);
            if let Ok(wd) = watches.add(&path, mask()) {
                dirs.insert(wd, relative.clone());
                add_tree(&mut watches, &root, &relative, &hidden, &mut dirs);
            }
        }
        let Some(kind) = event_kind(event.mask) else {
            continue;
        };
        let message = WatchServerMessage::FileEvent {
            id: id.clone(),
            event: kind.to_owned(),
            path: join(&root, &relative),
            name: relative,
        };
        send(&outbox, &message).await;
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
