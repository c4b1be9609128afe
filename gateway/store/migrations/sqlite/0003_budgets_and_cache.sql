-- 0003: money (limits, counters, the ledger) and dedupe (cache entries, followers).

-- The request's list price, what this video costs its team (0 for a free cache hit or a join),
-- and where that money stands: none | reserved | charged | refunded.
ALTER TABLE jobs ADD COLUMN price_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN charged_micros INTEGER;
ALTER TABLE jobs ADD COLUMN money_state TEXT NOT NULL DEFAULT 'none';
-- The reservation's time: its day and month windows are settled in, whenever it settles.
ALTER TABLE jobs ADD COLUMN reserved_at REAL;
-- Seconds of video the upstream delivered (what the charge is based on).
ALTER TABLE jobs ADD COLUMN delivered_seconds INTEGER;
-- Dedupe: the cache key, what the cache did (miss | hit | coalesced | bypass), and for a
-- coalesced video the job whose upstream generation it shares.
ALTER TABLE jobs ADD COLUMN cache_key TEXT;
ALTER TABLE jobs ADD COLUMN cache_result TEXT;
ALTER TABLE jobs ADD COLUMN leader_id TEXT;

CREATE INDEX jobs_leader ON jobs (leader_id) WHERE leader_id IS NOT NULL;

-- A limit on what a scope (key, team, org) may spend in a window (total, day, month; UTC).
CREATE TABLE budget_limits (
    scope         TEXT NOT NULL,
    scope_id      TEXT NOT NULL,
    window_kind   TEXT NOT NULL,
    limit_micros  INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_id, window_kind)
);

-- Running totals per scope, window and period ("total", "2026-11-25", "2026-11"), kept for
-- every scope whether or not it has a limit, so a limit set later sees earlier spend.
CREATE TABLE budget_counters (
    scope        TEXT NOT NULL,
    scope_id     TEXT NOT NULL,
    window_kind  TEXT NOT NULL,
    period       TEXT NOT NULL,
    reserved     INTEGER NOT NULL DEFAULT 0,
    spent        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, scope_id, window_kind, period)
);

-- Every movement of money, one row per scope: reserve (+reserved), charge (-reserved,
-- +spent), refund (-reserved). `gateway audit` recomputes every counter from these rows.
CREATE TABLE ledger (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    scope           TEXT NOT NULL,
    scope_id        TEXT NOT NULL,
    day             TEXT NOT NULL,
    month           TEXT NOT NULL,
    reserved_delta  INTEGER NOT NULL,
    spent_delta     INTEGER NOT NULL,
    created_at      REAL NOT NULL
);

CREATE INDEX ledger_job ON ledger (job_id);
CREATE INDEX ledger_scope ON ledger (scope, scope_id, created_at);

-- One entry per canonical request: the job generating it (running) or that generated it
-- (completed). The primary key makes concurrent identical requests produce one upstream job.
CREATE TABLE cache_entries (
    key         TEXT PRIMARY KEY,
    leader_id   TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL
);
