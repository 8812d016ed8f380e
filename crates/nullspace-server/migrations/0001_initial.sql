-- Tenants, API keys (hashed) and sandboxes. Plain SQL shared by SQLite and PostgreSQL.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE sandboxes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    state TEXT NOT NULL,
    template TEXT NOT NULL,
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    envs TEXT NOT NULL,
    metadata TEXT NOT NULL,
    cwd TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    timeout_ms BIGINT NOT NULL,
    deadline_ms BIGINT NOT NULL,
    timeout_action TEXT NOT NULL,
    idempotency_key TEXT,
    error TEXT
);

CREATE INDEX sandboxes_tenant_state ON sandboxes (tenant_id, state);
CREATE INDEX sandboxes_deadline ON sandboxes (state, deadline_ms);
CREATE UNIQUE INDEX sandboxes_idempotency ON sandboxes (tenant_id, idempotency_key);
