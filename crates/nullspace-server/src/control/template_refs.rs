//! Template references: parsing (`name`, `name:tag`, `name:tb_…`, `<namespace>/name[:tag]`,
//! `nullspace/<name>[:tag]`, `tmpl_…`, aliases), resolution with visibility (another tenant's private
//! template does not exist for the caller), and the `TemplateInfo` of what a ref names.

use std::collections::HashMap;

use nullspace_types::template_wire::{RuntimeDefaults, TemplateInfo};

use super::build_runner::TemplateImage;
use super::service::ControlResult;
use super::{Control, ControlError};
use crate::store::templates::{TemplateRecord, SYSTEM_NAMESPACE};
use crate::store::{Store, Tenant};

/// Which template of a name a ref selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The `default` tag.
    Default,
    /// A tag.
    Tag(String),
    /// The template a build produced (`tb_…`).
    Build(String),
}

/// A parsed template ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    /// `tmpl_…`.
    Id(String),
    /// `[namespace/]name[:selector]`.
    Named {
        /// Namespace, when given.
        namespace: Option<String>,
        /// Name.
        name: String,
        /// Tag or build.
        selector: Selector,
    },
}

/// What a ref resolves to (sandbox create and `FROM` of templates use it).
#[allow(dead_code, clippy::large_enum_variant)] // used by the build engine and sandbox create; one per call
#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedTemplate {
    /// A template of the node (`base`).
    Builtin {
        /// Its name.
        name: String,
    },
    /// A built template.
    Built {
        /// `tmpl_…`.
        template_id: String,
        /// Its layers and runtime defaults.
        image: TemplateImage,
    },
}

/// A resolved ref with the stored record of built templates.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Builtin(String),
    Built(Box<TemplateRecord>),
}

fn slug_ok(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Parses `text`; `None` when it cannot name a template.
pub fn parse_ref(text: &str) -> Option<TemplateRef> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("tmpl_") {
        return (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| TemplateRef::Id(text.to_owned()));
    }
    let (namespace, rest) = match text.split_once('/') {
        Some((namespace, rest)) => {
            // A namespace is a slug or a UUID.
            let uuid = namespace.len() == 36 && namespace.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
            if !(slug_ok(namespace) || uuid) {
                return None;
            }
            (Some(namespace.to_owned()), rest)
        }
        None => (None, text),
    };
    let (name, selector) = match rest.split_once(':') {
        None => (rest, Selector::Default),
        Some((name, build)) if build.starts_with("tb_") => {
            let id = &build[3..];
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            (name, Selector::Build(build.to_owned()))
        }
        Some((name, tag)) if super::template_validate::valid_tag(tag) => (name, Selector::Tag(tag.to_owned())),
        Some(_) => return None,
    };
    super::template_validate::valid_name(name).then(|| TemplateRef::Named {
        namespace,
        name: name.to_owned(),
        selector,
    })
}

fn not_found(text: &str) -> ControlError {
    ControlError::TemplateNotFound { template: text.to_owned() }
}

/// Runtime defaults of a stored image (env values stay hidden).
pub fn runtime_defaults(image: &TemplateImage) -> RuntimeDefaults {
    let runtime = &image.runtime;
    RuntimeDefaults {
        default_env_keys: runtime.envs.keys().cloned().collect(),
        start_cmd: runtime.start_cmd.clone(),
        default_user: runtime.default_user.clone(),
        default_workdir: runtime.default_workdir.clone(),
        readiness: runtime.readiness.as_ref().and_then(|readiness| serde_json::to_value(readiness).ok()),
    }
}

/// The image stored with `record` (an unreadable one is empty: the template still lists).
pub fn image_of(record: &TemplateRecord) -> TemplateImage {
    serde_json::from_str(&record.image).unwrap_or_else(|error| {
        tracing::error!(template_id = %record.id, %error, "stored template image is unreadable");
        TemplateImage::default()
    })
}

