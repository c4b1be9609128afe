-- 0001: teams, their API keys, and jobs (one row per client-visible video).
-- Timestamps are integer seconds since the epoch, except jobs.refreshed_at (fractional seconds).

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Only the hash of a key is kept; key_hash is UNIQUE, so authentication is one index lookup.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams (id),
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE INDEX api_keys_team_id ON api_keys (team_id);

CREATE TABLE jobs (
    id                       TEXT PRIMARY KEY,
    team_id                  TEXT NOT NULL REFERENCES teams (id),
    key_id                   TEXT NOT NULL REFERENCES api_keys (id),
    model                    TEXT NOT NULL,
    request_json             TEXT NOT NULL,
    status                   TEXT NOT NULL,
    progress                 INTEGER NOT NULL DEFAULT 0,
    upstream_id              TEXT,
    error_code               TEXT,
    error_message            TEXT,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    completed_at             INTEGER,
    refreshed_at             REAL,
    upstream_video_url       TEXT,
    upstream_last_frame_url  TEXT,
    deleted_at               INTEGER
);

-- Ids are time-ordered, so this index serves a team's listing pages in creation order.
CREATE INDEX jobs_team_id_id ON jobs (team_id, id);
