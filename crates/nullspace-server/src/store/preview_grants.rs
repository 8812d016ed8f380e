//! Preview grant rows: who may reach a sandbox port through the preview proxy, until when, and how much it
//! was used. Only the SHA-256 of a grant's token is stored.

use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult};
use crate::clock;

/// A stored preview grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewGrantRecord {
    /// `pvg_…` id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Sandbox the grant opens.
    pub sandbox_id: String,
    /// Port inside the sandbox.
    pub port: u16,
    /// `direct` (query/cookie token) or `proxy` (header token).
    pub auth_mode: String,
    /// SHA-256 (hex) of the token's secret.
    pub token_hash: String,
    /// Who created it (`api_key`).
    pub principal_kind: String,
    /// Principal id (the tenant).
    pub principal_id: Option<String>,
    /// RFC 3339.
    pub issued_at: String,
    /// Expiry, Unix ms.
    pub expires_at_ms: i64,
    /// RFC 3339, set once revoked.
    pub revoked_at: Option<String>,
    /// RFC 3339.
    pub first_used_at: Option<String>,
    /// RFC 3339.
    pub last_used_at: Option<String>,
    /// Authorized proxy uses (HTTP requests plus WebSocket connections).
    pub use_count: i64,
    /// HTTP requests forwarded.
    pub http_request_count: i64,
    /// Upgraded (WebSocket) connections forwarded.
    pub websocket_connection_count: i64,
    /// Bytes from clients to the sandbox.
    pub bytes_in_count: i64,
    /// Bytes from the sandbox to clients.
    pub bytes_out_count: i64,
    /// Error code of the last failed use.
    pub last_error_code: Option<String>,
    /// RFC 3339 time of the last failed use.
    pub last_error_at: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
}

/// Usage accumulated in memory and added to a grant's counters in one write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewUsage {
    /// Uses.
    pub uses: i64,
    /// HTTP requests.
    pub http_requests: i64,
    /// WebSocket connections.
    pub websocket_connections: i64,
    /// Bytes in.
    pub bytes_in: i64,
    /// Bytes out.
    pub bytes_out: i64,
    /// Earliest use in this batch (RFC 3339).
    pub first_used_at: Option<String>,
    /// Latest use in this batch (RFC 3339).
    pub last_used_at: Option<String>,
    /// Latest error in this batch: code and RFC 3339 time.
    pub last_error: Option<(String, String)>,
}

impl PreviewUsage {
    /// Adds `other` (a later batch) to this one.
    pub fn merge(&mut self, other: PreviewUsage) {
        self.uses += other.uses;
        self.http_requests += other.http_requests;
        self.websocket_connections += other.websocket_connections;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        if self.first_used_at.is_none() {
            self.first_used_at = other.first_used_at;
        }
        if other.last_used_at.is_some() {
            self.last_used_at = other.last_used_at;
        }
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
    }
}

const COLUMNS: &str =
    "id, tenant_id, sandbox_id, port, auth_mode, token_hash, principal_kind, principal_id, issued_at, \
                       expires_at_ms, revoked_at, first_used_at, last_used_at, use_count, http_request_count, \
                       websocket_connection_count, bytes_in_count, bytes_out_count, last_error_code, last_error_at, \
                       updated_at";

