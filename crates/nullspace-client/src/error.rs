//! `ClientError`: what can go wrong talking to the API, the parsing of the error envelope, and the hints
//! a command-line front end shows next to each error.

use nullspace_types::ErrorBody;

/// Errors of [`crate::Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-2xx status and an error envelope.
    #[error("{message} (code {code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code (`unknown` when the body was not an envelope).
        code: String,
        /// Message of the envelope, or the raw body.
        message: String,
    },
    /// The request could not be sent or its answer not received.
    #[error("{method} {url} failed")]
    Transport {
        /// HTTP method.
        method: String,
        /// Full URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx answer that is not the expected JSON.
    #[error("unexpected response from {url}")]
    Decode {
        /// Full URL.
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The request needs an API key and none was configured.
    #[error("no API key configured")]
    MissingApiKey,
    /// The configured base URL is not a URL.
    #[error("invalid API URL {url:?}")]
    InvalidUrl {
        /// What was configured.
        url: String,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },
    /// The WebSocket could not be opened or broke.
    #[error("websocket {url} failed")]
    WebSocket {
        /// Full URL.
        url: String,
        /// The WebSocket error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server reported an error on a stream, or broke the stream's protocol.
    #[error("streaming error: {message}")]
    Stream {
        /// What went wrong.
        message: String,
    },
    /// A local file could not be read for an upload.
    #[error("could not read {path}")]
    ReadLocal {
        /// Local path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A local file could not be written for a download.
    #[error("could not write {path}")]
    WriteLocal {
        /// Local path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A download's local destination exists and may not be replaced.
    #[error("local destination {path} already exists")]
    LocalExists {
        /// Local path.
        path: String,
    },
    /// No local destination follows from the remote path.
    #[error("{remote} has no file name to download to")]
    NoLocalName {
        /// The remote path.
        remote: String,
    },
    /// A downloaded directory archive holds something that may not be extracted.
    #[error("refusing to extract the downloaded archive: {message}")]
    Archive {
        /// What is wrong with it.
        message: String,
    },
}

impl ClientError {
    /// Builds the error of a non-2xx answer from its status and body. Accepts the flat envelope
    /// `{"error": msg, "code": code}`, the nested `{"error": {"message", "code"}}`, and any other body
    /// (code `unknown`, message = body text).
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body).trim().to_owned();
        let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
        let (code, message) = match parsed.as_ref().and_then(envelope_fields) {
            Some(fields) => fields,
            None if text.is_empty() => ("unknown".to_owned(), format!("HTTP {status}")),
            None => ("unknown".to_owned(), text),
        };
        Self::Api { status, code, message }
    }

    /// Stable code: the API's code, or a client-side one (`transport_error`, `invalid_response`, …).
    pub fn code(&self) -> &str {
        match self {
            Self::Api { code, .. } => code,
            Self::Transport { .. } => "transport_error",
            Self::Decode { .. } => "invalid_response",
            Self::MissingApiKey => "missing_api_key",
            Self::InvalidUrl { .. } => "invalid_request",
            Self::WebSocket { .. } => "websocket_error",
            Self::Stream { .. } => "websocket_error",
            Self::ReadLocal { .. } | Self::WriteLocal { .. } | Self::LocalExists { .. } | Self::NoLocalName { .. } => {
                "invalid_request"
            }
            Self::Archive { .. } => "invalid_response",
        }
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server could not be reached at all (refused, unresolvable, timed out connecting).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Transport { source, .. } => source.is_connect() || source.is_timeout(),
            Self::WebSocket { source, .. } => {
                matches!(**source, tokio_tungstenite::tungstenite::Error::Io(_))
            }
            _ => false,
        }
    }

    /// Whether the caller (input, configuration, a missing object) is at fault rather than the server.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Api { status, .. } => (400..500).contains(status) || *status == 501,
            Self::MissingApiKey
            | Self::InvalidUrl { .. }
            | Self::ReadLocal { .. }
            | Self::WriteLocal { .. }
            | Self::LocalExists { .. }
            | Self::NoLocalName { .. } => true,
            _ => self.is_unreachable(),
        }
    }

    /// What the user can do about it, if there is something obvious.
    pub fn hint(&self) -> Option<String> {
        if self.is_unreachable() {
            return Some("is the server running? start it with `nullspace server`, or set NULLSPACE_API_URL".into());
        }
        match self {
            Self::LocalExists { .. } => return Some("pass --force to replace it, or choose another local path".into()),
            Self::NoLocalName { .. } => return Some("name the local destination explicitly".into()),
            _ => {}
        }
        let hint = match self.code() {
            "missing_api_key" => {
                "set NULLSPACE_API_KEY, or put `api_key` in ~/.config/nullspace/config.json (`nullspace server` writes it)"
            }
            "unauthorized" | "unauthenticated" => "check NULLSPACE_API_KEY or ~/.config/nullspace/config.json",
            "sandbox_not_found" => "list your sandboxes with `nullspace sandbox list`",
            "template_not_found" => "list the templates with `nullspace template list`",
            "warm_pool_unavailable" => {
                "no ready sandbox in the pool: create with --warm-pool-mode prefer, or wait with `nullspace template warm-pool wait ID`"
            }
            "volume_busy" => "kill the sandboxes that mount it (`nullspace sandbox kill <ID>`), then try again",
            "volume_read_only" => "the volume is mounted read-only here; write through `nullspace volume write`",
            "file_not_found" => {
                "check the path; list its directory with `nullspace sandbox file list` or `nullspace volume ls-files`"
            }
            "sandbox_not_ready" => "wait until the sandbox is running (`nullspace sandbox get <ID>`)",
            "capacity_exceeded" => "kill sandboxes you no longer need (`nullspace sandbox kill <ID>`)",
            "quota_exceeded" => {
                "kill sandboxes or delete volumes you no longer need, or ask the operator to raise the limit (`nullspace tenant set-limits`)"
            }
            "rate_limit_exceeded" => "slow down: this API key sent more requests than the server's --rate-limit allows",
            "payload_too_large" => "send less per request: upload large files with `nullspace sandbox file upload`",
            "not_implemented" | "feature_unavailable" => "this server does not offer that feature",
            _ if self.status() == Some(401) => "check NULLSPACE_API_KEY or ~/.config/nullspace/config.json",
            _ => return None,
        };
        Some(hint.to_owned())
    }
}

