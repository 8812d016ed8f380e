//! Changes to built templates through their refs: tags, visibility, rename, delete, aliases, builds of a
//! template, name claims and namespaces.

use nullspace_types::template_wire::{AliasInfo, BuildStatus, NameClaim, NamespaceInfo, TagInfo, TemplateInfo};

use super::service::ControlResult;
use super::template_refs::{parse_ref, Resolved, TemplateRef};
use super::template_validate as validate;
use super::{Control, ControlError};
use crate::clock;
use crate::store::template_blobs::ClaimRecord;
use crate::store::template_builds::{BuildFilter, BuildRecord};
use crate::store::templates::SYSTEM_NAMESPACE;
use crate::store::Tenant;

/// How long a name claim holds.
const CLAIM_HOURS: i64 = 24;

/// Which builds of a template to list.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct BuildQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this backend (`native`; anything else lists nothing).
    pub backend: Option<String>,
    /// Only this source type.
    pub source_type: Option<String>,
    /// Page size (default 50, at most 200).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn invalid(message: impl Into<String>) -> ControlError {
    ControlError::InvalidRequest { message: message.into() }
}

impl Control {
    /// Tags of the template `text` names.
    pub async fn template_tags(&self, tenant: &Tenant, text: &str) -> ControlResult<Vec<TagInfo>> {
        let record = match self.resolve_record(tenant, text).await? {
            Resolved::Builtin(_) => return Ok(Vec::new()),
            Resolved::Built(record) => record,
        };
        Ok(self
            .store
            .template_tags(&record.id)
            .await?
            .into_iter()
            .map(|tag| TagInfo { tag: tag.tag, build_id: tag.build_id, created_at: tag.created_at })
            .collect())
    }

    /// Moves `tags` of the template's name to the template `text` names.
    pub async fn assign_template_tags(
        &self,
        tenant: &Tenant,
        text: &str,
        tags: &[String],
    ) -> ControlResult<TemplateInfo> {
        if tags.is_empty() {
            return Err(invalid("tags must name at least one tag"));
        }
        if let Some(bad) = tags.iter().find(|tag| !validate::valid_tag(tag)) {
            return Err(invalid(format!("invalid tag {bad:?}: use letters, digits, '-', '_' and '.', not 'tb_'")));
        }
        let record = self.resolve_owned(tenant, text).await?;
        self.store.assign_tags(&record, tags).await?;
        self.template_info(&record).await
    }

    /// Removes `tag` from the template `text` names (a name with no tags left no longer resolves).
    pub async fn remove_template_tag(&self, tenant: &Tenant, text: &str, tag: &str) -> ControlResult<()> {
        let record = self.resolve_owned(tenant, text).await?;
        if !self.store.remove_tag(&record, tag).await? {
            return Err(ControlError::TemplateNotFound { template: format!("{}:{tag}", record.name) });
        }
        Ok(())
    }

    /// Sets the visibility of every template of the name `text` names.
    pub async fn set_template_visibility(
        &self,
        tenant: &Tenant,
        text: &str,
        visibility: &str,
    ) -> ControlResult<TemplateInfo> {
        if !matches!(visibility, "private" | "public") {
            return Err(invalid(format!("visibility {visibility:?} must be private or public")));
        }
        let record = self.resolve_owned(tenant, text).await?;
        self.store.set_visibility(&record.namespace, &record.name, visibility).await?;
        let record = self
            .store
            .get_template(&record.id)
            .await?
            .ok_or_else(|| ControlError::TemplateNotFound { template: text.to_owned() })?;
        self.template_info(&record).await
    }

    /// Renames the name `text` names (every template of it, with its tags); the old ref stays an alias.
    pub async fn rename_template(&self, tenant: &Tenant, text: &str, new_name: &str) -> ControlResult<TemplateInfo> {
        if !validate::valid_name(new_name) {
            return Err(invalid(format!("invalid template name {new_name:?}")));
        }
        let record = self.resolve_owned(tenant, text).await?;
        if record.name == new_name {
            return self.template_info(&record).await;
        }
        if self.store.name_in_use(&record.namespace, new_name).await? {
            return Err(ControlError::TemplateConflict {
                message: format!("{}/{new_name} is taken; pick another name or delete that template", record.namespace),
            });
        }
        self.store.rename_templates(&record, new_name).await?;
        let record = self
            .store
            .get_template(&record.id)
            .await?
            .ok_or_else(|| ControlError::TemplateNotFound { template: text.to_owned() })?;
        self.template_info(&record).await
    }

