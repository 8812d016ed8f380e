//! Errors of the store.

use std::path::PathBuf;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening the database failed.
    #[error("opening the store at {path} failed")]
    Open {
        /// Database file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("migrating the store failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query `{operation}` failed")]
    Query {
        /// What the query was for.
        operation: &'static str,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// A stored row could not be decoded.
    #[error("stored row of sandbox {id} is corrupt: {reason}")]
    Corrupt {
        /// Row id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// Maps a sqlx error to [`StoreError::Query`] for `operation`.
pub fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { operation, source }
}
