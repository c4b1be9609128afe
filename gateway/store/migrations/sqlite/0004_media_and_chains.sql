-- 0004: what a stored video really is (and, later in this file, chained videos).

-- The probe's figures (gateway/media/probe.py) as JSON {"container", "video_codec", "width",
-- "height", "duration_ms", "has_audio", "frames"}; NULL for images and for videos stored
-- before the probe existed.
ALTER TABLE assets ADD COLUMN media_json TEXT;