    /// Deletes the template `text` names (legacy ids included: a build still running is cancelled).
    pub async fn delete_template(&self, tenant: &Tenant, text: &str) -> ControlResult<()> {
        match self.resolve_owned(tenant, text).await {
            Ok(record) => {
                self.store.delete_template(&tenant.id, &record.id).await?;
                Ok(())
            }
            Err(ControlError::TemplateNotFound { template }) => {
                // A template whose build has not finished yet: cancel the build instead.
                let Some(TemplateRef::Id(id)) = parse_ref(text) else {
                    return Err(ControlError::TemplateNotFound { template });
                };
                let filter = BuildFilter { template_id: Some(id), limit: 1, ..BuildFilter::default() };
                match self.store.list_builds(&tenant.id, &filter).await?.into_iter().next() {
                    Some(build) if !build.status.is_terminal() => {
                        self.cancel_build(tenant, &build.id, Some("template deleted")).await?;
                        Ok(())
                    }
                    _ => Err(ControlError::TemplateNotFound { template }),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// Aliases of the template `text` names.
    pub async fn template_aliases(&self, tenant: &Tenant, text: &str) -> ControlResult<Vec<AliasInfo>> {
        let record = self.resolve_owned(tenant, text).await?;
        Ok(self
            .store
            .template_aliases(&record.id)
            .await?
            .into_iter()
            .map(|alias| AliasInfo { alias_ref: alias.alias_ref, created_at: alias.created_at })
            .collect())
    }

    /// Removes alias `alias` of the template `text` names.
    pub async fn remove_template_alias(&self, tenant: &Tenant, text: &str, alias: &str) -> ControlResult<()> {
        let record = self.resolve_owned(tenant, text).await?;
        if !self.store.delete_alias(&record.id, alias).await? {
            return Err(ControlError::TemplateNotFound { template: alias.to_owned() });
        }
        Ok(())
    }

    /// Builds of the template (`tmpl_…`) or name `text` names, newest first, paged.
    pub async fn template_builds(
        &self,
        tenant: &Tenant,
        text: &str,
        query: &BuildQuery,
    ) -> ControlResult<(Vec<BuildRecord>, Option<String>)> {
        let status = match query.status.as_deref() {
            None | Some("") => None,
            Some(text) => {
                Some(BuildStatus::parse(text).ok_or_else(|| invalid(format!("unknown build status {text:?}")))?)
            }
        };
        let limit = query.limit.unwrap_or(50).clamp(1, 200);
        let before = match query.cursor.as_deref().filter(|cursor| !cursor.is_empty()) {
            None => None,
            Some(cursor) => {
                let build = self
                    .build_record(tenant, cursor)
                    .await
                    .map_err(|_| invalid(format!("unknown cursor {cursor:?}")))?;
                Some((build.created_at, build.id))
            }
        };
        let mut filter = BuildFilter {
            status,
            source_type: query.source_type.clone(),
            before,
            limit: limit + 1,
            ..BuildFilter::default()
        };
        match parse_ref(text) {
            Some(TemplateRef::Id(id)) => {
                // The builds of a template id, including one still building (no template record yet).
                let owned = self
                    .store
                    .list_builds(
                        &tenant.id,
                        &BuildFilter { template_id: Some(id.clone()), limit: 1, ..BuildFilter::default() },
                    )
                    .await?;
                if owned.is_empty() {
                    return Err(ControlError::TemplateNotFound { template: text.to_owned() });
                }
                filter.template_id = Some(id);
            }
            _ => {
                let record = self.resolve_owned(tenant, text).await?;
                filter.name = Some((record.namespace, record.name));
            }
        }
        if query.backend.as_deref().is_some_and(|backend| backend != "native") {
            return Ok((Vec::new(), None));
        }
        let mut builds = self.store.list_builds(&tenant.id, &filter).await?;
        let next = (builds.len() > limit as usize).then(|| {
            builds.truncate(limit as usize);
            builds.last().map(|build| build.id.clone())
        });
        Ok((builds, next.flatten()))
    }

    /// Reserves the name `template_ref` names in the tenant's namespace.
    pub async fn claim_template_name(&self, tenant: &Tenant, template_ref: &str) -> ControlResult<NameClaim> {
        let namespace = self.store.ensure_namespace(&tenant.id, &tenant.name).await?;
        let name = match parse_ref(template_ref) {
            Some(TemplateRef::Named { namespace: given, name, .. })
                if given.as_deref().is_none_or(|given| given == namespace) =>
            {
                name
            }
            _ => return Err(invalid(format!("{template_ref:?} is not a name in your namespace {namespace}"))),
        };
        let claim = ClaimRecord {
            token: crate::ids::claim_token(),
            tenant_id: tenant.id.clone(),
            canonical_ref: format!("{namespace}/{name}"),
            expires_at: clock::ms_to_rfc3339(clock::now_ms() + CLAIM_HOURS * 3_600_000),
        };
        self.store.insert_claim(&claim).await?;
        Ok(NameClaim { claim_token: claim.token, canonical_ref: claim.canonical_ref, expires_at: claim.expires_at })
    }

    /// Releases claim `token`.
    pub async fn release_template_claim(&self, tenant: &Tenant, token: &str) -> ControlResult<()> {
        if !self.store.delete_claim(&tenant.id, token).await? {
            return Err(ControlError::ClaimNotFound { token: token.to_owned() });
        }
        Ok(())
    }

    /// Namespace `slug` as the tenant sees it.
    pub async fn template_namespace(&self, tenant: &Tenant, slug: &str) -> ControlResult<NamespaceInfo> {
        if slug == SYSTEM_NAMESPACE {
            return Ok(NamespaceInfo { slug: slug.to_owned(), kind: "system".into(), is_default: false });
        }
        let own = self.store.ensure_namespace(&tenant.id, &tenant.name).await?;
        if slug == own {
            return Ok(NamespaceInfo { slug: own, kind: "user".into(), is_default: true });
        }
        match self.store.namespace_owner(slug).await? {
            Some(_) => Ok(NamespaceInfo { slug: slug.to_owned(), kind: "user".into(), is_default: false }),
            None => Err(ControlError::TemplateNotFound { template: format!("namespace {slug}") }),
        }
    }
}
