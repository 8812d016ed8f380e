-- Snapshots (filesystem layers plus the sandbox configuration needed to resume), the layer stack of each
-- sandbox, the paused alias of hibernated sandboxes, and lifecycle events.
ALTER TABLE sandboxes ADD COLUMN layers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sandboxes ADD COLUMN snapshot_id TEXT;

CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    sandbox_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    template TEXT NOT NULL,
    layers TEXT NOT NULL,
    config TEXT NOT NULL,
    metadata TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX snapshots_tenant ON snapshots (tenant_id, deleted);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    sandbox_id TEXT,
    snapshot_id TEXT,
    source_sandbox_id TEXT,
    target_sandbox_id TEXT,
    reason TEXT,
    error_code TEXT,
    error_message TEXT,
    metadata TEXT NOT NULL
);

CREATE INDEX events_tenant ON events (tenant_id, seq);