/// `(code, message)` of a flat or nested envelope.
fn envelope_fields(value: &serde_json::Value) -> Option<(String, String)> {
    if let Ok(body) = serde_json::from_value::<ErrorBody>(value.clone()) {
        return Some((body.code, body.error));
    }
    let nested = value.get("error")?.as_object()?;
    let top_code = value.get("code").and_then(|c| c.as_str());
    let code = nested.get("code").and_then(|c| c.as_str()).or(top_code).unwrap_or("unknown");
    let message = nested.get("message").and_then(|m| m.as_str()).unwrap_or_default();
    Some((code.to_owned(), message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> (u16, String, String) {
        match ClientError::from_response(status, body.as_bytes()) {
            ClientError::Api { status, code, message } => (status, code, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_the_flat_envelope() {
        let parsed = api(404, r#"{"error":"sandbox sb_x not found","code":"sandbox_not_found","retryable":false}"#);
        assert_eq!(parsed, (404, "sandbox_not_found".into(), "sandbox sb_x not found".into()));
    }

    #[test]
    fn parses_the_nested_envelope() {
        let parsed = api(409, r#"{"error":{"message":"busy","code":"conflict"},"code":"ignored"}"#);
        assert_eq!(parsed, (409, "conflict".into(), "busy".into()));
        let parsed = api(409, r#"{"error":{"message":"busy"},"code":"conflict"}"#);
        assert_eq!(parsed.1, "conflict");
    }

    #[test]
    fn non_json_bodies_become_unknown() {
        assert_eq!(api(502, "Bad Gateway\n"), (502, "unknown".into(), "Bad Gateway".into()));
        assert_eq!(api(500, ""), (500, "unknown".into(), "HTTP 500".into()));
        assert_eq!(api(400, r#"["x"]"#).1, "unknown");
    }

    #[test]
    fn hints_and_classes_follow_the_code() {
        let unauthorized = ClientError::from_response(401, br#"{"error":"bad key","code":"unauthorized"}"#);
        assert!(unauthorized.hint().unwrap().contains("NULLSPACE_API_KEY"));
        assert!(unauthorized.is_user_error());
        let internal = ClientError::from_response(500, br#"{"error":"boom","code":"internal_error"}"#);
        assert!(!internal.is_user_error());
        assert_eq!(internal.hint(), None);
        assert!(ClientError::MissingApiKey.hint().unwrap().contains("NULLSPACE_API_KEY"));
        assert_eq!(unauthorized.to_string(), "bad key (code unauthorized, HTTP 401)");
    }
}