fn decode(row: &SqliteRow) -> StoreResult<PreviewGrantRecord> {
    let id: String = column(row, "id", "?")?;
    let port = u16::try_from(column::<i64>(row, "port", &id)?)
        .map_err(|error| StoreError::Corrupt { id: id.clone(), reason: format!("preview grant port: {error}") })?;
    Ok(PreviewGrantRecord {
        tenant_id: column(row, "tenant_id", &id)?,
        sandbox_id: column(row, "sandbox_id", &id)?,
        port,
        auth_mode: column(row, "auth_mode", &id)?,
        token_hash: column(row, "token_hash", &id)?,
        principal_kind: column(row, "principal_kind", &id)?,
        principal_id: column(row, "principal_id", &id)?,
        issued_at: column(row, "issued_at", &id)?,
        expires_at_ms: column(row, "expires_at_ms", &id)?,
        revoked_at: column(row, "revoked_at", &id)?,
        first_used_at: column(row, "first_used_at", &id)?,
        last_used_at: column(row, "last_used_at", &id)?,
        use_count: column(row, "use_count", &id)?,
        http_request_count: column(row, "http_request_count", &id)?,
        websocket_connection_count: column(row, "websocket_connection_count", &id)?,
        bytes_in_count: column(row, "bytes_in_count", &id)?,
        bytes_out_count: column(row, "bytes_out_count", &id)?,
        last_error_code: column(row, "last_error_code", &id)?,
        last_error_at: column(row, "last_error_at", &id)?,
        updated_at: column(row, "updated_at", &id)?,
        id,
    })
}

