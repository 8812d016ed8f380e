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
    #[error("stored row {id} is corrupt: {reason}")]
    Corrupt {
        /// Row id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A state change the sandbox state machine does not allow was asked for (a bug in the caller).
    #[error("sandbox {id} cannot go from {from} to {to}")]
    IllegalTransition {
        /// Sandbox id.
        id: String,
        /// The state it would leave.
        from: &'static str,
        /// The state it would enter.
        to: &'static str,
    },
}

/// Maps a sqlx error to [`StoreError::Query`] for `operation`.
pub fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { operation, source }
}

/// Column `name` of the stored row of `id`: a missing column or a value of another type is a
/// [`StoreError::Corrupt`] row, never a panic (what `Row::get` would do).
pub fn column<'r, T>(row: &'r sqlx::sqlite::SqliteRow, name: &str, id: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    use sqlx::Row;
    row.try_get(name)
        .map_err(|error| StoreError::Corrupt { id: id.to_owned(), reason: format!("column {name}: {error}") })
}
