//! The host's content-addressed layer store. A layer is a directory the node stacks directly as an
//! overlayfs lowerdir: `<root>/<first 32 hex of its id>/fs`, with `layer.json` (a [`LayerInfo`]) beside
//! it; a directory without a valid `layer.json` is not a layer. Layers are built in a staging directory
//! (`<root>/.staging-<pid>-<random>`) and published with one atomic `rename` of the whole directory, so a
//! layer appears complete or not at all; publishing content that is already there (a concurrent build
//! published the same id) discards the new copy and returns the existing layer.
//!
//! Blocking: every method does file system work; async callers run them on a blocking thread.

mod blob;
mod id;
mod tree;
mod unpack;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{Mode, RenameFlags, CWD};

pub use blob::Compression;
pub use id::{LayerId, LayerInfo, LayerSource};
pub use unpack::SpecialFile;

use crate::error::{ImageError, ImageResult};

const STAGING_PREFIX: &str = ".staging-";
const INFO_FILE: &str = "layer.json";
const FS_DIR: &str = "fs";
const BLOB_FILE: &str = "blob";

/// The module's one error helper: a failed file system operation with what was being done and where.
fn store_err(context: &str, path: &Path) -> impl FnOnce(io::Error) -> ImageError {
    let (context, path) = (context.to_owned(), path.to_owned());
    move |source| ImageError::Store { context, path, source }
}

/// The layer store rooted at `<data-dir>/layers`. Cheap to clone (it is a path).
#[derive(Debug, Clone)]
pub struct LayerStore {
    root: PathBuf,
}