impl Store {
    /// Inserts a new grant.
    pub async fn insert_preview_grant(&self, grant: &PreviewGrantRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO preview_grants ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19, $20, $21)"
        ))
        .bind(&grant.id)
        .bind(&grant.tenant_id)
        .bind(&grant.sandbox_id)
        .bind(i64::from(grant.port))
        .bind(&grant.auth_mode)
        .bind(&grant.token_hash)
        .bind(&grant.principal_kind)
        .bind(&grant.principal_id)
        .bind(&grant.issued_at)
        .bind(grant.expires_at_ms)
        .bind(&grant.revoked_at)
        .bind(&grant.first_used_at)
        .bind(&grant.last_used_at)
        .bind(grant.use_count)
        .bind(grant.http_request_count)
        .bind(grant.websocket_connection_count)
        .bind(grant.bytes_in_count)
        .bind(grant.bytes_out_count)
        .bind(&grant.last_error_code)
        .bind(&grant.last_error_at)
        .bind(&grant.updated_at)
        .execute(&self.pool)
        .await
        .map_err(query("insert preview grant"))?;
        Ok(())
    }

    /// Grant `id`, whoever owns it (the proxy authenticates by token, not by API key).
    pub async fn get_preview_grant(&self, id: &str) -> StoreResult<Option<PreviewGrantRecord>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM preview_grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select preview grant"))?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// Grants of `sandbox_id` owned by `tenant_id`, optionally of one port, oldest first.
    pub async fn list_preview_grants(
        &self,
        tenant_id: &str,
        sandbox_id: &str,
        port: Option<u16>,
    ) -> StoreResult<Vec<PreviewGrantRecord>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM preview_grants WHERE tenant_id = $1 AND sandbox_id = $2 \
             AND ($3 IS NULL OR port = $3) ORDER BY issued_at, id"
        ))
        .bind(tenant_id)
        .bind(sandbox_id)
        .bind(port.map(i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(query("list preview grants"))?
        .iter()
        .map(decode)
        .collect()
    }

    /// Marks grant `id` of `tenant_id`/`sandbox_id` revoked (keeping the first revocation time) and returns
    /// it; `None` when there is no such grant.
    pub async fn revoke_preview_grant(
        &self,
        tenant_id: &str,
        sandbox_id: &str,
        id: &str,
    ) -> StoreResult<Option<PreviewGrantRecord>> {
        let now = clock::now_rfc3339();
        sqlx::query(
            "UPDATE preview_grants SET revoked_at = COALESCE(revoked_at, $1), updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND sandbox_id = $4",
        )
        .bind(&now)
        .bind(id)
        .bind(tenant_id)
        .bind(sandbox_id)
        .execute(&self.pool)
        .await
        .map_err(query("revoke preview grant"))?;
        Ok(self.get_preview_grant(id).await?.filter(|g| g.tenant_id == tenant_id && g.sandbox_id == sandbox_id))
    }

    /// Deletes every grant of `sandbox_id` (its sandbox is gone).
    pub async fn delete_preview_grants_of_sandbox(&self, sandbox_id: &str) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM preview_grants WHERE sandbox_id = $1")
            .bind(sandbox_id)
            .execute(&self.pool)
            .await
            .map_err(query("delete preview grants"))?;
        Ok(result.rows_affected())
    }

    /// Adds `usage` to grant `id`'s counters.
    pub async fn add_preview_usage(&self, id: &str, usage: &PreviewUsage) -> StoreResult<()> {
        let (error_code, error_at) = usage.last_error.clone().unzip();
        sqlx::query(
            "UPDATE preview_grants SET use_count = use_count + $1, http_request_count = http_request_count + $2, \
             websocket_connection_count = websocket_connection_count + $3, bytes_in_count = bytes_in_count + $4, \
             bytes_out_count = bytes_out_count + $5, first_used_at = COALESCE(first_used_at, $6), \
             last_used_at = COALESCE($7, last_used_at), last_error_code = COALESCE($8, last_error_code), \
             last_error_at = COALESCE($9, last_error_at), updated_at = $10 WHERE id = $11",
        )
        .bind(usage.uses)
        .bind(usage.http_requests)
        .bind(usage.websocket_connections)
        .bind(usage.bytes_in)
        .bind(usage.bytes_out)
        .bind(&usage.first_used_at)
        .bind(&usage.last_used_at)
        .bind(error_code)
        .bind(error_at)
        .bind(clock::now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query("add preview grant usage"))?;
        Ok(())
    }

    /// Owner and state of sandbox `id`, whoever owns it (the preview proxy finds sandboxes by host name).
    pub async fn sandbox_owner_and_state(&self, id: &str) -> StoreResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT tenant_id, state FROM sandboxes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select sandbox owner"))?;
        row.as_ref().map(|row| Ok((column(row, "tenant_id", id)?, column(row, "state", id)?))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: &str, tenant_id: &str, sandbox_id: &str, port: u16) -> PreviewGrantRecord {
        PreviewGrantRecord {
            id: id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            sandbox_id: sandbox_id.to_owned(),
            port,
            auth_mode: "direct".to_owned(),
            token_hash: "ab".repeat(32),
            principal_kind: "api_key".to_owned(),
            principal_id: Some(tenant_id.to_owned()),
            issued_at: clock::now_rfc3339(),
            expires_at_ms: clock::now_ms() + 60_000,
            revoked_at: None,
            first_used_at: None,
            last_used_at: None,
            use_count: 0,
            http_request_count: 0,
            websocket_connection_count: 0,
            bytes_in_count: 0,
            bytes_out_count: 0,
            last_error_code: None,
            last_error_at: None,
            updated_at: clock::now_rfc3339(),
        }
    }

    async fn store() -> (tempfile::TempDir, Store, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let alpha = store.ensure_tenant("alpha").await.unwrap().id;
        let beta = store.ensure_tenant("beta").await.unwrap().id;
        (dir, store, alpha, beta)
    }

    #[tokio::test]
    async fn grants_round_trip_and_list_by_tenant_sandbox_and_port() {
        let (_dir, store, alpha, beta) = store().await;
        let a = grant("pvg_a", &alpha, "sb_1", 8080);
        let b = grant("pvg_b", &alpha, "sb_1", 9000);
        let c = grant("pvg_c", &beta, "sb_1", 8080);
        for g in [&a, &b, &c] {
            store.insert_preview_grant(g).await.unwrap();
        }
        assert_eq!(store.get_preview_grant("pvg_a").await.unwrap(), Some(a.clone()));
        assert_eq!(store.get_preview_grant("pvg_none").await.unwrap(), None);
        let all: Vec<_> = store.list_preview_grants(&alpha, "sb_1", None).await.unwrap();
        assert_eq!(all.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["pvg_a", "pvg_b"]);
        assert_eq!(store.list_preview_grants(&alpha, "sb_1", Some(9000)).await.unwrap(), vec![b]);
        assert_eq!(store.list_preview_grants(&beta, "sb_1", None).await.unwrap(), vec![c]);
        assert!(store.list_preview_grants(&alpha, "sb_2", None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn revoke_is_scoped_and_keeps_the_first_time() {
        let (_dir, store, alpha, beta) = store().await;
        store.insert_preview_grant(&grant("pvg_a", &alpha, "sb_1", 8080)).await.unwrap();
        assert_eq!(store.revoke_preview_grant(&beta, "sb_1", "pvg_a").await.unwrap(), None);
        assert_eq!(store.revoke_preview_grant(&alpha, "sb_2", "pvg_a").await.unwrap(), None);
        assert_eq!(store.get_preview_grant("pvg_a").await.unwrap().unwrap().revoked_at, None);
        let first = store.revoke_preview_grant(&alpha, "sb_1", "pvg_a").await.unwrap().unwrap();
        let revoked_at = first.revoked_at.clone().expect("revoked");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let again = store.revoke_preview_grant(&alpha, "sb_1", "pvg_a").await.unwrap().unwrap();
        assert_eq!(again.revoked_at, Some(revoked_at));
    }

    #[tokio::test]
    async fn usage_adds_up_and_grants_die_with_their_sandbox() {
        let (_dir, store, alpha, _beta) = store().await;
        store.insert_preview_grant(&grant("pvg_a", &alpha, "sb_1", 8080)).await.unwrap();
        store.insert_preview_grant(&grant("pvg_b", &alpha, "sb_2", 8080)).await.unwrap();
        let mut usage = PreviewUsage {
            uses: 2,
            http_requests: 1,
            websocket_connections: 1,
            bytes_in: 10,
            bytes_out: 100,
            first_used_at: Some("2030-01-01T00:00:00.000Z".into()),
            last_used_at: Some("2030-01-01T00:00:01.000Z".into()),
            last_error: None,
        };
        store.add_preview_usage("pvg_a", &usage).await.unwrap();
        usage.first_used_at = Some("2030-01-02T00:00:00.000Z".into());
        usage.last_used_at = Some("2030-01-02T00:00:01.000Z".into());
        usage.last_error = Some(("port_unreachable".into(), "2030-01-02T00:00:01.000Z".into()));
        store.add_preview_usage("pvg_a", &usage).await.unwrap();
        let a = store.get_preview_grant("pvg_a").await.unwrap().unwrap();
        assert_eq!(
            (a.use_count, a.http_request_count, a.websocket_connection_count, a.bytes_in_count, a.bytes_out_count),
            (4, 2, 2, 20, 200)
        );
        assert_eq!(a.first_used_at.as_deref(), Some("2030-01-01T00:00:00.000Z"));
        assert_eq!(a.last_used_at.as_deref(), Some("2030-01-02T00:00:01.000Z"));
        assert_eq!(a.last_error_code.as_deref(), Some("port_unreachable"));
        assert_eq!(store.delete_preview_grants_of_sandbox("sb_1").await.unwrap(), 1);
        assert_eq!(store.get_preview_grant("pvg_a").await.unwrap(), None);
        assert!(store.get_preview_grant("pvg_b").await.unwrap().is_some());
    }

    #[test]
    fn usage_merges_keep_the_first_and_latest_times() {
        let mut total = PreviewUsage {
            uses: 1,
            first_used_at: Some("t1".into()),
            last_used_at: Some("t1".into()),
            ..Default::default()
        };
        total.merge(PreviewUsage {
            uses: 2,
            bytes_out: 5,
            first_used_at: Some("t2".into()),
            last_used_at: Some("t2".into()),
            last_error: Some(("x".into(), "t2".into())),
            ..Default::default()
        });
        assert_eq!(total.uses, 3);
        assert_eq!(total.bytes_out, 5);
        assert_eq!(total.first_used_at.as_deref(), Some("t1"));
        assert_eq!(total.last_used_at.as_deref(), Some("t2"));
        assert_eq!(total.last_error, Some(("x".into(), "t2".into())));
    }
}
