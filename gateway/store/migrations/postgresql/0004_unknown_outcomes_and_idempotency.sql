-- 0004: money at the edges. Who settled an unknown outcome and why (on its ledger rows), and
-- the Idempotency-Keys clients send on POST /v1/videos.

ALTER TABLE ledger ADD COLUMN actor TEXT;
ALTER TABLE ledger ADD COLUMN reason TEXT;

-- A client's Idempotency-Key, scoped to the calling gateway key, bound to the video its first
-- request created. The primary key is what makes one key create one video across processes
-- and replicas; the row is written in the admission transaction, so a refused create (budget,
-- revoked key) leaves none.
CREATE TABLE idempotency_keys (
    key_id           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    expires_at       DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_job_id ON idempotency_keys (job_id);
