//! The template store: ready template layers under `<data-dir>/templates`, each a directory holding a
//! read-only `rootfs/` and, written last, a `template.json` marker. Builds happen in `.build-*`
//! directories under an exclusive file lock, so a failed, interrupted or concurrent build never
//! produces a layer that `get` or `list` would return.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::recipe::Recipe;
use super::{build, fsutil, TemplateError};

const MARKER: &str = "template.json";
const LOCK: &str = ".lock";
const BUILD_PREFIX: &str = ".build-";

/// A ready template: a read-only root filesystem plus the defaults sandboxes created from it get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateLayer {
    /// Template id, e.g. `base`.
    pub name: String,
    /// One line shown in template listings.
    pub description: String,
    /// Read-only lower directory for overlayfs. Never modified once the layer is ready.
    pub rootfs: PathBuf,
    /// sha256 of the recipe the layer was built from.
    pub recipe_hash: String,
    /// RFC 3339 time the build finished.
    pub built_at: String,
    /// User processes run as unless the request says otherwise (`root`).
    pub default_user: String,
    /// Working directory of processes unless the request says otherwise (`/workspace`).
    pub default_cwd: String,
    /// Environment every process in the sandbox starts with (HOME is set by the guest per user).
    pub envs: BTreeMap<String, String>,
    /// Sum of the file sizes in `rootfs` (hard links counted once).
    pub size_bytes: u64,
}

/// Template layers on this host, rooted at `<data-dir>/templates`.
#[derive(Debug, Clone)]
pub struct TemplateStore {
    root: PathBuf,
}

impl TemplateStore {
    /// A store rooted at `root` (normally `<data-dir>/templates`); nothing is touched until used.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory holding the layers.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Builds `base` if it is missing or its recipe changed, and returns the ready layer. Concurrent
    /// callers (threads or processes) wait for one build. Leftovers of interrupted builds are removed.
    pub async fn ensure_base(&self, progress: &(dyn Fn(&str) + Send + Sync)) -> Result<TemplateLayer, TemplateError> {
        self.ensure(Recipe::base()?, false, progress).await
    }

    /// Builds `base` again even if a layer of the current recipe exists (for `nullspace template rebuild`).
    pub async fn rebuild_base(&self, progress: &(dyn Fn(&str) + Send + Sync)) -> Result<TemplateLayer, TemplateError> {
        self.ensure(Recipe::base()?, true, progress).await
    }

    /// The ready template named `name`, or None. If two layers of one name are ready (the old one is still
    /// in use after a rebuild), the newest wins.
    pub fn get(&self, name: &str) -> Option<TemplateLayer> {
        self.newest(name).map(|(_, layer)| layer)
    }

    /// Every ready template, one per name, sorted by name.
    pub fn list(&self) -> Vec<TemplateLayer> {
        let mut newest: BTreeMap<String, TemplateLayer> = BTreeMap::new();
        for (_, layer) in self.ready_layers() {
            newest.insert(layer.name.clone(), layer);
        }
        newest.into_values().collect()
    }

