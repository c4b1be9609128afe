-- 0009: the totals of the stored assets (the gateway_stored_bytes/objects gauges), kept by
-- triggers in the same transaction that adds or removes an asset, so a /metrics scrape reads
-- one row instead of summing the whole assets table (80 ms at 10^6 videos, on the reader
-- thread that status and list reads wait for). SQLite has one writer: one row (shard 0) is
-- enough; PostgreSQL shards the same table (its 0009).
CREATE TABLE asset_totals (
    shard   INTEGER PRIMARY KEY CHECK (shard = 0),
    objects INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
);

INSERT INTO asset_totals (shard, objects, bytes)
SELECT 0, COUNT(*), COALESCE(SUM(size), 0) FROM assets;

CREATE TRIGGER asset_totals_insert AFTER INSERT ON assets
BEGIN
    UPDATE asset_totals SET objects = objects + 1, bytes = bytes + NEW.size WHERE shard = 0;
END;

CREATE TRIGGER asset_totals_delete AFTER DELETE ON assets
BEGIN
    UPDATE asset_totals SET objects = objects - 1, bytes = bytes - OLD.size WHERE shard = 0;
END;

CREATE TRIGGER asset_totals_resize AFTER UPDATE OF size ON assets
BEGIN
    UPDATE asset_totals SET bytes = bytes + NEW.size - OLD.size WHERE shard = 0;
END;
