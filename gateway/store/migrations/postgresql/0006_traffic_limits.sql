-- 0005: concurrency and rate limits per team and per key, and the team name pattern.
-- Mirrors sqlite/0005.

-- An owner's own limits; NULL leaves the configured default ([limits]) in force, 0 means none.
CREATE TABLE traffic_limits (
    scope                TEXT COLLATE "C" NOT NULL,
    scope_id             TEXT COLLATE "C" NOT NULL,
    max_in_flight_jobs   BIGINT,
    requests_per_minute  BIGINT,
    updated_at           BIGINT NOT NULL,
    PRIMARY KEY (scope, scope_id)
);

-- requests_per_minute state (GCRA): when the owner's next request would be "on time".
CREATE TABLE rate_limit_state (
    scope     TEXT COLLATE "C" NOT NULL,
    scope_id  TEXT COLLATE "C" NOT NULL,
    tat       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, scope_id)
);

-- Counting a team's or key's unfinished jobs (max_in_flight_jobs) reads only those.
CREATE INDEX jobs_unfinished_team_id ON jobs (team_id)
    WHERE status NOT IN ('completed', 'failed', 'rejected');
CREATE INDEX jobs_unfinished_key_id ON jobs (key_id)
    WHERE status NOT IN ('completed', 'failed', 'rejected');

-- Team names: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit
-- (gateway.domain.teams checks the same). NOT VALID: names made before this are kept.
ALTER TABLE teams ADD CONSTRAINT teams_name_pattern
    CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$') NOT VALID;
