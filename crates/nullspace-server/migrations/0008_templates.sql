-- Templates: one namespace per tenant, built templates (soft-deleted while sandboxes still use them),
-- builds with their log entries, tags and aliases pointing at templates, name claims and the uploaded
-- build-context blobs. Plain SQL shared by SQLite and PostgreSQL.
CREATE TABLE template_namespaces (
    slug TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL UNIQUE REFERENCES tenants(id),
    created_at TEXT NOT NULL
);

CREATE TABLE templates (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    visibility TEXT NOT NULL,
    description TEXT NOT NULL,
    image TEXT NOT NULL,
    build_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);

CREATE INDEX templates_namespace_name ON templates (namespace, name);
CREATE INDEX templates_tenant ON templates (tenant_id);

CREATE TABLE template_builds (
    id TEXT PRIMARY KEY,
    template_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_digest TEXT,
    context_digest TEXT,
    dockerfile_digest TEXT,
    request TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    queued_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    error_detail TEXT,
    failure_phase TEXT,
    cancel_requested_at TEXT,
    cancel_requested_by TEXT,
    cancellation_reason TEXT,
    retry_of_build_id TEXT,
    cache_summary TEXT NOT NULL
);

CREATE INDEX template_builds_template ON template_builds (template_id, created_at);
CREATE INDEX template_builds_status ON template_builds (status);

CREATE TABLE template_build_logs (
    build_id TEXT NOT NULL,
    log_offset BIGINT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (build_id, log_offset)
);

CREATE TABLE template_tags (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    tag TEXT NOT NULL,
    template_id TEXT NOT NULL,
    build_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (namespace, name, tag)
);

CREATE INDEX template_tags_template ON template_tags (template_id);

CREATE TABLE template_aliases (
    alias_ref TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    template_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE template_name_claims (
    token TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    canonical_ref TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE template_blobs (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    blob_id TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, blob_id)
);
