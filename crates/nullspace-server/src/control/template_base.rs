//! Where a build stage starts: a template of this server (a built-in, entered into the layer store, or a
//! built template the caller may use) or an image pulled from a registry through the configured
//! mirrors, with the credentials the request gave.

use nullspace_node::images::LayerId;
use nullspace_node::images::{ImageConfig, ImageError, ImageReference, PullEvent, RegistryAuth};

use super::build_plan::is_template_ref;
use super::build_runner::TemplateRuntime;
use super::template_builds::{BuildLog, LogLine};
use super::Control;

/// A resolved stage base.
pub enum BuildBase {
    /// A template of this server.
    Template {
        /// Its layers, bottom first.
        layers: Vec<LayerId>,
        /// Its defaults (environment, user, working directory).
        runtime: TemplateRuntime,
    },
    /// A registry image.
    Image {
        /// Its layers, bottom first.
        layers: Vec<LayerId>,
        /// What its config declares.
        config: ImageConfig,
    },
}

/// Why a base cannot be used.
#[derive(Debug, Clone)]
pub struct BaseError {
    /// Stable code (`template_not_found`, `image_not_found`, `registry_unauthorized`, …).
    pub code: String,
    /// What happened and what to do.
    pub message: String,
    /// Structured facts for the failure's details (e.g. the path and type of a refused special file).
    pub details: Option<serde_json::Value>,
}

impl BaseError {
    fn new(code: &str, message: impl Into<String>) -> Self {
        BaseError { code: code.to_owned(), message: message.into(), details: None }
    }
}

impl From<ImageError> for BaseError {
    fn from(error: ImageError) -> Self {
        // An image that was fetched but cannot be used is a failed build (`build_error`, which the client
        // raises as BuildError) whose details carry the image error's own code as `reason`.
        let code = match error {
            ImageError::UnsupportedSpecialFile { .. } => "build_error",
            _ => error.code(),
        };
        BaseError { code: code.to_owned(), message: error.to_string(), details: error.details() }
    }
}

impl Control {
    /// Resolves stage base `reference` for `tenant_id`: a template when one of that name resolves (the
    /// caller's own, a public one, or a built-in under `nullspace/`), otherwise a registry image.
    ///
    /// Boxed as `Send` here, where its lifetimes are concrete (see `build_runner::run`).
    pub(super) fn resolve_build_base<'a>(
        &'a self,
        tenant: &'a crate::store::Tenant,
        reference: &'a str,
        auth: Option<&'a serde_json::Value>,
        log: &'a BuildLog,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<BuildBase, BaseError>> + Send + 'a>> {
        Box::pin(self.resolve_build_base_inner(tenant.clone(), reference.to_owned(), auth.cloned(), log.clone()))
    }

    async fn resolve_build_base_inner(
        &self,
        tenant: crate::store::Tenant,
        reference: String,
        auth: Option<serde_json::Value>,
        log: BuildLog,
    ) -> Result<BuildBase, BaseError> {
        let (tenant, reference, log) = (&tenant, reference.as_str(), &log);
        match self.resolve_template(tenant, reference).await {
            Ok(super::template_refs::ResolvedTemplate::Builtin { name }) => {
                let layer = self.node().builtin_layer(&name).await.map_err(|e| {
                    BaseError::new(
                        "build_error",
                        format!("cannot use built-in template {name}: {}", crate::error_chain(&e)),
                    )
                })?;
                let builtin = self.node().templates().get(&name);
                let runtime = TemplateRuntime {
                    envs: builtin.as_ref().map(|t| t.envs.clone()).unwrap_or_default(),
                    default_user: builtin.as_ref().map(|t| t.default_user.clone()),
                    default_workdir: builtin.as_ref().map(|t| t.default_cwd.clone()),
                    ..TemplateRuntime::default()
                };
                log.line(LogLine {
                    phase: Some("base".into()),
                    ..LogLine::info(format!("base: built-in template {name}"))
                });
                return Ok(BuildBase::Template { layers: vec![layer], runtime });
            }
            Ok(super::template_refs::ResolvedTemplate::Built { template_id, image }) => {
                let layers = image
                    .layers
                    .iter()
                    .map(|id| LayerId::parse(id))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| BaseError::new("build_error", format!("template {template_id}: {e}")))?;
                log.line(LogLine {
                    phase: Some("base".into()),
                    ..LogLine::info(format!("base: template {template_id}"))
                });
                return Ok(BuildBase::Template { layers, runtime: image.runtime });
            }
            Err(error) if is_template_ref(reference) => {
                let code = match error {
                    super::ControlError::TemplateNotFound { .. } => "template_not_found",
                    _ => "build_error",
                };
                return Err(BaseError::new(code, crate::error_chain(&error)));
            }
            Err(_) => {}
        }
        let image = ImageReference::parse(reference).map_err(BaseError::from)?;
        let auth = match &auth {
            Some(value) => RegistryAuth::from_request(value).map_err(BaseError::from)?,
            None => RegistryAuth::Anonymous,
        };
        log.line(LogLine { phase: Some("base".into()), ..LogLine::info(format!("pulling {image}")) });
        let progress =
            |event: PullEvent| log.line(LogLine { phase: Some("base".into()), ..LogLine::info(event.to_string()) });
        let pulled = self.node().pull_image(&image, &auth, &progress).await.map_err(BaseError::from)?;
        log.line(LogLine {
            phase: Some("base".into()),
            ..LogLine::info(format!("pulled {image} ({}, {} layers)", pulled.manifest_digest, pulled.layers.len()))
        });
        Ok(BuildBase::Image { layers: pulled.layers, config: pulled.config })
    }
}
