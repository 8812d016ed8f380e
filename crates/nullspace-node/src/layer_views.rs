//! Template layers seen from the host: a read-only overlay of a stack of layers (the filesystem of an
//! earlier build stage that a `COPY --from` reads), and a built-in template's root filesystem entered
//! into the layer store so that built templates can stack on it and keep it after a rebuild.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nullspace_image::layers::{LayerId, LayerSource};

use crate::node::Node;
use crate::{NodeError, NodeResult};

/// How long a layer no template uses stays in the store after its last use: the build cache (a failed
/// build's finished steps, an edited recipe's unchanged prefix, a deleted template's base image).
const BUILD_CACHE_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Node {
    /// Mounts the layers (top first) read-only at `target` (created). A single layer is stacked on an
    /// empty one, since overlayfs needs two lower dirs without an upper one.
    pub fn mount_layers_read_only(&self, layers: &[PathBuf], target: &Path) -> NodeResult<()> {
        let fs_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| NodeError::Filesystem { sandbox_id: String::new(), path, source }
        };
        std::fs::create_dir_all(target).map_err(fs_error(target))?;
        let empty = target.with_extension("empty");
        std::fs::create_dir_all(&empty).map_err(fs_error(&empty))?;
        let mut lower: Vec<String> = layers.iter().map(|layer| layer.display().to_string()).collect();
        lower.push(empty.display().to_string());
        let options = format!("lowerdir={}", lower.join(":"));
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mount(Some("overlay"), target, Some("overlay"), flags, Some(options.as_str()))
            .map_err(|source| NodeError::Overlay { operation: "mount", sandbox_id: String::new(), source })
    }

    /// Unmounts a view made by [`Node::mount_layers_read_only`].
    pub fn unmount_layers(&self, target: &Path) -> NodeResult<()> {
        crate::overlay::unmount(target).map_err(|source| NodeError::Overlay {
            operation: "unmount",
            sandbox_id: String::new(),
            source,
        })
    }

    /// The layer holding built-in template `name`'s current root filesystem, entered into the layer
    /// store on first use as a tree of hard links (no data is copied; both are read-only). Its id names
    /// the template's recipe, so a rebuilt built-in is a new layer and templates built on the old one
    /// keep theirs.
    pub async fn builtin_layer(&self, name: &str) -> NodeResult<LayerId> {
        let template =
            self.templates().get(name).ok_or_else(|| NodeError::UnknownTemplate { template: name.to_owned() })?;
        let id = LayerId::for_cache_key(&format!("nullspace builtin template {name} {}", template.recipe_hash));
        if self.layers().contains(&id) {
            return Ok(id);
        }
        let staging = self.layers().stage().map_err(NodeError::Layers)?;
        let status = tokio::process::Command::new("cp")
            .arg("-al")
            .arg(template.rootfs.join("."))
            .arg(staging.path())
            .kill_on_drop(true)
            .status()
            .await;
        let failed = |detail: String| NodeError::Filesystem {
            sandbox_id: String::new(),
            path: template.rootfs.clone(),
            source: std::io::Error::other(format!("cannot link template {name} into the layer store: {detail}")),
        };
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(failed(format!("cp -al exited with {status}"))),
            Err(error) => return Err(failed(error.to_string())),
        }
        let source = LayerSource::Step { cache_key: format!("builtin:{name}:{}", template.recipe_hash) };
        staging.publish(&id, source).map_err(NodeError::Layers)?;
        Ok(id)
    }
}

impl Node {
    /// Pulls `reference` into the layer store through this node's registry mirrors (see
    /// `nullspace_image::registry::pull`).
    pub async fn pull_image(
        &self,
        reference: &crate::images::ImageReference,
        auth: &crate::images::RegistryAuth,
        progress: &(dyn Fn(crate::images::PullEvent) + Send + Sync),
    ) -> Result<crate::images::PulledImage, crate::images::ImageError> {
        nullspace_image::registry::pull(self.layers(), &self.config().registry, reference, auth, progress).await
    }

    /// Removes the layers of built templates that are not in `keep`, not used within the build cache's
    /// grace (a day), and that no mounted overlay (a sandbox, a build step, a stage view) uses; returns
    /// what went.
    pub fn collect_template_layers(&self, keep: &std::collections::HashSet<LayerId>) -> Vec<LayerId> {
        self.layers().gc(keep, BUILD_CACHE_GRACE, crate::template::fsutil::in_use_by_overlay)
    }
}

/// Whether `relative` names a directory inside the mounted view `view`, resolved as the build sandbox
/// would see it: symlinks in the (sandbox-written) layers resolve inside the view (`RESOLVE_IN_ROOT`),
/// never against the host's root.
pub fn is_dir_in_view(view: &Path, relative: &str) -> bool {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let Ok(root) = std::fs::File::open(view) else { return false };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let relative = relative.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    match openat2(root.as_raw_fd(), relative, how) {
        // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
        Ok(fd) => {
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_dir_in_view;

    #[test]
    fn symlinks_in_a_view_resolve_inside_it_never_on_the_host() {
        let view = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(view.path().join("src/dir")).unwrap();
        std::fs::write(view.path().join("src/file"), "x").unwrap();
        // Planted by a sandbox: absolute and climbing links to host directories.
        std::os::unix::fs::symlink("/etc", view.path().join("src/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc", view.path().join("src/climb")).unwrap();
        std::os::unix::fs::symlink("/src/dir", view.path().join("src/inside")).unwrap();
        assert!(is_dir_in_view(view.path(), "/src/dir"));
        assert!(!is_dir_in_view(view.path(), "/src/file"));
        assert!(!is_dir_in_view(view.path(), "/src/abs"), "/etc of the host is not in the view");
        assert!(!is_dir_in_view(view.path(), "/src/climb"));
        assert!(is_dir_in_view(view.path(), "/src/inside"), "a link within the view resolves in it");
    }
}
