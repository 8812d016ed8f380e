//! Template refs: `list`, `get`, `exists`, `delete`, `tag …`, `alias …`, `visibility set`, `rename`,
//! `reserve`, `namespace get`, `claim release`, and `init` (a starter request file). Human output is
//! one line or a short table; `--json` prints the server's objects.

use std::path::Path;

use anyhow::Context;
use nullspace_client::types::sandbox::TemplateInfo;
use nullspace_client::{Client, ClientError};
use serde::Serialize;
use serde_json::{json, Value};

use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

/// Name of the file `template init` writes.
pub const INIT_FILE: &str = "nullspace.template.json";

/// Adds "template not found" context with the hint to list templates.
fn missing(template_ref: &str) -> impl FnOnce(ClientError) -> anyhow::Error + '_ {
    move |error| {
        if error.status() == Some(404) {
            let user = UserError::new(
                format!("no template `{template_ref}`"),
                Some("list the templates with `nullspace template list`"),
            );
            anyhow::Error::new(error).context(user)
        } else {
            anyhow::Error::new(error).context(format!("request about template `{template_ref}` failed"))
        }
    }
}

/// `template list [--fields …]`.
pub async fn list(client: &Client, fields: &[String], json: bool) -> anyhow::Result<ExitStatus> {
    if !fields.is_empty() {
        let items = client.list_template_fields(fields).await.context("could not list templates")?;
        return print_fields(&items, fields, json);
    }
    let templates = client.list_templates().await.context("could not list templates")?;
    if json {
        print_json(&templates)?;
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = templates.iter().map(row).collect();
    print_table(&["ID", "REF", "VISIBILITY", "TAGS", "DESCRIPTION"], &rows)?;
    Ok(ExitStatus::Success)
}

fn row(t: &TemplateInfo) -> Vec<String> {
    vec![
        t.id.clone(),
        t.canonical_ref.clone().unwrap_or_else(|| t.name.clone()),
        t.visibility.clone().unwrap_or_default(),
        t.tags.join(","),
        t.description.clone(),
    ]
}

fn print_fields(items: &[Value], fields: &[String], json: bool) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(items)?;
        return Ok(ExitStatus::Success);
    }
    let headers: Vec<String> = fields.iter().map(|f| f.to_ascii_uppercase()).collect();
    let rows: Vec<Vec<String>> =
        items.iter().map(|item| fields.iter().map(|f| cell(item.get(f.as_str()))).collect()).collect();
    print_table(&headers.iter().map(String::as_str).collect::<Vec<_>>(), &rows)?;
    Ok(ExitStatus::Success)
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().map(|v| cell(Some(v))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

/// `template get REF [--fields …]`.
pub async fn get(client: &Client, template_ref: &str, fields: &[String], json: bool) -> anyhow::Result<ExitStatus> {
    if !fields.is_empty() {
        let item = client.template_fields(template_ref, fields).await.map_err(missing(template_ref))?;
        if json {
            print_json(&item)?;
            return Ok(ExitStatus::Success);
        }
        return print_fields(&[item], fields, false);
    }
    let info = client.get_template(template_ref).await.map_err(missing(template_ref))?;
    if json {
        print_json(&info)?;
    } else {
        print_table(&["ID", "REF", "VISIBILITY", "TAGS", "DESCRIPTION"], &[row(&info)])?;
    }
    Ok(ExitStatus::Success)
}

/// `template exists REF`: prints the answer; exit 0 when it exists, 1 when not.
pub async fn exists(client: &Client, template_ref: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let exists = client.template_exists(template_ref).await.context("could not look the template up")?;
    if json {
        print_json(&json!({"template_ref": template_ref, "exists": exists}))?;
    } else {
        println!("{}", if exists { "yes" } else { "no" });
    }
    Ok(if exists { ExitStatus::Success } else { ExitStatus::Failure })
}

/// `template delete REF`.
pub async fn delete(client: &Client, template_ref: &str, json: bool) -> anyhow::Result<ExitStatus> {
    client.delete_template(template_ref).await.map_err(missing(template_ref))?;
    done(json, json!({"template_ref": template_ref, "deleted": true}), format!("deleted {template_ref}"))
}

/// Prints a template after a change.
fn changed(info: &TemplateInfo, json: bool) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(info)?;
    } else {
        print_table(&["ID", "REF", "VISIBILITY", "TAGS", "DESCRIPTION"], &[row(info)])?;
    }
    Ok(ExitStatus::Success)
}

fn done(json: bool, value: Value, line: String) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(&value)?;
    } else {
        println!("{line}");
    }
    Ok(ExitStatus::Success)
}

fn list_of<T: Serialize>(
    items: &[T],
    json: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(items)?;
    } else {
        print_table(headers, &items.iter().map(row).collect::<Vec<_>>())?;
    }
    Ok(ExitStatus::Success)
}

/// `template tag assign REF TAG…`.
pub async fn tag_assign(
    client: &Client,
    template_ref: &str,
    tags: &[String],
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let info = client.assign_template_tags(template_ref, tags).await.map_err(missing(template_ref))?;
    changed(&info, json)
}

/// `template tag list REF`.
pub async fn tag_list(client: &Client, template_ref: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let tags = client.template_tags(template_ref).await.map_err(missing(template_ref))?;
    list_of(&tags, json, &["TAG", "BUILD", "CREATED"], |t| {
        vec![t.tag.clone(), t.build_id.clone(), t.created_at.clone()]
    })
}

