-- Lifecycle webhooks, their deliveries (one per webhook and event) and every delivery attempt. Times the
-- worker compares (`next_attempt_ms`) are Unix milliseconds; times shown to clients are RFC 3339 text.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    url TEXT NOT NULL,
    operations TEXT NOT NULL,
    signing_secret TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_delivery_at TEXT,
    last_delivery_status TEXT,
    last_error TEXT
);

CREATE INDEX webhooks_tenant ON webhooks (tenant_id, enabled);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    delivery_status TEXT NOT NULL,
    attempt_count INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT,
    last_attempt_at TEXT,
    last_response_status INTEGER,
    last_error TEXT
);

CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivery_status, next_attempt_ms);
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (webhook_id, created_ms);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    attempt_number INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    response_status INTEGER,
    error_code TEXT,
    error_message TEXT
);

CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt_number);