impl Control {
    /// Resolves `text` for `tenant`: builtins, the tenant's own templates, public templates of others and
    /// aliases. A miss, or another tenant's private template, is `TemplateNotFound`.
    #[allow(dead_code)] // used by the build engine and sandbox create
    pub async fn resolve_template(&self, tenant: &Tenant, text: &str) -> ControlResult<ResolvedTemplate> {
        Ok(match self.resolve_record(tenant, text).await? {
            Resolved::Builtin(name) => ResolvedTemplate::Builtin { name },
            Resolved::Built(record) => ResolvedTemplate::Built { image: image_of(&record), template_id: record.id },
        })
    }

    fn builtin_names(&self) -> Vec<String> {
        self.node.templates().list().into_iter().map(|layer| layer.name).collect()
    }

    pub(crate) async fn resolve_record(&self, tenant: &Tenant, text: &str) -> ControlResult<Resolved> {
        let engine: HashMap<String, String> =
            self.builtins.all().into_iter().map(|(name, builtin)| (name, builtin.template_id)).collect();
        lookup(&self.store, tenant, &self.builtin_names(), &engine, text).await
    }

    /// Resolves `text` to a template `tenant` owns (for changes: tags, visibility, rename, delete).
    pub(crate) async fn resolve_owned(&self, tenant: &Tenant, text: &str) -> ControlResult<TemplateRecord> {
        match self.resolve_record(tenant, text).await? {
            Resolved::Built(record) if record.tenant_id == tenant.id => Ok(*record),
            Resolved::Builtin(name) => Err(ControlError::InvalidRequest {
                message: format!("{name} is a builtin template and cannot be changed; build your own from it"),
            }),
            Resolved::Built(_) => Err(not_found(text)),
        }
    }

    /// The `TemplateInfo` of a built template (an engine-built built-in shows as the built-in it is).
    pub async fn template_info(&self, record: &TemplateRecord) -> ControlResult<TemplateInfo> {
        if let Some((name, builtin)) = self.builtins.by_template(&record.id) {
            let mut info = builtin_info(name, builtin.description);
            info.runtime_defaults = Some(runtime_defaults(&image_of(record)));
            return Ok(info);
        }
        let tags: Vec<String> = self.store.template_tags(&record.id).await?.into_iter().map(|tag| tag.tag).collect();
        Ok(TemplateInfo {
            id: record.id.clone(),
            name: record.name.clone(),
            description: record.description.clone(),
            default_tag: tags.iter().any(|tag| tag == "default").then(|| "default".to_owned()),
            tags,
            builtin: false,
            canonical_ref: Some(format!("{}/{}", record.namespace, record.name)),
            namespace_slug: Some(record.namespace.clone()),
            visibility: Some(record.visibility.clone()),
            runtime_defaults: Some(runtime_defaults(&image_of(record))),
        })
    }

    /// The `TemplateInfo` of builtin `name`.
    pub fn builtin_info(&self, name: &str) -> Option<TemplateInfo> {
        let layer = self.node.templates().list().into_iter().find(|layer| layer.name == name)?;
        Some(builtin_info(layer.name, layer.description))
    }

    /// Builtins, then the tenant's templates.
    pub async fn list_templates(&self, tenant: &Tenant) -> ControlResult<Vec<TemplateInfo>> {
        let mut list: Vec<TemplateInfo> =
            self.node.templates().list().into_iter().map(|layer| builtin_info(layer.name, layer.description)).collect();
        for (_, builtin) in self.builtins.all() {
            if let Some(record) = self.store.get_template(&builtin.template_id).await? {
                list.push(self.template_info(&record).await?);
            }
        }
        for record in self.store.list_templates(&tenant.id).await? {
            list.push(self.template_info(&record).await?);
        }
        Ok(list)
    }

    /// The `TemplateInfo` of what `text` resolves to.
    pub async fn template_info_of(&self, tenant: &Tenant, text: &str) -> ControlResult<TemplateInfo> {
        match self.resolve_record(tenant, text).await? {
            Resolved::Builtin(name) => self.builtin_info(&name).ok_or_else(|| not_found(text)),
            Resolved::Built(record) => self.template_info(&record).await,
        }
    }
}

