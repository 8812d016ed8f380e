-- Preview grants: who may reach which port of which sandbox through the preview proxy. Only the SHA-256
-- of a grant's token is stored; the token itself is shown once, in the response that created it.
CREATE TABLE preview_grants (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    sandbox_id TEXT NOT NULL,
    port INTEGER NOT NULL,
    auth_mode TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    principal_id TEXT,
    issued_at TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at TEXT,
    first_used_at TEXT,
    last_used_at TEXT,
    use_count BIGINT NOT NULL DEFAULT 0,
    http_request_count BIGINT NOT NULL DEFAULT 0,
    websocket_connection_count BIGINT NOT NULL DEFAULT 0,
    bytes_in_count BIGINT NOT NULL DEFAULT 0,
    bytes_out_count BIGINT NOT NULL DEFAULT 0,
    last_error_code TEXT,
    last_error_at TEXT,
    updated_at TEXT NOT NULL
);

CREATE INDEX preview_grants_sandbox ON preview_grants (sandbox_id, port);
