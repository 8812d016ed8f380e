-- Persistent volumes (one row per volume, names unique per tenant) and the volumes each sandbox mounts
-- (JSON list of attachments, copied into snapshots' config so resume and fork mount them again).
CREATE TABLE volumes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE UNIQUE INDEX volumes_tenant_name ON volumes (tenant_id, name);

ALTER TABLE sandboxes ADD COLUMN volumes TEXT NOT NULL DEFAULT '[]';
