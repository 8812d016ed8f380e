//! Template rows: the namespace of each tenant, built templates (soft-deleted), the tags and aliases that
//! point at them, and the layers every template still in use holds.

use std::collections::HashSet;

use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult};
use crate::clock;

/// The namespace of builtin templates, never a tenant's.
pub const SYSTEM_NAMESPACE: &str = "nullspace";

/// A built template as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    /// `tmpl_…`.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Namespace slug of the owner.
    pub namespace: String,
    /// Name (tags live under `namespace/name`).
    pub name: String,
    /// `private` or `public` (shared by every template of a name).
    pub visibility: String,
    /// What it contains.
    pub description: String,
    /// `TemplateImage` as JSON (layers and runtime defaults).
    pub image: String,
    /// Build that produced it.
    pub build_id: String,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// One tag of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    /// Tag.
    pub tag: String,
    /// Template it points at.
    pub template_id: String,
    /// Build of that template.
    pub build_id: String,
    /// When it moved there.
    pub created_at: String,
}

/// One alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    /// The alias ref.
    pub alias_ref: String,
    /// Template it points at.
    pub template_id: String,
    /// Created.
    pub created_at: String,
}

const COLUMNS: &str =
    "id, tenant_id, namespace, name, visibility, description, image, build_id, created_at, updated_at";

fn decode(row: &SqliteRow) -> StoreResult<TemplateRecord> {
    let id: String = column(row, "id", "?")?;
    Ok(TemplateRecord {
        tenant_id: column(row, "tenant_id", &id)?,
        namespace: column(row, "namespace", &id)?,
        name: column(row, "name", &id)?,
        visibility: column(row, "visibility", &id)?,
        description: column(row, "description", &id)?,
        image: column(row, "image", &id)?,
        build_id: column(row, "build_id", &id)?,
        created_at: column(row, "created_at", &id)?,
        updated_at: column(row, "updated_at", &id)?,
        id,
    })
}

fn decode_tag(row: &SqliteRow) -> StoreResult<TagRecord> {
    let tag: String = column(row, "tag", "?")?;
    Ok(TagRecord {
        template_id: column(row, "template_id", &tag)?,
        build_id: column(row, "build_id", &tag)?,
        created_at: column(row, "created_at", &tag)?,
        tag,
    })
}

/// The namespace slug `name` (a tenant name) becomes: lowercase `[a-z0-9-]`, no leading, trailing or
/// doubled dashes, never empty.
pub fn slug_of(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').chars().take(48).collect::<String>();
    if slug.is_empty() {
        "tenant".to_owned()
    } else {
        slug.trim_end_matches('-').to_owned()
    }
}

/// Layer ids in a stored `TemplateImage`.
#[allow(dead_code)] // the layer collector (build engine) uses `layers_in_use`
fn image_layers(image: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Layers {
        #[serde(default)]
        layers: Vec<String>,
    }
    serde_json::from_str::<Layers>(image).map(|image| image.layers).unwrap_or_default()
}

