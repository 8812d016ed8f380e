-- Template warm pools: per-tenant sets of started, idle sandboxes of one built template that sandbox
-- creates can claim instead of starting a cold one.
CREATE TABLE warm_pools (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    template_ref TEXT NOT NULL,
    template_id TEXT NOT NULL,
    min_ready INTEGER NOT NULL,
    max_ready INTEGER NOT NULL,
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    disk_mb INTEGER,
    state TEXT NOT NULL,
    idle_timeout_seconds INTEGER,
    checkout_policy TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    enabled_at TEXT,
    disabled_at TEXT,
    drain_requested_at TEXT,
    last_reconciled_at TEXT,
    UNIQUE (tenant_id, name)
);

-- The pool a sandbox was started for (NULL: a plain sandbox), and whether a create has claimed it.
-- Unclaimed pool sandboxes belong to the pool, not to the tenant's visible sandboxes.
ALTER TABLE sandboxes ADD COLUMN warm_pool_id TEXT;
ALTER TABLE sandboxes ADD COLUMN pool_claimed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sandboxes_warm_pool ON sandboxes (warm_pool_id, pool_claimed, state);
