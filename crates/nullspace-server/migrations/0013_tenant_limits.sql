-- Per-tenant quotas set by the operator (`nullspace tenant set-limits`); NULL: no limit. A tenant
-- without a row has no limits.
CREATE TABLE tenant_limits (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    max_sandboxes BIGINT,
    max_vcpus BIGINT,
    max_memory_mb BIGINT,
    max_disk_mb BIGINT,
    max_volumes BIGINT,
    updated_at TEXT NOT NULL
);
