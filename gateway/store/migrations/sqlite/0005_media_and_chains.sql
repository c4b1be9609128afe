-- 0005: what a stored video really is, and long videos chained from several upstream jobs.

-- The probe's figures (gateway/media/probe.py) as JSON {"container", "video_codec", "width",
-- "height", "duration_ms", "has_audio", "frames"}; NULL for images and for videos stored
-- before the probe existed.
ALTER TABLE assets ADD COLUMN media_json TEXT;

-- A chained video's segments and where each stands (gateway/domain/chains.py, JSON); NULL for a
-- video made by one upstream job.
ALTER TABLE jobs ADD COLUMN chain_json TEXT;
-- What of the reservation is already charged: a chained video's finished segments are charged
-- as each completes; settling the job moves only the rest.
ALTER TABLE jobs ADD COLUMN settled_micros INTEGER NOT NULL DEFAULT 0;
