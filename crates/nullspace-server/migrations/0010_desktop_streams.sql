-- Managed desktop viewer keys (POST /v1/sandboxes/{id}/desktop/stream/start): one row per key minted, so
-- the viewer page can tell a replaced key from an ended or an unknown one; at most one key of a sandbox is
-- active. The key itself is never stored: key_hash is the SHA-256 (hex) of the key, and key_nonce is the
-- random input from which the server re-derives the key (HMAC under its signing key, data dir
-- signing.key) for GET …/desktop/stream/auth-key. Rows are removed with their sandbox.
CREATE TABLE desktop_streams (
    key_hash TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    key_nonce TEXT NOT NULL,
    view_only BOOLEAN NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT
);

CREATE INDEX desktop_streams_sandbox ON desktop_streams (sandbox_id, created_at);
CREATE UNIQUE INDEX desktop_streams_one_active ON desktop_streams (sandbox_id) WHERE state = 'active';
