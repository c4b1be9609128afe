-- 0002: the job runner's lease and schedule, and stored assets (finished videos, last frames).
-- Mirrors sqlite/0002.

-- The runner claims a due job by setting a lease: lease_owner + locked_until (fractional seconds).
ALTER TABLE jobs ADD COLUMN lease_owner TEXT COLLATE "C";
ALTER TABLE jobs ADD COLUMN locked_until DOUBLE PRECISION;
-- When the runner should next look at the job (NULL once the job is finished).
ALTER TABLE jobs ADD COLUMN next_check_at DOUBLE PRECISION;
-- Consecutive polls or failed download attempts, for the back-off schedule.
ALTER TABLE jobs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
-- When the upstream reported the job finished (its download links expire some time after).
ALTER TABLE jobs ADD COLUMN upstream_finished_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN video_asset TEXT COLLATE "C";
ALTER TABLE jobs ADD COLUMN last_frame_asset TEXT COLLATE "C";
-- Retention: the video and its assets are removed after this time (NULL = kept forever).
ALTER TABLE jobs ADD COLUMN expires_at BIGINT;

CREATE INDEX jobs_due ON jobs (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;

-- A stored object (content-addressed by sha256) and how many jobs point at it.
CREATE TABLE assets (
    key           TEXT COLLATE "C" PRIMARY KEY,
    size          BIGINT NOT NULL,
    content_type  TEXT COLLATE "C" NOT NULL,
    refs          BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
