-- 0003: money (limits, counters, the ledger) and dedupe (cache entries, followers).
-- Mirrors sqlite/0003. Money is integer micro-USD (BIGINT).

-- The request's list price, what this video costs its team (0 for a free cache hit or a join),
-- and where that money stands: none | reserved | charged | refunded.
ALTER TABLE jobs ADD COLUMN price_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cost_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN charged_micros BIGINT;
ALTER TABLE jobs ADD COLUMN money_state TEXT COLLATE "C" NOT NULL DEFAULT 'none';
-- The reservation's time: its day and month windows are settled in, whenever it settles.
ALTER TABLE jobs ADD COLUMN reserved_at DOUBLE PRECISION;
-- Seconds of video the upstream delivered (what the charge is based on).
ALTER TABLE jobs ADD COLUMN delivered_seconds BIGINT;
-- Dedupe: the cache key, what the cache did (miss | hit | coalesced | bypass), and for a
-- coalesced video the job whose upstream generation it shares.
ALTER TABLE jobs ADD COLUMN cache_key TEXT COLLATE "C";
ALTER TABLE jobs ADD COLUMN cache_result TEXT COLLATE "C";
ALTER TABLE jobs ADD COLUMN leader_id TEXT COLLATE "C";

CREATE INDEX jobs_leader ON jobs (leader_id) WHERE leader_id IS NOT NULL;

-- A limit on what a scope (key, team, org) may spend in a window (total, day, month; UTC).
CREATE TABLE budget_limits (
    scope         TEXT COLLATE "C" NOT NULL,
    scope_id      TEXT COLLATE "C" NOT NULL,
    window_kind   TEXT COLLATE "C" NOT NULL,
    limit_micros  BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, scope_id, window_kind)
);

-- Running totals per scope, window and period ("total", "2026-11-25", "2026-11"), kept for
-- every scope whether or not it has a limit, so a limit set later sees earlier spend.
-- Transactions lock these rows in primary-key order (SELECT ... ORDER BY ... FOR UPDATE), so
-- concurrent reservations on many connections stay exact and never deadlock.
CREATE TABLE budget_counters (
    scope        TEXT COLLATE "C" NOT NULL,
    scope_id     TEXT COLLATE "C" NOT NULL,
    window_kind  TEXT COLLATE "C" NOT NULL,
    period       TEXT COLLATE "C" NOT NULL,
    reserved     BIGINT NOT NULL DEFAULT 0,
    spent        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, scope_id, window_kind, period)
);

-- Every movement of money, one row per scope: reserve (+reserved), charge (-reserved,
-- +spent), refund (-reserved). `gateway audit` recomputes every counter from these rows.
CREATE TABLE ledger (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          TEXT COLLATE "C" NOT NULL,
    kind            TEXT COLLATE "C" NOT NULL,
    scope           TEXT COLLATE "C" NOT NULL,
    scope_id        TEXT COLLATE "C" NOT NULL,
    day             TEXT COLLATE "C" NOT NULL,
    month           TEXT COLLATE "C" NOT NULL,
    reserved_delta  BIGINT NOT NULL,
    spent_delta     BIGINT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL
);

CREATE INDEX ledger_job ON ledger (job_id);
CREATE INDEX ledger_scope ON ledger (scope, scope_id, created_at);

-- One entry per canonical request: the job generating it (running) or that generated it
-- (completed). Admissions of one key are serialised by a transaction-scoped advisory lock on
-- the key, so concurrent identical requests on any replica produce one upstream job.
CREATE TABLE cache_entries (
    key         TEXT COLLATE "C" PRIMARY KEY,
    leader_id   TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    expires_at  DOUBLE PRECISION
);
