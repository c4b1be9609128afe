-- 0005: concurrency and rate limits per team and per key, and the team name pattern.

-- An owner's own limits; NULL leaves the configured default ([limits]) in force, 0 means none.
CREATE TABLE traffic_limits (
    scope                TEXT NOT NULL,
    scope_id             TEXT NOT NULL,
    max_in_flight_jobs   INTEGER,
    requests_per_minute  INTEGER,
    updated_at           INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_id)
);

-- requests_per_minute state (GCRA): when the owner's next request would be "on time".
CREATE TABLE rate_limit_state (
    scope     TEXT NOT NULL,
    scope_id  TEXT NOT NULL,
    tat       REAL NOT NULL,
    PRIMARY KEY (scope, scope_id)
);

-- Counting a team's or key's unfinished jobs (max_in_flight_jobs) reads only those.
CREATE INDEX jobs_unfinished_team_id ON jobs (team_id)
    WHERE status NOT IN ('completed', 'failed', 'rejected');
CREATE INDEX jobs_unfinished_key_id ON jobs (key_id)
    WHERE status NOT IN ('completed', 'failed', 'rejected');

-- Team names: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit
-- (gateway.domain.teams checks the same; names made before this migration are kept).
CREATE TRIGGER teams_name_pattern BEFORE INSERT ON teams
WHEN length(NEW.name) NOT BETWEEN 1 AND 64
    OR NEW.name GLOB '*[^A-Za-z0-9._-]*'
    OR substr(NEW.name, 1, 1) NOT GLOB '[A-Za-z0-9]'
BEGIN
    SELECT RAISE(ABORT, 'invalid team name');
END;
