//! `UploadError`: a terminal or retryable failure of an upload session, carried to the client as
//! `{"error", "code": "file_upload_error", "error_detail": UploadFailureDetail}` with its HTTP status.

use nullspace_types::upload_api::{UploadFailureDetail, UploadFailureReason};
use serde_json::Value;

/// An upload failure with the client's reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct UploadError {
    /// The client's failure reason.
    pub reason: UploadFailureReason,
    /// What failed and what to do next.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// Session concerned.
    pub upload_id: Option<String>,
    /// Path concerned.
    pub path: Option<String>,
    /// Part concerned.
    pub part_number: Option<u64>,
    /// Expected/actual facts.
    pub details: Option<Value>,
}

impl UploadError {
    /// A failure for `reason` with `message`.
    pub fn new(reason: UploadFailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            retryable: matches!(
                reason,
                UploadFailureReason::InvalidPartChecksum
                    | UploadFailureReason::PartSizeMismatch
                    | UploadFailureReason::MissingParts
                    | UploadFailureReason::InsufficientStagingSpace
            ),
            upload_id: None,
            path: None,
            part_number: None,
            details: None,
        }
    }

    /// Names the session.
    pub fn upload(mut self, upload_id: &str) -> Self {
        self.upload_id = Some(upload_id.to_owned());
        self
    }

    /// Names the path.
    pub fn path(mut self, path: &str) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    /// Names the part.
    pub fn part(mut self, part_number: u64) -> Self {
        self.part_number = Some(part_number);
        self
    }

    /// Adds facts.
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// HTTP status of the failure.
    pub fn status(&self) -> u16 {
        use UploadFailureReason as R;
        match self.reason {
            R::InsufficientStagingSpace | R::SizeLimitExceeded => 413,
            R::UploadExpired | R::UploadAborted => 410,
            R::TargetConflict | R::UploadAlreadyCompleted | R::MissingParts => 409,
            R::InvalidPartChecksum
            | R::PartOutOfRange
            | R::PartSizeMismatch
            | R::WholeChecksumMismatch
            | R::DirectoryExtractInvalidPath
            | R::DirectoryExtractInvalidSymlink
            | R::DirectoryExtractUnsupportedEntry => 400,
        }
    }

    /// The `error_detail` object.
    pub fn detail(&self) -> UploadFailureDetail {
        UploadFailureDetail {
            reason: self.reason,
            message: self.message.clone(),
            retryable: self.retryable,
            upload_id: self.upload_id.clone(),
            path: self.path.clone(),
            part_number: self.part_number,
            details: self.details.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_reason() {
        let error = UploadError::new(UploadFailureReason::UploadExpired, "gone").upload("up_1");
        assert_eq!(error.status(), 410);
        assert!(!error.retryable);
        let detail = serde_json::to_value(error.detail()).unwrap();
        assert_eq!(detail["reason"], "upload_expired");
        assert_eq!(detail["upload_id"], "up_1");
        assert_eq!(UploadError::new(UploadFailureReason::PartSizeMismatch, "x").status(), 400);
    }
}
