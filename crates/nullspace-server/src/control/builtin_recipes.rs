//! Built-in templates that the template engine builds from recipes kept in the repository
//! (`images/<name>/template.json` with the files it copies, embedded in the binary; helper binaries such
//! as the code-interpreter gateway are taken from beside the server binary, as the guest daemon is).
//! `base` is different: the node builds it with mmdebstrap, and these build on it.
//!
//! Once `base` is ready the server makes sure each recipe is built for its current content: the build
//! runs as the system tenant on the same engine, layer cache and log as any build (an edited recipe
//! rebuilds from its first changed step; an unchanged one is found by its recipe tag and not built
//! again). A ready built-in is listed with `builtin: true` and id = its name, resolves from every
//! tenant as `<name>` or `nullspace/<name>`, and gives its sandboxes the recipe's default memory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::RwLock;

use base64::Engine as _;
use nullspace_types::template_api::{BuildContext, BuildRequest, ContextFile};
use nullspace_types::template_wire::BuildStatus;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::service::ControlResult;
use super::{Control, ControlError};
use crate::store::Tenant;

/// The tenant that owns built-in templates (no API key is ever issued for it).
pub(super) const SYSTEM_TENANT: &str = "nullspace:builtin";

/// A recipe as embedded in the binary.
struct Embedded {
    /// `template.json`.
    json: &'static str,
    /// Files the recipe copies: path in the build context, content.
    files: &'static [(&'static str, &'static [u8])],
    /// Binaries shipped beside the server: path in the build context, file name beside the server.
    binaries: &'static [(&'static str, &'static str)],
}

const RECIPES: &[Embedded] = &[
    Embedded {
        json: include_str!("../../../../images/code-interpreter/template.json"),
        files: &[
            ("files/java_kernel.py", include_bytes!("../../../../images/code-interpreter/files/java_kernel.py")),
            (
                "files/kernels/java/kernel.json",
                include_bytes!("../../../../images/code-interpreter/files/kernels/java/kernel.json"),
            ),
            (
                "files/kernels/ir/kernel.json",
                include_bytes!("../../../../images/code-interpreter/files/kernels/ir/kernel.json"),
            ),
        ],
        binaries: &[("bin/nullspace-codegw", "nullspace-codegw")],
    },
    Embedded {
        json: include_str!("../../../../images/desktop/template.json"),
        files: &[("files/chromium-flags", include_bytes!("../../../../images/desktop/files/chromium-flags"))],
        binaries: &[("bin/nullspace-desktopd", "nullspace-desktopd")],
    },
];

impl Embedded {
    /// The recipe's name, if its `template.json` names one.
    fn name(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        serde_json::from_str::<Named>(self.json).ok().map(|named| named.name)
    }
}

/// `template.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeSpec {
    name: String,
    description: String,
    /// Memory of the template's sandboxes unless a create says otherwise.
    memory_mb: Option<u32>,
    request: BuildRequest,
}

/// A recipe ready to build: its request with the build context inline, and the tag naming its content.
struct Recipe {
    spec: RecipeSpec,
    tag: String,
}

impl Recipe {
    /// Reads `embedded`, taking its binaries from `bin_dir`.
    fn load(embedded: &Embedded, bin_dir: &Path) -> Result<Recipe, String> {
        let mut spec: RecipeSpec =
            serde_json::from_str(embedded.json).map_err(|e| format!("its template.json is invalid: {e}"))?;
        let mut files: Vec<(String, Vec<u8>, &str)> =
            embedded.files.iter().map(|(path, content)| ((*path).to_owned(), content.to_vec(), "0644")).collect();
        for (path, name) in embedded.binaries {
            let source = bin_dir.join(name);
            let content = std::fs::read(&source)
                .map_err(|e| format!("{} (install it beside the server binary): {e}", source.display()))?;
            files.push(((*path).to_owned(), content, "0755"));
        }
        let mut hasher = Sha256::new();
        hasher.update(embedded.json.as_bytes());
        for (path, content, mode) in &files {
            hasher.update(format!("\0{path}\0{mode}\0{}\0", content.len()).as_bytes());
            hasher.update(content);
        }
        let tag = format!("recipe-{}", &hex::encode(hasher.finalize())[..16]);
        let context = files
            .into_iter()
            .map(|(path, content, mode)| ContextFile {
                path,
                entry_type: Some("file".to_owned()),
                blob_id: None,
                mode: Some(mode.to_owned()),
                content_base64: Some(base64::engine::general_purpose::STANDARD.encode(content)),
            })
            .collect();
        spec.request.build_context = Some(BuildContext { files: context });
        spec.request.name = Some(spec.name.clone());
        spec.request.tags = Some(vec!["default".to_owned(), tag.clone()]);
        Ok(Recipe { spec, tag })
    }
}