impl LayerStore {
    /// Opens (creating, mode 0700) the store at `root`.
    pub fn new(root: PathBuf) -> ImageResult<LayerStore> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&root)
            .map_err(store_err("creating the store", &root))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .map_err(store_err("setting the store's mode", &root))?;
        Ok(LayerStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_dir(&self, id: &LayerId) -> PathBuf {
        self.root.join(id.short())
    }

    /// The layer's file system directory (the overlay lowerdir), whether or not the layer exists.
    pub fn path(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).join(FS_DIR)
    }

    fn read_info(dir: &Path) -> Option<LayerInfo> {
        let bytes = fs::read(dir.join(INFO_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The published layer `id`, if the store holds it.
    pub fn get(&self, id: &LayerId) -> Option<LayerInfo> {
        Self::read_info(&self.layer_dir(id)).filter(|info| &info.id == id)
    }

    /// Whether the store holds the layer `id`.
    pub fn contains(&self, id: &LayerId) -> bool {
        self.get(id).is_some()
    }

    /// A fresh, empty staging directory for a new layer; see [`Staging`].
    pub fn stage(&self) -> ImageResult<Staging> {
        let name = format!("{STAGING_PREFIX}{}-{:016x}", std::process::id(), rand::random::<u64>());
        let dir = self.root.join(name);
        fs::DirBuilder::new().mode(0o700).create(&dir).map_err(store_err("creating a staging directory", &dir))?;
        let staging = Staging { store: self.clone(), dir, published: false };
        let fs_dir = staging.path();
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&fs_dir)
            .map_err(store_err("creating a staging directory", &fs_dir))?;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .map_err(store_err("setting a staging directory's mode", &fs_dir))?;
        Ok(staging)
    }

    /// Moves the directory `dir` (on the store's file system; e.g. a build sandbox's overlay upper dir,
    /// whose whiteouts are already in overlay form) into the store as layer `id`. If the store already
    /// holds `id`, `dir` is left alone (or, when a concurrent publish won the race, discarded) and the
    /// existing layer is returned; the caller must not rely on `dir` existing afterwards.
    pub fn publish_dir(&self, id: &LayerId, dir: &Path, source: LayerSource) -> ImageResult<LayerInfo> {
        if let Some(existing) = self.get(id) {
            return Ok(existing);
        }
        let staging = self.stage()?;
        let fs_dir = staging.path();
        fs::remove_dir(&fs_dir).map_err(store_err("preparing a staging directory", &fs_dir))?;
        fs::rename(dir, &fs_dir).map_err(|source| {
            let context = if source.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) {
                "moving a directory into the store (it must be on the store's file system)"
            } else {
                "moving a directory into the store"
            };
            store_err(context, dir)(source)
        })?;
        staging.publish(id, source)
    }

    /// Unpacks a layer blob (compressed per `media_type`) into a new layer named by its diff_id and
    /// publishes it, unless the store already holds it. The uncompressed stream must hash to `diff_id`;
    /// on any error nothing is published. The caller verifies the compressed digest (see `registry`).
    pub fn unpack_layer(
        &self,
        diff_id: &LayerId,
        media_type: &str,
        blob: impl Read,
        source: LayerSource,
    ) -> ImageResult<LayerInfo> {
        let compression = Compression::of_media_type(media_type).ok_or_else(|| ImageError::UnsupportedMediaType {
            what: format!("layer {diff_id}"),
            media_type: media_type.to_owned(),
        })?;
        if let Some(existing) = self.get(diff_id) {
            return Ok(existing);
        }
        let staging = self.stage()?;
        staging.unpack(blob, compression, diff_id)?;
        staging.publish(diff_id, source)
    }

    fn entries(&self) -> Vec<(String, PathBuf)> {
        let Ok(read) = fs::read_dir(&self.root) else { return Vec::new() };
        read.filter_map(Result::ok)
            .filter_map(|entry| Some((entry.file_name().to_str()?.to_owned(), entry.path())))
            .collect()
    }

    /// Removes what a crashed process left behind: staging directories (other than this process's own)
    /// and layer directories without a valid `layer.json`. Returns how many were removed.
    pub fn remove_leftovers(&self) -> usize {
        let own = format!("{STAGING_PREFIX}{}-", std::process::id());
        let mut removed = 0;
        for (name, path) in self.entries() {
            let leftover = if name.starts_with(STAGING_PREFIX) {
                !name.starts_with(&own)
            } else {
                is_layer_dir_name(&name) && Self::read_info(&path).is_none_or(|info| info.id.short() != name)
            };
            if leftover {
                match tree::remove_tree(&path) {
                    Ok(()) => removed += 1,
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "cannot remove a layer store leftover")
                    }
                }
            }
        }
        removed
    }

    /// Every published layer, oldest first.
    pub fn list(&self) -> Vec<LayerInfo> {
        let mut layers: Vec<LayerInfo> = self
            .entries()
            .into_iter()
            .filter(|(name, _)| is_layer_dir_name(name))
            .filter_map(|(name, path)| Self::read_info(&path).filter(|info| info.id.short() == name))
            .collect();
        layers.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        layers
    }

    /// Records that layer `id` was used (a build's cache hit): [`LayerStore::gc`]'s `grace` counts from
    /// the last use. Best effort: a layer whose use cannot be recorded ages from its last recorded use.
    pub fn mark_used(&self, id: &LayerId) {
        let info = self.layer_dir(id).join(INFO_FILE);
        if let Err(error) = fs::File::options().append(true).open(&info).and_then(|f| f.set_modified(SystemTime::now()))
        {
            tracing::debug!(layer = %id, %error, "cannot record a layer's use");
        }
    }

    /// When layer `id` was last used (published, or marked by [`LayerStore::mark_used`]).
    fn last_used(&self, id: &LayerId) -> Option<SystemTime> {
        fs::metadata(self.layer_dir(id).join(INFO_FILE)).and_then(|meta| meta.modified()).ok()
    }

    /// Removes every layer not in `keep`, not used within `grace` (the build cache: a failed or changed
    /// build's finished steps stay hits for a while, as Docker keeps its build cache), for which
    /// `in_use(fs path)` is false (the node passes its "is this directory a lowerdir of a mounted
    /// overlay" check) and whose fs directory is not a mount point; returns the removed ids. A layer
    /// disappears from the store atomically (its directory is renamed away first); removal never
    /// descends into a mount point. Failures are logged, not fatal.
    pub fn gc(&self, keep: &HashSet<LayerId>, grace: Duration, in_use: impl Fn(&Path) -> bool) -> Vec<LayerId> {
        let mut removed = Vec::new();
        let now = SystemTime::now();
        for info in self.list() {
            let fs_path = self.path(&info.id);
            let recent =
                self.last_used(&info.id).is_some_and(|used| now.duration_since(used).unwrap_or_default() < grace);
            if keep.contains(&info.id) || recent || in_use(&fs_path) || is_mount_point(&fs_path) {
                continue;
            }
            let trash =
                self.root.join(format!("{STAGING_PREFIX}{}-gc-{:016x}", std::process::id(), rand::random::<u64>()));
            if let Err(error) = fs::rename(self.layer_dir(&info.id), &trash) {
                tracing::warn!(layer = %info.id, %error, "cannot remove a layer");
                continue;
            }
            removed.push(info.id.clone());
            if let Err(error) = tree::remove_tree(&trash) {
                tracing::warn!(layer = %info.id, path = %trash.display(), %error, "a removed layer's files remain");
            }
        }
        removed
    }
}

