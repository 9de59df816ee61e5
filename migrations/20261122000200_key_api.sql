-- What the key API's metering and retention need beside the usage tables.

-- One row per usage batch written by an instance. A batch is written in one transaction that first
-- inserts its id here, so a batch retried after a lost acknowledgement is recognised and skipped:
-- a retried flush never counts twice. Rows older than a day are purged.
CREATE TABLE key_usage_flush (
    flush_id   uuid PRIMARY KEY,
    flushed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX key_usage_flush_flushed_at_idx ON key_usage_flush (flushed_at);

-- Retention deletes by age across all keys (minutes after 7 days, hours after 400 days).
CREATE INDEX key_usage_minute_bucket_idx ON key_usage_minute (bucket);
CREATE INDEX key_usage_hour_bucket_idx ON key_usage_hour (bucket);