/// Resolves `text` for `tenant` against `store`, the node's `builtins` and the `engine`-built built-ins
/// (name → template id).
pub(crate) async fn lookup(
    store: &Store,
    tenant: &Tenant,
    builtins: &[String],
    engine: &HashMap<String, String>,
    text: &str,
) -> ControlResult<Resolved> {
    let parsed = parse_ref(text).ok_or_else(|| not_found(text))?;
    let own = store.ensure_namespace(&tenant.id, &tenant.name).await?;
    let found = match &parsed {
        TemplateRef::Id(id) => store.get_template(id).await?,
        TemplateRef::Named { namespace, name, selector } => {
            // The client spells an untagged `from_template(name)` as `nullspace/<name>:latest`: `latest`
            // means `default` unless a tag `latest` exists.
            let builtin_selector = matches!(selector, Selector::Default)
                || *selector == Selector::Tag("default".into())
                || *selector == Selector::Tag("latest".into());
            let system = namespace.as_deref() == Some(SYSTEM_NAMESPACE);
            if (namespace.is_none() || system) && builtin_selector && builtins.contains(name) {
                return Ok(Resolved::Builtin(name.clone()));
            }
            if let Some(template_id) = engine.get(name).filter(|_| (namespace.is_none() || system) && builtin_selector)
            {
                if let Some(record) = store.get_template(template_id).await? {
                    return Ok(Resolved::Built(Box::new(record)));
                }
            }
            let namespace = match namespace.as_deref() {
                None | Some(SYSTEM_NAMESPACE) => own.clone(),
                Some(other) => other.to_owned(),
            };
            let found = match selector {
                Selector::Default => store.template_by_tag(&namespace, name, "default").await?,
                Selector::Tag(tag) if tag == "latest" => match store.template_by_tag(&namespace, name, tag).await? {
                    Some(record) => Some(record),
                    None => store.template_by_tag(&namespace, name, "default").await?,
                },
                Selector::Tag(tag) => store.template_by_tag(&namespace, name, tag).await?,
                Selector::Build(build) => store.template_by_build(&namespace, name, build).await?,
            };
            match found {
                Some(record) => Some(record),
                None => match store.alias_target(&format!("{namespace}/{name}")).await? {
                    Some(id) if *selector == Selector::Default => store.get_template(&id).await?,
                    _ => None,
                },
            }
        }
    };
    let found = match found {
        Some(record) => Some(record),
        None => match store.alias_target(text.trim()).await? {
            Some(id) => store.get_template(&id).await?,
            None => None,
        },
    };
    match found {
        Some(record) if record.tenant_id == tenant.id || record.visibility == "public" => {
            Ok(Resolved::Built(Box::new(record)))
        }
        _ => Err(not_found(text)),
    }
}

