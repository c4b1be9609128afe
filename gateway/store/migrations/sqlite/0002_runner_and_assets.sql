-- 0002: the job runner's lease and schedule, and stored assets (finished videos, last frames).

-- The runner claims a due job by setting a lease: lease_owner + locked_until (seconds, REAL).
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN locked_until REAL;
-- When the runner should next look at the job (NULL once the job is finished).
ALTER TABLE jobs ADD COLUMN next_check_at REAL;
-- Consecutive polls or failed download attempts, for the back-off schedule.
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- When the upstream reported the job finished (its download links expire some time after).
ALTER TABLE jobs ADD COLUMN upstream_finished_at REAL;
ALTER TABLE jobs ADD COLUMN video_asset TEXT;
ALTER TABLE jobs ADD COLUMN last_frame_asset TEXT;
-- Retention: the video and its assets are removed after this time (NULL = kept forever).
ALTER TABLE jobs ADD COLUMN expires_at INTEGER;

CREATE INDEX jobs_due ON jobs (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;

-- A stored object (content-addressed by sha256) and how many jobs point at it.
CREATE TABLE assets (
    key           TEXT PRIMARY KEY,
    size          INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    refs          INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
