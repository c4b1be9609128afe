-- 0008: webhooks. Endpoints a team registers, the outbox of events (written in the same
-- transaction that completes or fails a video), one delivery per event and endpoint, and a log
-- of every attempt. Signing secrets are stored only encrypted (secret_sealed, Fernet).

CREATE TABLE webhook_endpoints (
    id                          TEXT PRIMARY KEY,
    team_id                     TEXT NOT NULL REFERENCES teams (id),
    name                        TEXT NOT NULL,
    url                         TEXT NOT NULL,
    -- Comma separated, e.g. "video.completed,video.failed".
    event_types                 TEXT NOT NULL,
    secret_sealed               TEXT NOT NULL,
    secret_hint                 TEXT NOT NULL,
    previous_secret_sealed      TEXT,
    previous_secret_expires_at  REAL,
    -- enabled | disabled
    status                      TEXT NOT NULL DEFAULT 'enabled',
    disabled_reason             TEXT,
    consecutive_failures        INTEGER NOT NULL DEFAULT 0,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);

CREATE INDEX webhook_endpoints_team ON webhook_endpoints (team_id, id);

-- The outbox: one row per video event, the exact body every retry sends and signs.
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL,
    type        TEXT NOT NULL,
    video_id    TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (video_id, type)
);

-- One event on its way to one endpoint; the id is the webhook-id header (same on every retry).
-- created_at opens the delivery window (webhooks.max_age_hours); a manual re-send reopens it.
CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    event_id          TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- pending | delivered | failed
    status            TEXT NOT NULL DEFAULT 'pending',
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    next_attempt_at   REAL,
    delivered_at      REAL,
    last_status_code  INTEGER,
    last_error        TEXT,
    lease_owner       TEXT,
    locked_until      REAL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id       TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL,
    started_at        REAL NOT NULL,
    duration_seconds  REAL NOT NULL,
    -- delivered | retry | failed
    outcome           TEXT NOT NULL,
    status_code       INTEGER,
    error             TEXT
);

CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
