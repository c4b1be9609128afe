-- 0007: inline request media live in the blob store, referenced by the jobs that sent them;
-- ended (failed/rejected) jobs are purged after a while.

-- One row per stored media item of a job's request (the asset row counts the references).
CREATE TABLE job_media (
    job_id  TEXT NOT NULL,
    key     TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);

-- The purge looks for failed and rejected jobs by when they ended.
CREATE INDEX jobs_ended_unsuccessfully ON jobs (completed_at)
    WHERE status IN ('failed', 'rejected');
