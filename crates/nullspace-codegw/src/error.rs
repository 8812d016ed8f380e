//! `GatewayError`, the one error type of the gateway's request handling, and its single mapping to the
//! protocol's error envelope (`{"error": message, "code": code}`) and HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::{ErrorBody, ErrorCode};

/// Result of gateway operations.
pub type GatewayResult<T> = Result<T, GatewayError>;

/// Everything a request to the gateway can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request body, query or path cannot be used.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong and what to send instead.
        message: String,
    },
    /// A language the API does not know.
    #[error("unknown language {language:?}; use one of: {}", available.join(", "))]
    UnknownLanguage {
        /// The language asked for.
        language: String,
        /// The languages this gateway has kernels for.
        available: Vec<String>,
    },
    /// A language the API knows but no kernel here serves.
    #[error("no kernel for {language} is installed here (kernelspecs found: {}); languages available: {}", installed.join(", "), available.join(", "))]
    LanguageUnavailable {
        /// The canonical language.
        language: String,
        /// Names of the kernelspecs found.
        installed: Vec<String>,
        /// The languages this gateway has kernels for.
        available: Vec<String>,
    },
    /// A working directory the API refuses.
    #[error("cwd is reserved: {cwd} is inside /workspace/.nullspace, the gateway's own state; use another directory")]
    CwdReserved {
        /// The cwd asked for.
        cwd: String,
    },
    /// A context id that names no context.
    #[error("code context {id} not found; list contexts with GET /code/contexts")]
    ContextNotFound {
        /// The id asked for.
        id: String,
    },
    /// An artifact id that names no artifact.
    #[error("artifact {id} not found; list artifacts with GET /code/artifacts")]
    ArtifactNotFound {
        /// The id asked for.
        id: String,
    },
    /// A run id that names no run.
    #[error("code run {id} not found; list runs with GET /code/runs")]
    RunNotFound {
        /// The id asked for.
        id: String,
    },
    /// A kernel could not be started.
    #[error("{message}")]
    KernelUnavailable {
        /// Why, with the kernel's stderr tail.
        message: String,
    },
    /// The default python kernel is not running code yet.
    #[error("{message}")]
    NotReady {
        /// What the gateway is waiting for.
        message: String,
    },
    /// No route matches the request.
    #[error("no code route {method} {path}; see the protocol map for the code interpreter routes")]
    UnknownRoute {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// A file of the gateway's state could not be used.
    #[error("cannot {what}")]
    Storage {
        /// What the gateway was doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl GatewayError {
    /// An `invalid_request` error with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest { message: message.into() }
    }

    /// A failed state operation.
    pub fn storage(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Storage { what: what.into(), source }
    }

    /// The HTTP status and envelope of this error: the one mapping to the protocol.
    pub fn envelope(&self) -> (StatusCode, ErrorBody) {
        let (status, code) = match self {
            Self::InvalidRequest { .. } | Self::CwdReserved { .. } => (400, ErrorCode::InvalidRequest.as_str()),
            Self::UnknownLanguage { .. } => (400, "unknown_language"),
            Self::LanguageUnavailable { .. } => (400, "language_unavailable"),
            Self::ContextNotFound { .. } => (404, "context_not_found"),
            Self::ArtifactNotFound { .. } => (404, "artifact_not_found"),
            Self::RunNotFound { .. } => (404, "run_not_found"),
            Self::UnknownRoute { .. } => (404, ErrorCode::NotFound.as_str()),
            Self::KernelUnavailable { .. } => (503, "kernel_unavailable"),
            Self::NotReady { .. } => (503, ErrorCode::SandboxNotReady.as_str()),
            Self::Storage { .. } => (500, ErrorCode::Internal.as_str()),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = ErrorBody::new(ErrorCode::Internal, self.message());
        body.code = code.to_owned();
        (status, body)
    }

    /// The full message: this error and its source, lowercase.
    pub fn message(&self) -> String {
        match std::error::Error::source(self) {
            Some(source) => format!("{self}: {}", source.to_string().to_lowercase()),
            None => self.to_string(),
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, body) = self.envelope();
        if matches!(self, Self::Storage { .. } | Self::KernelUnavailable { .. }) {
            tracing::warn!(error = %body.error, code = %body.code, "request failed");
        } else {
            tracing::debug!(error = %body.error, code = %body.code, "request failed");
        }
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_codes_end_in_not_found_so_the_client_raises_not_found_error() {
        for error in [
            GatewayError::ContextNotFound { id: "ctx_1".into() },
            GatewayError::ArtifactNotFound { id: "art_1".into() },
            GatewayError::RunNotFound { id: "run_1".into() },
        ] {
            let (status, body) = error.envelope();
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert!(body.code.ends_with("_not_found"), "{}", body.code);
        }
    }

    #[test]
    fn reserved_cwds_say_so_in_the_message() {
        let (status, body) = GatewayError::CwdReserved { cwd: "/workspace/.nullspace".into() }.envelope();
        assert_eq!((status.as_u16(), body.code.as_str()), (400, "invalid_request"));
        assert!(body.error.contains("cwd is reserved"));
    }

    #[test]
    fn unknown_languages_list_the_available_ones() {
        let error =
            GatewayError::UnknownLanguage { language: "cobol".into(), available: vec!["python".into(), "bash".into()] };
        let (status, body) = error.envelope();
        assert_eq!((status.as_u16(), body.code.as_str()), (400, "unknown_language"));
        assert!(body.error.contains("python, bash"), "{}", body.error);
    }
}