/// `template tag remove REF TAG`.
pub async fn tag_remove(client: &Client, template_ref: &str, tag: &str, json: bool) -> anyhow::Result<ExitStatus> {
    client.remove_template_tag(template_ref, tag).await.map_err(missing(template_ref))?;
    done(
        json,
        json!({"template_ref": template_ref, "tag": tag, "removed": true}),
        format!("removed tag {tag} from {template_ref}"),
    )
}

/// `template alias list REF`.
pub async fn alias_list(client: &Client, template_ref: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let aliases = client.template_aliases(template_ref).await.map_err(missing(template_ref))?;
    list_of(&aliases, json, &["ALIAS", "CREATED"], |a| vec![a.alias_ref.clone(), a.created_at.clone()])
}

/// `template alias remove REF ALIAS`.
pub async fn alias_remove(client: &Client, template_ref: &str, alias: &str, json: bool) -> anyhow::Result<ExitStatus> {
    client.remove_template_alias(template_ref, alias).await.map_err(missing(template_ref))?;
    done(
        json,
        json!({"template_ref": template_ref, "alias": alias, "removed": true}),
        format!("removed alias {alias} from {template_ref}"),
    )
}

/// `template visibility set REF private|public`.
pub async fn visibility(
    client: &Client,
    template_ref: &str,
    visibility: &str,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let info = client.set_template_visibility(template_ref, visibility).await.map_err(missing(template_ref))?;
    changed(&info, json)
}

/// `template rename REF NEW_NAME`.
pub async fn rename(client: &Client, template_ref: &str, new_name: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let info = client.rename_template(template_ref, new_name).await.map_err(missing(template_ref))?;
    changed(&info, json)
}

/// `template reserve REF`.
pub async fn reserve(client: &Client, template_ref: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let claim = client
        .reserve_template_name(template_ref)
        .await
        .with_context(|| format!("could not reserve `{template_ref}`"))?;
    if json {
        print_json(&claim)?;
    } else {
        println!("{}  {}  expires {}", claim.canonical_ref, claim.claim_token, claim.expires_at);
    }
    Ok(ExitStatus::Success)
}

/// `template namespace get SLUG`.
pub async fn namespace(client: &Client, slug: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let ns = client.template_namespace(slug).await.with_context(|| format!("could not get namespace `{slug}`"))?;
    if json {
        print_json(&ns)?;
    } else {
        println!("{}  {}{}", ns.slug, ns.kind, if ns.is_default { "  (yours)" } else { "" });
    }
    Ok(ExitStatus::Success)
}

/// `template claim release TOKEN`.
pub async fn release(client: &Client, token: &str, json: bool) -> anyhow::Result<ExitStatus> {
    client.release_template_claim(token).await.with_context(|| format!("could not release claim {token}"))?;
    done(json, json!({"claim_token": token, "released": true}), format!("released claim {token}"))
}

/// The starter request `template init` writes: the built-in base, one step, a start command with a
/// readiness check. `template build --file nullspace.template.json --name NAME` builds it.
pub fn starter() -> Value {
    json!({
        "base_image": "nullspace/base:latest",
        "steps": [
            {"action": "run", "command": "mkdir -p /srv/app && echo 'hello from my template' > /srv/app/index.html"}
        ],
        "start_cmd": "cd /srv/app && python3 -m http.server 8080",
        "runtime_config": {
            "default_workdir": "/srv/app",
            "default_envs": {"GREETING": "hello"},
            "readiness": {"kind": "tcp", "port": 8080, "timeout_secs": 30, "interval_ms": 500, "startup_grace_secs": 2}
        },
        "build_config": {"vcpus": 2, "memory_mib": 512}
    })
}

/// `template init [DIR]`: writes the starter file (never over an existing one).
pub fn init(dir: &Path, json: bool) -> anyhow::Result<ExitStatus> {
    let path = dir.join(INIT_FILE);
    if path.exists() {
        return Err(
            UserError::new(format!("{} already exists", path.display()), Some("edit it, or remove it first")).into()
        );
    }
    let text = serde_json::to_string_pretty(&starter())? + "\n";
    std::fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))?;
    done(
        json,
        json!({"path": path.display().to_string(), "created": true}),
        format!(
            "wrote {}\nbuild it with `nullspace template build --file {} --name my-template`",
            path.display(),
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_is_a_valid_build_request_and_init_never_overwrites() {
        let request: nullspace_client::types::template_api::BuildRequest = serde_json::from_value(starter()).unwrap();
        assert_eq!(request.base_image.as_deref(), Some("nullspace/base:latest"));
        assert!(request.runtime_config.unwrap().readiness.is_some());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(init(dir.path(), true).unwrap(), ExitStatus::Success);
        assert!(dir.path().join(INIT_FILE).is_file());
        assert!(init(dir.path(), true).unwrap_err().downcast_ref::<UserError>().is_some());
    }

    #[test]
    fn field_cells_flatten_lists() {
        assert_eq!(cell(Some(&json!(["a", "b"]))), "a,b");
        assert_eq!(cell(Some(&json!(3))), "3");
        assert_eq!(cell(None), "");
    }
}