/// A built-in template that is ready.
#[derive(Debug, Clone)]
pub struct ReadyBuiltin {
    /// The `tmpl_…` it resolves to.
    pub template_id: String,
    /// One line for listings.
    pub description: String,
    /// Default memory of its sandboxes.
    pub memory_mb: Option<u32>,
}

/// The ready engine-built built-ins, by name.
#[derive(Debug, Default)]
pub struct BuiltinTemplates {
    ready: RwLock<HashMap<String, ReadyBuiltin>>,
}

impl BuiltinTemplates {
    /// Every ready built-in, by name.
    pub fn all(&self) -> Vec<(String, ReadyBuiltin)> {
        let ready = self.ready.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = ready.iter().map(|(name, builtin)| (name.clone(), builtin.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The built-in whose template is `template_id`, if any.
    pub fn by_template(&self, template_id: &str) -> Option<(String, ReadyBuiltin)> {
        self.all().into_iter().find(|(_, builtin)| builtin.template_id == template_id)
    }

    fn set(&self, name: String, builtin: ReadyBuiltin) {
        self.ready.write().unwrap_or_else(|p| p.into_inner()).insert(name, builtin);
    }
}

impl Control {
    /// Makes sure every recipe is built for its current content (see the module doc), one after the
    /// other; a recipe that fails is logged and left unlisted (the next start tries again). Each ready
    /// one gets the system's warm pool of `pools[name]` idle sandboxes (none when absent or 0).
    pub async fn ensure_builtin_templates(&self, bin_dir: &Path, without: &[String], pools: &BTreeMap<String, u32>) {
        for embedded in RECIPES {
            // A recipe left out needs none of its helper binaries.
            let (name, ready) = if let Some(name) =
                without.iter().find(|name| embedded.name().as_deref() == Some(name.as_str()))
            {
                tracing::info!(template = %name, "built-in template not built (--without-template)");
                (name.clone(), None)
            } else {
                let recipe = match Recipe::load(embedded, bin_dir) {
                    Ok(recipe) => recipe,
                    Err(error) => {
                        tracing::error!(%error, "a built-in template recipe cannot be used");
                        continue;
                    }
                };
                let name = recipe.spec.name.clone();
                match self.ensure_builtin(recipe).await {
                    Ok(builtin) => {
                        tracing::info!(template = %name, template_id = %builtin.template_id, "built-in template ready");
                        self.builtins.set(name.clone(), builtin.clone());
                        (name, Some(builtin.template_id))
                    }
                    Err(error) => {
                        tracing::error!(template = %name, error = %crate::error_chain(&error), "built-in template failed to build; it stays unlisted until a restart builds it");
                        (name, None)
                    }
                }
            };
            let size = pools.get(&name).copied().unwrap_or(0);
            if let Err(error) = self.ensure_builtin_pool(&name, ready.as_deref(), size).await {
                tracing::error!(template = %name, error = %crate::error_chain(&error), "the built-in warm pool cannot be kept; creates start cold");
            }
        }
    }

    async fn ensure_builtin(&self, recipe: Recipe) -> ControlResult<ReadyBuiltin> {
        let tenant = self.store.ensure_tenant(SYSTEM_TENANT).await?;
        let namespace = self.store.ensure_namespace(&tenant.id, &tenant.name).await?;
        let name = recipe.spec.name.clone();
        let ready = |template_id: String| ReadyBuiltin {
            template_id,
            description: recipe.spec.description.clone(),
            memory_mb: recipe.spec.memory_mb,
        };
        if let Some(record) = self.store.template_by_tag(&namespace, &name, &recipe.tag).await? {
            return Ok(ready(record.id));
        }
        tracing::info!(template = %name, tag = %recipe.tag, "building built-in template (minutes on first start; later starts reuse it)");
        let build = self.submit_build(&tenant, recipe.spec.request.clone(), None).await?;
        let status = self.wait_for_build(&build.id).await?;
        if status != BuildStatus::Ready {
            let record = self.store.get_build(&build.id).await?;
            let reason = record.and_then(|r| r.error).unwrap_or_else(|| format!("{status:?}"));
            return Err(ControlError::InvalidRequest {
                message: format!("build {} of built-in template {name} ended {status:?}: {reason}", build.id),
            });
        }
        self.store.set_visibility(&namespace, &name, "public").await?;
        self.forget_older_builtins(&tenant, &namespace, &name, &recipe.tag).await;
        Ok(ready(build.template_id))
    }

    /// Waits until build `build_id` ends; its final status.
    async fn wait_for_build(&self, build_id: &str) -> ControlResult<BuildStatus> {
        if let Some(live) = self.live_build(build_id) {
            live.finished.cancelled().await;
        }
        loop {
            let record = self.store.get_build(build_id).await?;
            match record.map(|r| r.status) {
                Some(status @ (BuildStatus::Ready | BuildStatus::Error | BuildStatus::Cancelled)) => return Ok(status),
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                None => return Err(ControlError::BuildNotFound { build_id: build_id.to_owned() }),
            }
        }
    }

    /// Deletes the system tenant's earlier builds of `name` (other recipe tags); sandboxes still on
    /// them keep their layers until they are gone, as for any deleted template.
    async fn forget_older_builtins(&self, tenant: &Tenant, namespace: &str, name: &str, tag: &str) {
        let Ok(records) = self.store.list_templates(&tenant.id).await else { return };
        for record in records.into_iter().filter(|r| r.namespace == namespace && r.name == name) {
            let Ok(tags) = self.store.template_tags(&record.id).await else { continue };
            if tags.iter().any(|t| t.tag == tag) {
                continue;
            }
            if let Err(error) = self.store.delete_template(&tenant.id, &record.id).await {
                tracing::warn!(template_id = %record.id, error = %crate::error_chain(&error), "cannot remove an old built-in template");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_recipe_parses_and_its_tag_follows_its_content() {
        let bin = tempfile::tempdir().unwrap();
        for embedded in RECIPES {
            for (_, name) in embedded.binaries {
                std::fs::write(bin.path().join(name), b"v1").unwrap();
            }
            let first = Recipe::load(embedded, bin.path()).unwrap();
            assert!(!first.spec.request.steps.is_empty());
            let files = &first.spec.request.build_context.as_ref().unwrap().files;
            assert_eq!(files.len(), embedded.files.len() + embedded.binaries.len());
            assert_eq!(first.spec.request.tags.as_deref().unwrap(), ["default".to_owned(), first.tag.clone()]);
            for (_, name) in embedded.binaries {
                std::fs::write(bin.path().join(name), b"v2").unwrap();
            }
            let second = Recipe::load(embedded, bin.path()).unwrap();
            if !embedded.binaries.is_empty() {
                assert_ne!(first.tag, second.tag, "a new helper binary is a new recipe");
            }
        }
    }

    #[test]
    fn the_desktop_recipe_runs_the_desktop_daemon_and_waits_for_its_health() {
        let bin = tempfile::tempdir().unwrap();
        std::fs::write(bin.path().join("nullspace-desktopd"), b"v1").unwrap();
        let embedded = RECIPES.iter().find(|e| e.name().as_deref() == Some("desktop")).unwrap();
        let recipe = Recipe::load(embedded, bin.path()).unwrap();
        let runtime = recipe.spec.request.runtime_config.as_ref().unwrap();
        assert_eq!(
            recipe.spec.request.start_cmd.as_deref(),
            Some("exec /usr/local/bin/nullspace-desktopd --listen 0.0.0.0:49990")
        );
        let readiness = serde_json::to_value(runtime.readiness.as_ref().unwrap()).unwrap();
        assert_eq!(
            (readiness["kind"].as_str(), readiness["port"].as_u64(), readiness["path"].as_str()),
            (Some("http"), Some(49990), Some("/health"))
        );
    }

    #[test]
    fn every_recipe_has_a_distinct_name() {
        let mut names: Vec<_> = RECIPES.iter().map(|e| e.name().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names, ["code-interpreter", "desktop"]);
    }

    #[test]
    fn a_missing_helper_binary_is_named() {
        let bin = tempfile::tempdir().unwrap();
        let error = Recipe::load(&RECIPES[0], bin.path()).err().unwrap();
        assert!(error.contains("nullspace-codegw") && error.contains("beside the server binary"), "{error}");
    }
}
