-- 0001: teams, their API keys, and jobs (one row per client-visible video).
-- Mirrors sqlite/0001. Timestamps are integer seconds since the epoch (BIGINT), except
-- jobs.refreshed_at (fractional seconds, DOUBLE PRECISION). Text compares byte by byte
-- (COLLATE "C", like SQLite's BINARY), so ids, names and budget periods order the same way on
-- both databases and the same way as Python's str.

CREATE TABLE teams (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Only the hash of a key is kept; key_hash is UNIQUE, so authentication is one index lookup.
CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    name        TEXT COLLATE "C" NOT NULL,
    key_hash    TEXT COLLATE "C" NOT NULL UNIQUE,
    prefix      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX api_keys_team_id ON api_keys (team_id);

CREATE TABLE jobs (
    id                       TEXT COLLATE "C" PRIMARY KEY,
    team_id                  TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    key_id                   TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id),
    model                    TEXT COLLATE "C" NOT NULL,
    request_json             TEXT NOT NULL,
    status                   TEXT COLLATE "C" NOT NULL,
    progress                 BIGINT NOT NULL DEFAULT 0,
    upstream_id              TEXT COLLATE "C",
    error_code               TEXT COLLATE "C",
    error_message            TEXT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    completed_at             BIGINT,
    refreshed_at             DOUBLE PRECISION,
    upstream_video_url       TEXT,
    upstream_last_frame_url  TEXT,
    deleted_at               BIGINT
);

-- Ids are time-ordered, so this index serves a team's listing pages in creation order.
CREATE INDEX jobs_team_id_id ON jobs (team_id, id);
