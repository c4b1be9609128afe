-- 0008: webhooks. Mirrors sqlite/0008. Endpoints a team registers, the outbox of events (written in the same
-- transaction that completes or fails a video), one delivery per event and endpoint, and a log
-- of every attempt. Signing secrets are stored only encrypted (secret_sealed, Fernet).

CREATE TABLE webhook_endpoints (
    id                          TEXT COLLATE "C" PRIMARY KEY,
    team_id                     TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    name                        TEXT NOT NULL,
    url                         TEXT NOT NULL,
    -- Comma separated, e.g. "video.completed,video.failed".
    event_types                 TEXT COLLATE "C" NOT NULL,
    secret_sealed               TEXT NOT NULL,
    secret_hint                 TEXT NOT NULL,
    previous_secret_sealed      TEXT,
    previous_secret_expires_at  DOUBLE PRECISION,
    -- enabled | disabled
    status                      TEXT COLLATE "C" NOT NULL DEFAULT 'enabled',
    disabled_reason             TEXT,
    consecutive_failures        BIGINT NOT NULL DEFAULT 0,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);

CREATE INDEX webhook_endpoints_team ON webhook_endpoints (team_id, id);

-- The outbox: one row per video event, the exact body every retry sends and signs.
CREATE TABLE webhook_events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL,
    type        TEXT COLLATE "C" NOT NULL,
    video_id    TEXT COLLATE "C" NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (video_id, type)
);

-- One event on its way to one endpoint; the id is the webhook-id header (same on every retry).
-- created_at opens the delivery window (webhooks.max_age_hours); a manual re-send reopens it.
CREATE TABLE webhook_deliveries (
    id                TEXT COLLATE "C" PRIMARY KEY,
    event_id          TEXT COLLATE "C" NOT NULL REFERENCES webhook_events (id),
    endpoint_id       TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- pending | delivered | failed
    status            TEXT COLLATE "C" NOT NULL DEFAULT 'pending',
    attempts          BIGINT NOT NULL DEFAULT 0,
    created_at        DOUBLE PRECISION NOT NULL,
    next_attempt_at   DOUBLE PRECISION,
    delivered_at      DOUBLE PRECISION,
    last_status_code  BIGINT,
    last_error        TEXT,
    lease_owner       TEXT,
    locked_until      DOUBLE PRECISION
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id       TEXT COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt           BIGINT NOT NULL,
    started_at        DOUBLE PRECISION NOT NULL,
    duration_seconds  DOUBLE PRECISION NOT NULL,
    -- delivered | retry | failed
    outcome           TEXT COLLATE "C" NOT NULL,
    status_code       BIGINT,
    error             TEXT
);

CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
