-- 0009: the totals of the stored assets (the gateway_stored_bytes/objects gauges), kept by
-- triggers in the same transaction that adds or removes an asset, so a /metrics scrape reads
-- at most 16 rows instead of summing the whole assets table (97 ms at 10^6 videos).
--
-- Concurrent completions would all update one hot row, so the totals are sharded: a
-- transaction adds its changes to the row of its backend (pg_backend_pid() % 16), and a scrape
-- sums the shards. The trigger is a deferred constraint trigger: it runs at COMMIT, after every
-- other statement, so the shard row is the last lock a transaction takes and is held only
-- while it commits; nobody holding it ever waits for another lock, so it cannot deadlock with
-- the job, asset, budget and cache-entry locks (their order: gateway/store/postgres_admission.py).
LOCK TABLE assets IN SHARE ROW EXCLUSIVE MODE;  -- no asset changes between the sum and the trigger

CREATE TABLE asset_totals (
    shard   SMALLINT PRIMARY KEY,
    objects BIGINT NOT NULL,
    bytes   BIGINT NOT NULL
);

INSERT INTO asset_totals (shard, objects, bytes)
SELECT 0, COUNT(*), COALESCE(SUM(size), 0) FROM assets;

CREATE FUNCTION asset_totals_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d_objects BIGINT := 0;
    d_bytes   BIGINT := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        d_objects := 1;
        d_bytes := NEW.size;
    ELSIF TG_OP = 'DELETE' THEN
        d_objects := -1;
        d_bytes := -OLD.size;
    ELSE
        d_bytes := NEW.size - OLD.size;
    END IF;
    INSERT INTO asset_totals AS t (shard, objects, bytes)
    VALUES (pg_backend_pid() % 16, d_objects, d_bytes)
    ON CONFLICT (shard) DO UPDATE
        SET objects = t.objects + excluded.objects, bytes = t.bytes + excluded.bytes;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER asset_totals_change
    AFTER INSERT OR DELETE OR UPDATE OF size ON assets
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION asset_totals_apply();