impl Store {
    /// The namespace slug of `tenant_id` (named `tenant_name`), created on first use: derived from the
    /// name, with a numeric suffix when taken or reserved.
    pub async fn ensure_namespace(&self, tenant_id: &str, tenant_name: &str) -> StoreResult<String> {
        if let Some(slug) = self.namespace_of(tenant_id).await? {
            return Ok(slug);
        }
        let base = slug_of(tenant_name);
        for attempt in 0..1000 {
            let slug = if attempt == 0 { base.clone() } else { format!("{base}-{}", attempt + 1) };
            if slug == SYSTEM_NAMESPACE {
                continue;
            }
            sqlx::query("INSERT INTO template_namespaces (slug, tenant_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&slug)
                .bind(tenant_id)
                .bind(clock::now_rfc3339())
                .execute(&self.pool)
                .await
                .map_err(query("insert namespace"))?;
            if let Some(owned) = self.namespace_of(tenant_id).await? {
                return Ok(owned);
            }
        }
        Err(StoreError::Corrupt { id: tenant_id.to_owned(), reason: "no free namespace slug".to_owned() })
    }

    /// The namespace of `tenant_id`, if it has one.
    pub async fn namespace_of(&self, tenant_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT slug FROM template_namespaces WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select namespace"))?;
        row.map(|row| column(&row, "slug", tenant_id)).transpose()
    }

    /// The tenant owning namespace `slug`.
    pub async fn namespace_owner(&self, slug: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT tenant_id FROM template_namespaces WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select namespace owner"))?;
        row.map(|row| column(&row, "tenant_id", slug)).transpose()
    }

    /// Records a built template and moves `tags` of its name to it, in one transaction. The template
    /// takes the visibility its name already has.
    pub async fn insert_template(&self, template: &TemplateRecord, tags: &[String]) -> StoreResult<TemplateRecord> {
        let mut tx = self.pool.begin().await.map_err(query("begin insert template"))?;
        let existing = sqlx::query(
            "SELECT visibility FROM templates WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(&template.namespace)
        .bind(&template.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query("select name visibility"))?;
        let mut record = template.clone();
        if let Some(row) = existing {
            record.visibility = column(&row, "visibility", &template.id)?;
        }
        sqlx::query(&format!("INSERT INTO templates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(&record.id)
            .bind(&record.tenant_id)
            .bind(&record.namespace)
            .bind(&record.name)
            .bind(&record.visibility)
            .bind(&record.description)
            .bind(&record.image)
            .bind(&record.build_id)
            .bind(&record.created_at)
            .bind(&record.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(query("insert template"))?;
        for tag in tags {
            upsert_tag(&mut tx, &record.namespace, &record.name, tag, &record.id, &record.build_id).await?;
        }
        tx.commit().await.map_err(query("commit insert template"))?;
        Ok(record)
    }

    /// Template `id`, deleted or not (sandboxes and snapshots of a deleted template still start from it).
    pub async fn get_template_any(&self, id: &str) -> StoreResult<Option<TemplateRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM templates WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select template"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Template `id` unless deleted.
    pub async fn get_template(&self, id: &str) -> StoreResult<Option<TemplateRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM templates WHERE id = $1 AND deleted_at IS NULL"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select template"))?;
        row.as_ref().map(decode).transpose()
    }

    /// The template `namespace/name:tag` points at.
    pub async fn template_by_tag(&self, namespace: &str, name: &str, tag: &str) -> StoreResult<Option<TemplateRecord>> {
        let columns = COLUMNS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
        let row = sqlx::query(&format!(
            "SELECT {columns} FROM template_tags g JOIN templates t ON t.id = g.template_id \
             WHERE g.namespace = $1 AND g.name = $2 AND g.tag = $3 AND t.deleted_at IS NULL"
        ))
        .bind(namespace)
        .bind(name)
        .bind(tag)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select template by tag"))?;
        row.as_ref().map(decode).transpose()
    }

    /// The template build `build_id` of `namespace/name` produced.
    pub async fn template_by_build(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
    ) -> StoreResult<Option<TemplateRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM templates WHERE namespace = $1 AND name = $2 AND build_id = $3 AND deleted_at IS NULL"
        ))
        .bind(namespace)
        .bind(name)
        .bind(build_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select template by build"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Templates of `tenant_id` not deleted, oldest first.
    pub async fn list_templates(&self, tenant_id: &str) -> StoreResult<Vec<TemplateRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM templates WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list templates"))?;
        rows.iter().map(decode).collect()
    }

