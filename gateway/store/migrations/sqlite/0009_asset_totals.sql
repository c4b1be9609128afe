-- 0009: the totals of the stored assets (the gateway_stored_bytes/objects gauges), kept by
-- triggers in the same transaction that adds or removes an asset, so a /metrics scrape reads
-- one row instead of summing the whole assets table (80 ms at 10^6 videos, on the reader
-- thread that status and list reads wait for). SQLite has one writer: one row is enough.
CREATE TABLE asset_totals (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    objects INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
);

INSERT INTO asset_totals (id, objects, bytes)
SELECT 1, COUNT(*), COALESCE(SUM(size), 0) FROM assets;

CREATE TRIGGER asset_totals_insert AFTER INSERT ON assets
BEGIN
    UPDATE asset_totals SET objects = objects + 1, bytes = bytes + NEW.size WHERE id = 1;
END;

CREATE TRIGGER asset_totals_delete AFTER DELETE ON assets
BEGIN
    UPDATE asset_totals SET objects = objects - 1, bytes = bytes - OLD.size WHERE id = 1;
END;

CREATE TRIGGER asset_totals_resize AFTER UPDATE OF size ON assets
BEGIN
    UPDATE asset_totals SET bytes = bytes + NEW.size - OLD.size WHERE id = 1;
END;
