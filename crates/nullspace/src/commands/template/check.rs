//! Checks of a build request that build nothing: `template validate` (errors and warnings; exit 1
//! when invalid), `template plan` (the steps the engine would run) and `template build --dry-run`
//! (the request as it would be sent, and the server's plan when it can be had). The context goes
//! inline, so a check leaves nothing behind on the server. Everything printed is redacted: build
//! secret values and registry credentials never appear.

use anyhow::Context;
use nullspace_client::types::template_api::BuildRequest;
use nullspace_client::{Client, ClientError, ValidateResult};
use serde_json::{json, Value};

use super::context;
use super::render::{redact, redacted_json};
use super::request::Prepared;
use crate::exit::{ExitStatus, UserError};
use crate::output::print_json;

/// The request with its context inline.
fn inline_request(prepared: &Prepared) -> anyhow::Result<BuildRequest> {
    let mut request = prepared.request.clone();
    if !prepared.context.is_empty() {
        request.build_context = Some(context::inline_context(&prepared.context)?);
    }
    Ok(request)
}

/// `template validate …`: exit 1 when the server finds errors.
pub async fn validate(client: &Client, prepared: &Prepared, json: bool) -> anyhow::Result<ExitStatus> {
    let request = inline_request(prepared)?;
    let result = client.validate_template(&request).await.context("could not validate the build request")?;
    let mut value = serde_json::to_value(&result)?;
    redact(&mut value, &prepared.secrets);
    if json {
        print_json(&value)?;
    } else {
        let shown: ValidateResult = serde_json::from_value(value)?;
        print!("{}", validate_text(&shown));
        if !shown.valid {
            eprintln!("\nhint: fix what is listed above, then run the same `nullspace template validate …` again");
        }
    }
    Ok(if result.valid { ExitStatus::Success } else { ExitStatus::Failure })
}