fn is_layer_dir_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_mount_point(path: &Path) -> bool {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { return false };
    let Ok(parent_fd) = rustix::fs::openat(CWD, parent, tree::DIR_FLAGS, Mode::empty()) else { return false };
    let Ok(parent_st) = tree::stat_at(parent_fd.as_fd(), c".") else { return false };
    let Ok(name) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name)) else { return false };
    let Ok(st) = tree::stat_at(parent_fd.as_fd(), &name) else { return false };
    let root = st.stx_attributes_mask.contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
        && st.stx_attributes.contains(rustix::fs::StatxAttributes::MOUNT_ROOT);
    root || (st.stx_dev_major, st.stx_dev_minor) != (parent_st.stx_dev_major, parent_st.stx_dev_minor)
}

/// A layer being built: an empty directory ([`Staging::path`]) the caller fills, then publishes under its
/// id. Dropping an unpublished `Staging` removes it.
#[derive(Debug)]
pub struct Staging {
    store: LayerStore,
    dir: PathBuf,
    published: bool,
}

impl Staging {
    /// The directory to fill: it becomes the layer's `fs` directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FS_DIR)
    }

    /// Where a download may keep the layer's blob until it is unpacked (beside `path()`, removed at
    /// publish or with the staging directory).
    pub(crate) fn blob_path(&self) -> PathBuf {
        self.dir.join(BLOB_FILE)
    }

    /// Unpacks a layer blob into [`Staging::path`], checking that the uncompressed stream hashes to
    /// `diff_id`; on error the staging directory must be dropped, not published.
    pub fn unpack(&self, blob: impl Read, compression: Compression, diff_id: &LayerId) -> ImageResult<()> {
        blob::unpack_verified(blob, compression, diff_id, &self.path())
    }

    /// Publishes the staged directory as layer `id` (measuring it and writing `layer.json`, then one
    /// atomic rename). If the store already holds `id`, the staged copy is discarded and the existing
    /// layer returned.
    pub fn publish(mut self, id: &LayerId, source: LayerSource) -> ImageResult<LayerInfo> {
        let blob = self.blob_path();
        match fs::remove_file(&blob) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(store_err("removing a downloaded blob", &blob)(error)),
        }
        let fs_dir = self.path();
        let size_bytes = tree::tree_size(&fs_dir).map_err(store_err("measuring a staged layer", &fs_dir))?;
        let info = LayerInfo { id: id.clone(), size_bytes, created_at: chrono::Utc::now(), source };
        let info_path = self.dir.join(INFO_FILE);
        let json = serde_json::to_vec_pretty(&info).expect("a LayerInfo serializes");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&info_path)
            .map_err(store_err("writing layer.json", &info_path))?;
        file.write_all(&json).map_err(store_err("writing layer.json", &info_path))?;
        // Everything staged reaches the disk before the layer becomes visible.
        rustix::fs::syncfs(file.as_fd()).map_err(|e| store_err("syncing a staged layer", &self.dir)(e.into()))?;
        drop(file);
        let target = self.store.layer_dir(id);
        for _ in 0..2 {
            match rustix::fs::renameat_with(CWD, &self.dir, CWD, &target, RenameFlags::NOREPLACE) {
                Ok(()) => {
                    self.published = true;
                    if let Ok(root) = fs::File::open(&self.store.root) {
                        let _ = root.sync_all();
                    }
                    return Ok(info);
                }
                Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => {
                    if let Some(existing) = self.store.get(id) {
                        return Ok(existing);
                    }
                    if let Some(other) = LayerStore::read_info(&target) {
                        return Err(store_err("publishing a layer", &target)(io::Error::other(format!(
                            "the directory holds layer {}, whose id shares the first 32 hex digits",
                            other.id
                        ))));
                    }
                    // Not a layer (no valid layer.json): a leftover; replace it.
                    tree::remove_tree(&target).map_err(store_err("removing a leftover layer directory", &target))?;
                }
                Err(e) => return Err(store_err("publishing a layer", &target)(e.into())),
            }
        }
        Err(store_err("publishing a layer", &target)(io::Error::other("the directory keeps reappearing")))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            if let Err(error) = tree::remove_tree(&self.dir) {
                tracing::warn!(path = %self.dir.display(), %error, "cannot remove a staging directory");
            }
        }
    }
}
