//! Exit statuses and the error report: `error:` with the cause chain, `hint:` lines, and the split
//! between user errors (1) and internal errors (2). A command's own exit code passes through.

use std::process::ExitCode;

use nullspace_client::ClientError;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success,
    /// The user's input, configuration or environment is at fault (or a check said no).
    Failure,
    /// Something broke on our side or the server's.
    Error,
    /// The exit code of a command run in a sandbox.
    Child(i32),
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::Error => ExitCode::from(2),
            ExitStatus::Child(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        }
    }
}

/// An error caused by the user's input, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

impl UserError {
    /// A user error with a hint.
    pub fn new(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self { message: message.into(), hint: hint.map(str::to_owned) }
    }
}

/// Prints `error` to stderr (or as JSON on stdout with `--json`) and picks the exit status.
pub fn report(error: &anyhow::Error, json: bool) -> ExitStatus {
    let client = error.chain().find_map(|cause| cause.downcast_ref::<ClientError>());
    // A UserError attached as context is only visible to `downcast_ref` on the error itself.
    let user =
        error.downcast_ref::<UserError>().or_else(|| error.chain().find_map(|cause| cause.downcast_ref::<UserError>()));
    let hint = user.and_then(|u| u.hint.clone()).or_else(|| client.and_then(ClientError::hint));
    let is_user = user.is_some() || client.is_some_and(ClientError::is_user_error);
    let messages = chain_messages(error);
    if json {
        let body = serde_json::json!({"error": {
            "code": client.map(ClientError::code).unwrap_or(if is_user { "invalid_request" } else { "internal_error" }),
            "message": messages.join(": "),
            "status": client.and_then(ClientError::status),
            "hint": hint,
        }});
        println!("{body}");
    } else {
        eprintln!("{}", render(&messages, hint.as_deref()));
    }
    if is_user {
        ExitStatus::Failure
    } else {
        ExitStatus::Error
    }
}

/// `error: top` + `  Caused by: …` lines + `hint: …`.
fn render(messages: &[String], hint: Option<&str>) -> String {
    let mut out = String::new();
    for (index, message) in messages.iter().enumerate() {
        if index == 0 {
            out.push_str(&format!("error: {message}"));
        } else {
            out.push_str(&format!("\n  Caused by: {message}"));
        }
    }
    if let Some(hint) = hint {
        out.push_str(&format!("\n\nhint: {hint}"));
    }
    out
}

/// The messages of the chain, skipping a cause already contained in the message before it.
fn chain_messages(error: &anyhow::Error) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if messages.last().is_some_and(|last| last.contains(&text)) || text.is_empty() {
            continue;
        }
        messages.push(text);
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_chain_and_the_hint() {
        let error =
            anyhow::Error::new(ClientError::from_response(401, br#"{"error":"bad key","code":"unauthorized"}"#))
                .context("could not list sandboxes");
        let text = render(&chain_messages(&error), Some("check it"));
        assert_eq!(
            text,
            "error: could not list sandboxes\n  Caused by: bad key (code unauthorized, HTTP 401)\n\nhint: check it"
        );
    }

    #[test]
    fn classifies_user_and_internal_errors() {
        let unauthorized = anyhow::Error::new(ClientError::from_response(401, b"{}"));
        assert_eq!(report(&unauthorized, true), ExitStatus::Failure);
        let internal = anyhow::Error::new(ClientError::from_response(500, b"oops"));
        assert_eq!(report(&internal, true), ExitStatus::Error);
        let user = anyhow::Error::new(UserError::new("bad input", Some("fix it")));
        assert_eq!(report(&user, true), ExitStatus::Failure);
    }

    #[test]
    fn user_context_over_an_api_error_keeps_both() {
        let error = anyhow::Error::new(ClientError::from_response(404, br#"{"error":"gone","code":"not_found"}"#))
            .context(UserError::new("no volume `x`", Some("list them")));
        assert_eq!(report(&error, true), ExitStatus::Failure);
        let user = error.downcast_ref::<UserError>().unwrap();
        assert_eq!(user.hint.as_deref(), Some("list them"));
    }

    #[test]
    fn child_codes_pass_through() {
        assert_eq!(ExitCode::from(ExitStatus::Child(42)), ExitCode::from(42));
    }
}
