//! What `template render` prints, and what every printed form shares: the request as compact JSON
//! (no nulls) with build-secret values and any copy of them replaced by `[REDACTED]`, and the request
//! as a Dockerfile, step by step as the official client's `to_dockerfile` writes it.

use nullspace_client::build_request_json;
use serde_json::Value;

use super::request::Prepared;
use super::steps::StepFlag;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Keys whose values are always hidden (registry credentials).
const SENSITIVE_KEYS: [&str; 6] =
    ["password", "secret_access_key", "session_token", "token", "access_token", "service_account_json"];

/// The request as printed: compact, secrets redacted.
pub fn redacted_json(prepared: &Prepared) -> Value {
    let mut value = build_request_json(&prepared.request);
    redact(&mut value, &prepared.secrets);
    value
}

/// Replaces secret values (and sensitive keys, and a build secret's `value`) by [`REDACTED`].
pub fn redact(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(text) => *text = redact_text(text, secrets),
        Value::Array(items) => items.iter_mut().for_each(|item| redact(item, secrets)),
        Value::Object(map) => {
            let is_secret = ["id", "value", "source"].iter().all(|k| map.contains_key(*k));
            for (key, item) in map.iter_mut() {
                if SENSITIVE_KEYS.contains(&key.to_ascii_lowercase().as_str()) || (is_secret && key == "value") {
                    *item = Value::String(REDACTED.into());
                } else {
                    redact(item, secrets);
                }
            }
        }
        _ => {}
    }
}

/// `text` with every secret (longest first) replaced.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    sorted.iter().fold(text.to_owned(), |acc, secret| acc.replace(secret.as_str(), REDACTED))
}

/// The template as a Dockerfile (a Dockerfile build prints its file unchanged).
pub fn dockerfile(prepared: &Prepared) -> String {
    let request = &prepared.request;
    if let Some(text) = &request.dockerfile {
        return redact_text(text, &prepared.secrets);
    }
    let mut lines = vec![format!("FROM {}", request.base_image.as_deref().unwrap_or("ubuntu:22.04"))];
    lines.extend(prepared.flags.iter().map(StepFlag::dockerfile_line));
    for (key, value) in &request.build_envs {
        lines.push(format!("ENV {key}={value}"));
    }
    if let Some(command) = &request.start_cmd {
        let quoted = serde_json::to_string(command).unwrap_or_default();
        lines.push(format!("CMD [\"sh\", \"-c\", {quoted}]"));
    }
    redact_text(&(lines.join("\n") + "\n"), &prepared.secrets)
}