    /// Tags pointing at template `template_id`, by tag.
    pub async fn template_tags(&self, template_id: &str) -> StoreResult<Vec<TagRecord>> {
        let rows = sqlx::query(
            "SELECT tag, template_id, build_id, created_at FROM template_tags WHERE template_id = $1 ORDER BY tag",
        )
        .bind(template_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list template tags"))?;
        rows.iter().map(decode_tag).collect()
    }

    /// Moves `tags` of the template's name to template `template`.
    pub async fn assign_tags(&self, template: &TemplateRecord, tags: &[String]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(query("begin assign tags"))?;
        for tag in tags {
            upsert_tag(&mut tx, &template.namespace, &template.name, tag, &template.id, &template.build_id).await?;
        }
        tx.commit().await.map_err(query("commit assign tags"))
    }

    /// Removes `tag` of the template's name when it points at the template; whether it did.
    pub async fn remove_tag(&self, template: &TemplateRecord, tag: &str) -> StoreResult<bool> {
        let result = sqlx::query(
            "DELETE FROM template_tags WHERE namespace = $1 AND name = $2 AND tag = $3 AND template_id = $4",
        )
        .bind(&template.namespace)
        .bind(&template.name)
        .bind(tag)
        .bind(&template.id)
        .execute(&self.pool)
        .await
        .map_err(query("delete tag"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Sets the visibility of every template of `namespace/name`.
    pub async fn set_visibility(&self, namespace: &str, name: &str, visibility: &str) -> StoreResult<()> {
        sqlx::query("UPDATE templates SET visibility = $1, updated_at = $2 WHERE namespace = $3 AND name = $4")
            .bind(visibility)
            .bind(clock::now_rfc3339())
            .bind(namespace)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query("set visibility"))?;
        Ok(())
    }

    /// Whether a template of `namespace/name` exists (deleted ones included: their tags may come back).
    pub async fn name_in_use(&self, namespace: &str, name: &str) -> StoreResult<bool> {
        let row =
            sqlx::query("SELECT id FROM templates WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL LIMIT 1")
                .bind(namespace)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(query("select name in use"))?;
        Ok(row.is_some())
    }

    /// Renames every template of the template's name, with its tags, and keeps the old canonical ref as
    /// an alias of the template.
    pub async fn rename_templates(&self, template: &TemplateRecord, new_name: &str) -> StoreResult<()> {
        let now = clock::now_rfc3339();
        let mut tx = self.pool.begin().await.map_err(query("begin rename"))?;
        sqlx::query("UPDATE templates SET name = $1, updated_at = $2 WHERE namespace = $3 AND name = $4")
            .bind(new_name)
            .bind(&now)
            .bind(&template.namespace)
            .bind(&template.name)
            .execute(&mut *tx)
            .await
            .map_err(query("rename templates"))?;
        sqlx::query("UPDATE template_tags SET name = $1 WHERE namespace = $2 AND name = $3")
            .bind(new_name)
            .bind(&template.namespace)
            .bind(&template.name)
            .execute(&mut *tx)
            .await
            .map_err(query("rename tags"))?;
        sqlx::query(
            "INSERT INTO template_aliases (alias_ref, tenant_id, template_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (alias_ref) DO UPDATE SET template_id = excluded.template_id, created_at = excluded.created_at",
        )
        .bind(format!("{}/{}", template.namespace, template.name))
        .bind(&template.tenant_id)
        .bind(&template.id)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(query("insert alias"))?;
        tx.commit().await.map_err(query("commit rename"))
    }

    /// Soft-deletes template `id` of `tenant_id` (its row stays for the layer collector while sandboxes
    /// or snapshots use it) and drops its tags and aliases; whether it existed.
    pub async fn delete_template(&self, tenant_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(query("begin delete template"))?;
        let result =
            sqlx::query("UPDATE templates SET deleted_at = $1 WHERE id = $2 AND tenant_id = $3 AND deleted_at IS NULL")
                .bind(clock::now_rfc3339())
                .bind(id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await
                .map_err(query("delete template"))?;
        for statement in
            ["DELETE FROM template_tags WHERE template_id = $1", "DELETE FROM template_aliases WHERE template_id = $1"]
        {
            sqlx::query(statement).bind(id).execute(&mut *tx).await.map_err(query("delete template refs"))?;
        }
        tx.commit().await.map_err(query("commit delete template"))?;
        Ok(result.rows_affected() == 1)
    }

    /// The template alias `alias_ref` points at.
    pub async fn alias_target(&self, alias_ref: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT template_id FROM template_aliases WHERE alias_ref = $1")
            .bind(alias_ref)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select alias"))?;
        row.map(|row| column(&row, "template_id", alias_ref)).transpose()
    }

    /// Aliases of template `template_id`.
    pub async fn template_aliases(&self, template_id: &str) -> StoreResult<Vec<AliasRecord>> {
        let rows = sqlx::query(
            "SELECT alias_ref, template_id, created_at FROM template_aliases WHERE template_id = $1 ORDER BY alias_ref",
        )
        .bind(template_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list aliases"))?;
        rows.iter()
            .map(|row| {
                let alias_ref: String = column(row, "alias_ref", template_id)?;
                Ok(AliasRecord {
                    template_id: column(row, "template_id", &alias_ref)?,
                    created_at: column(row, "created_at", &alias_ref)?,
                    alias_ref,
                })
            })
            .collect()
    }

    /// Removes alias `alias_ref` of template `template_id`; whether it existed.
    pub async fn delete_alias(&self, template_id: &str, alias_ref: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM template_aliases WHERE template_id = $1 AND alias_ref = $2")
            .bind(template_id)
            .bind(alias_ref)
            .execute(&self.pool)
            .await
            .map_err(query("delete alias"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Layer ids held by templates not deleted and by deleted ones that sandboxes not destroyed or
    /// snapshots not deleted still use.
    #[allow(dead_code)] // the layer collector (build engine) uses it
    pub async fn layers_in_use(&self) -> StoreResult<HashSet<String>> {
        let rows = sqlx::query(
            "SELECT id, image FROM templates WHERE deleted_at IS NULL \
             OR id IN (SELECT template FROM sandboxes WHERE state <> 'destroyed') \
             OR id IN (SELECT template FROM snapshots WHERE deleted = 0)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query("select template layers"))?;
        let mut layers = HashSet::new();
        for row in &rows {
            let id: String = column(row, "id", "?")?;
            layers.extend(image_layers(&column::<String>(row, "image", &id)?));
        }
        Ok(layers)
    }
}

async fn upsert_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    namespace: &str,
    name: &str,
    tag: &str,
    template_id: &str,
    build_id: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO template_tags (namespace, name, tag, template_id, build_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (namespace, name, tag) DO UPDATE SET \
         template_id = excluded.template_id, build_id = excluded.build_id, created_at = excluded.created_at",
    )
    .bind(namespace)
    .bind(name)
    .bind(tag)
    .bind(template_id)
    .bind(build_id)
    .bind(clock::now_rfc3339())
    .execute(&mut **tx)
    .await
    .map_err(query("upsert tag"))?;
    Ok(())
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