/// `valid` or `invalid`, then one line per error and warning.
fn validate_text(result: &ValidateResult) -> String {
    let mut out = String::from(if result.valid { "valid\n" } else { "invalid\n" });
    for error in &result.errors {
        let phase = error.phase.as_deref().map(|p| format!(" [{p}]")).unwrap_or_default();
        out.push_str(&format!("error: {}{phase}: {}\n", error.code, error.message));
    }
    for warning in &result.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

/// The server's plan, redacted; an invalid request is a user error pointing at `validate`.
async fn fetch_plan(client: &Client, prepared: &Prepared) -> anyhow::Result<Value> {
    let request = inline_request(prepared)?;
    let mut plan = client.plan_template(&request).await.map_err(|error| {
        let refused = error.status().is_some() && error.code() == "invalid_request";
        let error = anyhow::Error::new(error);
        if refused {
            error.context(UserError::new(
                "the server refused to plan this build request",
                Some("run `nullspace template validate` with the same flags to list every problem"),
            ))
        } else {
            error.context("could not plan the build")
        }
    })?;
    redact(&mut plan, &prepared.secrets);
    Ok(plan)
}

/// `template plan …`.
pub async fn plan(client: &Client, prepared: &Prepared, json: bool) -> anyhow::Result<ExitStatus> {
    let plan = fetch_plan(client, prepared).await?;
    if json {
        print_json(&plan)?;
    } else {
        print!("{}", plan_text(&plan));
    }
    Ok(ExitStatus::Success)
}

/// The plan for a person: source, base, steps, context and warnings.
fn plan_text(plan: &Value) -> String {
    let text = |key: &str| plan.get(key).and_then(Value::as_str).unwrap_or("-").to_owned();
    let build_plan = plan.get("build_plan").cloned().unwrap_or_default();
    let mut out = format!(
        "source: {}  backend: {}  digest: {}\n",
        text("source_type"),
        text("build_backend"),
        text("source_digest")
    );
    match build_plan.get("base_image").and_then(Value::as_str) {
        Some(base) => out.push_str(&format!("base: {base}\n")),
        None if build_plan.get("dockerfile").and_then(Value::as_bool) == Some(true) => {
            out.push_str(&format!("base: Dockerfile {}\n", text("dockerfile_digest")))
        }
        None => {}
    }
    let steps = build_plan.get("steps").and_then(Value::as_array).cloned().unwrap_or_default();
    for (position, item) in steps.iter().enumerate() {
        let index = item.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let step = item.get("step").cloned().unwrap_or_else(|| item.clone());
        let action = step.get("action").and_then(Value::as_str).unwrap_or("step").to_owned();
        let mut args = step.as_object().cloned().unwrap_or_default();
        args.remove("action");
        args.retain(|_, v| !v.is_null());
        out.push_str(&format!("step {}/{}: {action} {}\n", index + 1, steps.len(), Value::Object(args)));
    }
    if build_plan.get("skip_cache").and_then(Value::as_bool) == Some(true) {
        out.push_str("cache: skipped for every step\n");
    }
    if let Some(manifest) = plan.get("context_manifest").filter(|m| !m.is_null()) {
        let files = manifest.get("file_count").and_then(Value::as_u64).unwrap_or(0);
        let digest = manifest.get("context_digest").and_then(Value::as_str).unwrap_or("-");
        out.push_str(&format!("context: {files} files  {digest}\n"));
    }
    if plan.get("requires_base_image_auth").and_then(Value::as_bool) == Some(true) {
        out.push_str("the base image needs registry credentials (--registry-username)\n");
    }
    for warning in plan.get("warnings").and_then(Value::as_array).into_iter().flatten() {
        out.push_str(&format!("warning: {}\n", warning.as_str().unwrap_or_default()));
    }
    out
}

/// `template build --dry-run`: the redacted request, and the server's plan when the server can be
/// reached (`client` is `None` when none could be configured). Exit 1 only when the server refuses the
/// request; an unreachable server or a missing key leaves the plan out with the reason.
pub async fn dry_run(client: Option<&Client>, prepared: &Prepared, json: bool) -> anyhow::Result<ExitStatus> {
    let request = redacted_json(prepared);
    let plan = match client {
        Some(client) if client.has_api_key() => fetch_plan(client, prepared).await,
        Some(_) => Err(anyhow::anyhow!("no API key is configured")),
        None => Err(anyhow::anyhow!("the API URL is not valid")),
    };
    let refused = plan.as_ref().err().is_some_and(|error| error.downcast_ref::<UserError>().is_some());
    let plan_error = plan.as_ref().err().map(|error| {
        let client_error = error.chain().find_map(|cause| cause.downcast_ref::<ClientError>());
        json!({
            "code": client_error.map(ClientError::code).unwrap_or("unavailable"),
            "message": format!("{error:#}"),
        })
    });
    if json {
        print_json(&json!({
            "dry_run": true,
            "request": request,
            "plan": plan.as_ref().ok(),
            "plan_error": plan_error,
        }))?;
    } else {
        println!("dry run: nothing is built; the request would be:");
        println!("{}", serde_json::to_string_pretty(&request)?);
        match &plan {
            Ok(plan) => {
                println!("\nthe server's plan:");
                print!("{}", plan_text(plan));
            }
            Err(error) => {
                eprintln!("\nno plan from the server: {error:#}");
                let hint = if refused {
                    "run `nullspace template validate` with the same flags to list every problem"
                } else {
                    "start the server or set NULLSPACE_API_URL and NULLSPACE_API_KEY to see its plan"
                };
                eprintln!("hint: {hint}");
            }
        }
    }
    Ok(if refused { ExitStatus::Failure } else { ExitStatus::Success })
}

#[cfg(test)]
mod tests {
    use nullspace_client::ValidateIssue;

    use super::*;

    #[test]
    fn validation_results_read_as_lines() {
        let result = ValidateResult {
            valid: false,
            errors: vec![ValidateIssue {
                code: "unsupported_instruction".into(),
                message: "line 2: VOLUME is not supported".into(),
                phase: Some("preflight".into()),
            }],
            warnings: vec!["step 0 installs no packages".into()],
        };
        assert_eq!(
            validate_text(&result),
            "invalid\nerror: unsupported_instruction [preflight]: line 2: VOLUME is not supported\n\
             warning: step 0 installs no packages\n"
        );
        assert_eq!(validate_text(&ValidateResult { valid: true, ..Default::default() }), "valid\n");
    }

    #[test]
    fn plans_read_step_by_step() {
        let plan = json!({
            "build_backend": "native", "source_type": "template_base", "source_digest": "sha256:ab",
            "build_plan": {"base_image": "nullspace/base", "dockerfile": false, "skip_cache": true, "steps": [
                {"index": 0, "step": {"action": "run", "command": "echo hi", "user": null}},
                {"index": 1, "step": {"action": "make_dir", "path": "/a"}},
            ]},
            "context_manifest": {"context_manifest_id": "sha256:cd", "context_digest": "sha256:cd", "file_count": 2},
            "warnings": ["w"], "requires_base_image_auth": false,
        });
        assert_eq!(
            plan_text(&plan),
            "source: template_base  backend: native  digest: sha256:ab\nbase: nullspace/base\n\
             step 1/2: run {\"command\":\"echo hi\"}\nstep 2/2: make_dir {\"path\":\"/a\"}\n\
             cache: skipped for every step\ncontext: 2 files  sha256:cd\nwarning: w\n"
        );
    }
}