    async fn ensure(
        &self,
        recipe: Recipe,
        force: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<TemplateLayer, TemplateError> {
        let name = recipe.spec.name.clone();
        let hash = recipe.hash();
        std::fs::create_dir_all(&self.root).map_err(|e| TemplateError::io("create", &self.root, e))?;
        let _lock = self.lock().await?;
        self.blocking(Self::remove_leftovers).await?;

        if !force {
            if let Some((dir, layer)) = self.newest(&name).filter(|(_, l)| l.recipe_hash == hash) {
                self.blocking(move |store| store.retire_others(&layer.name, &dir)).await?;
                return self.get(&name).ok_or_else(|| vanished(&self.root, &name));
            }
        }

        let suffix = unique_suffix();
        let build_dir = self.root.join(format!("{BUILD_PREFIX}{name}-{suffix}"));
        std::fs::create_dir(&build_dir).map_err(|e| TemplateError::io("create", &build_dir, e))?;
        let log = self.root.join(format!("{name}.build.log"));
        let started = std::time::Instant::now();
        if let Err(e) = build::build_rootfs(&recipe, &build_dir, &log, progress).await {
            let dir = build_dir.clone();
            let _ = self
                .blocking(move |_| {
                    remove_logged(&dir);
                    Ok(())
                })
                .await;
            return Err(e);
        }

        let final_dir = self.root.join(format!("{name}-{}-{suffix}", &hash[..12]));
        let spec = recipe.spec.clone();
        let (dir, layer) = self
            .blocking(move |store| {
                let layer = TemplateLayer {
                    name: spec.name,
                    description: spec.description,
                    rootfs: final_dir.join("rootfs"),
                    recipe_hash: hash,
                    built_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    default_user: spec.default_user,
                    default_cwd: spec.default_cwd,
                    envs: spec.envs,
                    size_bytes: 0,
                };
                let layer = store.publish(&build_dir, &final_dir, layer)?;
                Ok((final_dir, layer))
            })
            .await?;
        progress(&format!(
            "template `{name}` ready in {:.0?}: {} MB at {}",
            started.elapsed(),
            layer.size_bytes / 1_000_000,
            layer.rootfs.display()
        ));
        let keep = dir.clone();
        self.blocking(move |store| store.retire_others(&name, &keep)).await?;
        Ok(layer)
    }

    /// Turns a finished build directory into a ready layer: drops the recipe files, renames the directory
    /// into place, then writes the marker (synced) last.
    fn publish(
        &self,
        build_dir: &Path,
        final_dir: &Path,
        mut layer: TemplateLayer,
    ) -> Result<TemplateLayer, TemplateError> {
        let recipe_dir = build_dir.join("recipe");
        std::fs::remove_dir_all(&recipe_dir).map_err(|e| TemplateError::io("remove", &recipe_dir, e))?;
        let rootfs = build_dir.join("rootfs");
        layer.size_bytes = fsutil::tree_size(&rootfs).map_err(|e| TemplateError::io("measure", &rootfs, e))?;
        sync_dir(&rootfs)?;
        std::fs::rename(build_dir, final_dir).map_err(|e| TemplateError::io("move build into", final_dir, e))?;

        let json = serde_json::to_vec_pretty(&layer)
            .map_err(|e| TemplateError::io("encode marker of", final_dir, e.into()))?;
        let tmp = final_dir.join(format!("{MARKER}.tmp"));
        let marker = final_dir.join(MARKER);
        let mut file = File::create(&tmp).map_err(|e| TemplateError::io("create", &tmp, e))?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(|e| TemplateError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &marker).map_err(|e| TemplateError::io("write", &marker, e))?;
        sync_dir(final_dir)?;
        sync_dir(&self.root)?;
        Ok(layer)
    }

    /// Ready layers as (directory, layer), oldest first. A directory without a readable marker is not ready.
    fn ready_layers(&self) -> Vec<(PathBuf, TemplateLayer)> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut layers: Vec<(PathBuf, TemplateLayer)> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| {
                let dir = e.path();
                let text = std::fs::read(dir.join(MARKER)).ok()?;
                let mut layer: TemplateLayer = serde_json::from_slice(&text).ok()?;
                layer.rootfs = dir.join("rootfs");
                layer.rootfs.is_dir().then_some((dir, layer))
            })
            .collect();
        layers.sort_by(|(a_dir, a), (b_dir, b)| (&a.built_at, a_dir).cmp(&(&b.built_at, b_dir)));
        layers
    }

    fn newest(&self, name: &str) -> Option<(PathBuf, TemplateLayer)> {
        self.ready_layers().into_iter().rev().find(|(_, l)| l.name == name)
    }

    /// Removes what interrupted builds left: `.build-*` directories, and layer directories whose marker
    /// was never written. Only called under the lock, so no build is running.
    fn remove_leftovers(&self) -> Result<(), TemplateError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| TemplateError::io("read", &self.root, e))?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let unfinished = !file_name.starts_with('.') && !path.join(MARKER).exists();
            if is_dir && (file_name.starts_with(BUILD_PREFIX) || unfinished) && !fsutil::in_use_by_overlay(&path) {
                tracing::info!(dir = %path.display(), "removing unfinished template build");
                remove_logged(&path);
            }
        }
        Ok(())
    }

    /// Removes every ready layer named `name` except `keep`, unless a mounted overlay still uses it (then
    /// it stays, hidden behind the newer layer, and goes at a later call).
    fn retire_others(&self, name: &str, keep: &Path) -> Result<(), TemplateError> {
        for (dir, _) in self.ready_layers().into_iter().filter(|(d, l)| l.name == name && d != keep) {
            if fsutil::in_use_by_overlay(&dir) {
                tracing::info!(dir = %dir.display(), "keeping old template layer: still used by a sandbox");
                continue;
            }
            // Hide it from get/list atomically before the slow removal; a crash leaves a `.build-*` leftover.
            let hidden = self.root.join(format!("{BUILD_PREFIX}retired-{}", unique_suffix()));
            std::fs::rename(&dir, &hidden).map_err(|e| TemplateError::io("retire", &dir, e))?;
            remove_logged(&hidden);
        }
        Ok(())
    }

    async fn lock(&self) -> Result<nix::fcntl::Flock<File>, TemplateError> {
        let path = self.root.join(LOCK);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| TemplateError::io("open", &path, e))?;
        tokio::task::spawn_blocking(move || {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, errno)| TemplateError::io("lock", &path, errno.into()))
        })
        .await
        .map_err(|e| TemplateError::io("lock", self.root.join(LOCK), std::io::Error::other(e)))?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&TemplateStore) -> Result<T, TemplateError> + Send + 'static,
    ) -> Result<T, TemplateError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| TemplateError::io("run blocking work in", self.root.clone(), std::io::Error::other(e)))?
    }
}

fn remove_logged(dir: &Path) {
    if let Err(e) = fsutil::remove_tree(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove template directory; will retry later");
    }
}

fn sync_dir(dir: &Path) -> Result<(), TemplateError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| TemplateError::io("sync", dir, e))
}

fn vanished(root: &Path, name: &str) -> TemplateError {
    TemplateError::io("find", root.join(name), std::io::ErrorKind::NotFound.into())
}

/// A name part unique across processes and calls.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:x}{n:x}", nanos & 0xffff_ffff_ffff, std::process::id())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
