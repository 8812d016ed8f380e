//! `GET /archive`: a directory as a tar stream, entries relative to it (directories, regular files,
//! symlinks whose relative target stays inside; other entries, unreadable ones and pseudo-filesystems
//! below the directory are skipped). Built on a blocking thread with the credentials of the request's
//! user, into a bounded channel of 64 KiB chunks, so memory stays constant whatever the tree size.
//! Headers are ustar with PAX `path`/`linkpath` records for names ustar cannot hold.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use bytes::Bytes;
use tar::{Builder, EntryType, Header};
use tokio::sync::mpsc;

use nullspace_types::upload_api::link_stays_inside;

use crate::error::GuestResult;
use crate::files::as_user::spawn_as;
use crate::files::walk::{Budget, Limits, Walk};
use crate::users::User;

/// An archive streams in constant memory: only the pseudo-filesystem rule of [`Walk`] bounds it.
const ARCHIVE_LIMITS: Limits =
    Limits { entries: u64::MAX, bytes: u64::MAX, results: usize::MAX, result_bytes: usize::MAX };

/// Size of the chunks sent to the socket.
const CHUNK: usize = 64 * 1024;

/// Chunks in flight between the builder and the socket.
const CHANNEL_DEPTH: usize = 8;

/// A `Write` that hands 64 KiB chunks to an async receiver (blocking while it is full).
struct ChannelWriter {
    buffer: Vec<u8>,
    sender: mpsc::Sender<io::Result<Bytes>>,
}

impl ChannelWriter {
    fn ship(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "archive reader went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let n = room.min(data.len());
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() >= CHUNK {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ship()
    }
}

/// Starts archiving the directory `root` as `user`; the chunks (or a final error) arrive on the receiver.
pub async fn stream(root: String, user: Option<&User>) -> GuestResult<mpsc::Receiver<io::Result<Bytes>>> {
    let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
    let errors = sender.clone();
    spawn_as(user, move |switched| {
        let built = match switched {
            Ok(()) => build(Path::new(&root), ChannelWriter { buffer: Vec::with_capacity(CHUNK), sender }),
            Err(error) => Err(io::Error::other(error.message())),
        };
        if let Err(error) = built {
            tracing::debug!(root, %error, "archive stream stopped");
            let _ = errors.blocking_send(Err(error));
        }
    })
    .await?;
    Ok(receiver)
}

fn build(root: &Path, writer: ChannelWriter) -> io::Result<()> {
    let mut builder = Builder::new(writer);
    builder.follow_symlinks(false);
    let mut walk = Walk::new(root, 1, usize::MAX);
    let mut budget = Budget::new(ARCHIVE_LIMITS);
    while let Some(entry) = walk.next_entry(&mut budget) {
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Ok(metadata) = entry.path().symlink_metadata() else {
            continue;
        };
        let file_type = metadata.file_type();
        let mut header = Header::new_ustar();
        header.set_mode(std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o7777);
        header.set_mtime(std::os::unix::fs::MetadataExt::mtime(&metadata).max(0) as u64);
        header.set_uid(0);
        header.set_gid(0);
        let name = rel.to_string_lossy().into_owned();
        if file_type.is_dir() {
            header.set_entry_type(EntryType::Directory);
            header.set_size(0);
            append(&mut builder, header, &format!("{name}/"), None, io::empty())?;
        } else if file_type.is_file() {
            let size = metadata.len();
            header.set_entry_type(EntryType::Regular);
            header.set_size(size);
            let file = match File::open(entry.path()) {
                Ok(file) => file,
                Err(error) => {
                    tracing::debug!(path = %entry.path().display(), %error, "skipping unreadable file");
                    continue;
                }
            };
            // Exactly `size` bytes even if the file changes meanwhile (padded with zeros).
            let data = file.take(size).chain(io::repeat(0)).take(size);
            append(&mut builder, header, &name, None, data)?;
        } else if file_type.is_symlink() {
            let link = std::fs::read_link(entry.path())?;
            if !link_stays_inside(rel, &link) {
                tracing::debug!(path = %entry.path().display(), "skipping a symlink that leaves the directory");
                continue;
            }
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            let link = link.to_string_lossy().into_owned();
            append(&mut builder, header, &name, Some(&link), io::empty())?;
        }
    }
    let mut writer = builder.into_inner()?;
    writer.flush()
}

/// Appends one entry, with PAX records when the name or link does not fit a ustar header.
fn append(
    builder: &mut Builder<ChannelWriter>,
    mut header: Header,
    name: &str,
    link: Option<&str>,
    data: impl Read,
) -> io::Result<()> {
    let mut pax: Vec<(&str, &[u8])> = Vec::new();
    if header.set_path(name).is_err() || !name.is_ascii() {
        pax.push(("path", name.as_bytes()));
        set_short_name(&mut header, name);
    }
    if let Some(link) = link {
        if link.len() > 100 || !link.is_ascii() || header.set_link_name(link).is_err() {
            pax.push(("linkpath", link.as_bytes()));
            let short: String = link.chars().filter(char::is_ascii).take(99).collect();
            header.set_link_name(short)?;
        }
    }
    if !pax.is_empty() {
        builder.append_pax_extensions(pax)?;
    }
    header.set_cksum();
    builder.append(&header, data)
}

fn set_short_name(header: &mut Header, name: &str) {
    let short: String = name.chars().filter(char::is_ascii).take(99).collect();
    if let Some(ustar) = header.as_ustar_mut() {
        ustar.name = [0; 100];
        ustar.name[..short.len()].copy_from_slice(short.as_bytes());
        ustar.prefix = [0; 155];
    }
}