/// A builtin's `TemplateInfo`.
pub fn builtin_info(name: String, description: String) -> TemplateInfo {
    TemplateInfo {
        id: name.clone(),
        canonical_ref: Some(format!("{SYSTEM_NAMESPACE}/{name}")),
        name,
        description,
        tags: vec!["default".to_owned()],
        default_tag: Some("default".to_owned()),
        builtin: true,
        namespace_slug: Some(SYSTEM_NAMESPACE.to_owned()),
        visibility: Some("public".to_owned()),
        runtime_defaults: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(namespace: Option<&str>, name: &str, selector: Selector) -> Option<TemplateRef> {
        Some(TemplateRef::Named { namespace: namespace.map(str::to_owned), name: name.to_owned(), selector })
    }

    #[test]
    fn refs_parse_in_every_form_the_client_sends() {
        assert_eq!(parse_ref("app"), named(None, "app", Selector::Default));
        assert_eq!(parse_ref("app:stable"), named(None, "app", Selector::Tag("stable".into())));
        assert_eq!(parse_ref("app:tb_abc123"), named(None, "app", Selector::Build("tb_abc123".into())));
        assert_eq!(parse_ref("team-1/app:prod"), named(Some("team-1"), "app", Selector::Tag("prod".into())));
        assert_eq!(parse_ref("nullspace/base"), named(Some("nullspace"), "base", Selector::Default));
        assert_eq!(parse_ref("tmpl_abc"), Some(TemplateRef::Id("tmpl_abc".into())));
        for bad in
            ["", "tmpl_", "tmpl_a/b", "a/b/c", "Upper/x", "app:", "app:tb_", "app:bad tag", "../x", "a b", "x:y:z"]
        {
            assert_eq!(parse_ref(bad), None, "{bad:?}");
        }
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;

    async fn setup() -> (tempfile::TempDir, Store, Tenant, Tenant) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let alice = store.ensure_tenant("alice").await.unwrap();
        let bob = store.ensure_tenant("bob").await.unwrap();
        let namespace = store.ensure_namespace(&alice.id, &alice.name).await.unwrap();
        let record = TemplateRecord {
            id: "tmpl_a1".into(),
            tenant_id: alice.id.clone(),
            namespace,
            name: "app".into(),
            visibility: "private".into(),
            description: String::new(),
            image: r#"{"layers":["l1"],"runtime":{"envs":{"K":"v"}}}"#.into(),
            build_id: "tb_a1".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
        };
        store.insert_template(&record, &["default".into(), "stable".into()]).await.unwrap();
        (dir, store, alice, bob)
    }

    async fn id_of(store: &Store, tenant: &Tenant, text: &str) -> Option<String> {
        match lookup(store, tenant, &["base".to_owned()], &HashMap::new(), text).await {
            Ok(Resolved::Built(record)) => Some(record.id.clone()),
            Ok(Resolved::Builtin(name)) => Some(format!("builtin:{name}")),
            Err(ControlError::TemplateNotFound { .. }) => None,
            Err(other) => panic!("{text}: {other}"),
        }
    }

    #[tokio::test]
    async fn every_ref_form_resolves_and_private_templates_stay_private() {
        let (_dir, store, alice, bob) = setup().await;
        for text in [
            "app",
            "app:default",
            "app:stable",
            "app:tb_a1",
            "alice/app",
            "alice/app:stable",
            "alice/app:tb_a1",
            "nullspace/app:stable",
            "tmpl_a1",
        ] {
            assert_eq!(id_of(&store, &alice, text).await.as_deref(), Some("tmpl_a1"), "{text}");
        }
        for text in ["base", "nullspace/base", "nullspace/base:default"] {
            assert_eq!(id_of(&store, &alice, text).await.as_deref(), Some("builtin:base"), "{text}");
        }
        for text in ["app:nope", "app:tb_other", "nope", "alice/nope", "tmpl_zz", "bob/app", "a b"] {
            assert_eq!(id_of(&store, &alice, text).await, None, "{text}");
        }
        // Bob does not see Alice's private template, by any ref; once public he does, by her namespace.
        for text in ["alice/app", "alice/app:stable", "tmpl_a1", "app"] {
            assert_eq!(id_of(&store, &bob, text).await, None, "{text}");
        }
        store.set_visibility("alice", "app", "public").await.unwrap();
        for text in ["alice/app", "alice/app:stable", "alice/app:tb_a1", "tmpl_a1"] {
            assert_eq!(id_of(&store, &bob, text).await.as_deref(), Some("tmpl_a1"), "{text}");
        }
        assert_eq!(id_of(&store, &bob, "app").await, None, "a bare name is the caller's own namespace");
    }

    #[tokio::test]
    async fn a_renamed_template_resolves_by_its_old_canonical_ref() {
        let (_dir, store, alice, _bob) = setup().await;
        let record = store.get_template("tmpl_a1").await.unwrap().unwrap();
        store.rename_templates(&record, "renamed").await.unwrap();
        assert_eq!(id_of(&store, &alice, "renamed:stable").await.as_deref(), Some("tmpl_a1"));
        assert_eq!(id_of(&store, &alice, "alice/app").await.as_deref(), Some("tmpl_a1"), "alias");
        assert_eq!(id_of(&store, &alice, "app:stable").await, None, "the old name's tags moved");
    }
}
