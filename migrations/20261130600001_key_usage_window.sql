-- The busiest keys of a tenant in each usage window, kept by the metering batch so the usage
-- pages read one row per key instead of every key's counters over the window.
--
-- One row per key and grain ('minute' for the last hour, 'hour' for the last 24 hours, 'day' for
-- the last 30 days) that had verifications since `since`: `valid` and `total` are exactly the sums
-- of that grain's counters (key_usage_minute, key_usage_hour, key_usage_day) from `since` on.
-- Every batch adds its counts and first moves `since` to the current window's start, subtracting
-- the buckets that left the window; a row whose window emptied is deleted. Batches take an
-- advisory lock, so no two move or add at once. A reader corrects the few buckets between `since`
-- and its own window's start.
CREATE TABLE key_usage_window (
    tenant_id  uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    grain      text NOT NULL CHECK (grain IN ('minute', 'hour', 'day')),
    api_key_id uuid NOT NULL REFERENCES api_key ON DELETE CASCADE,
    since      timestamptz NOT NULL,
    valid      bigint NOT NULL CHECK (valid >= 0),
    total      bigint NOT NULL CHECK (total >= valid),
    PRIMARY KEY (tenant_id, grain, api_key_id)
);
-- The batch looks for rows whose window has moved on.
CREATE INDEX key_usage_window_grain_since_idx ON key_usage_window (grain, since);
CREATE INDEX key_usage_window_api_key_idx ON key_usage_window (api_key_id);

INSERT INTO key_usage_window (tenant_id, grain, api_key_id, since, valid, total)
SELECT tenant_id, w.grain, api_key_id, w.since,
       coalesce(sum(count) FILTER (WHERE outcome = 'VALID'), 0), sum(count)
FROM (VALUES ('minute', date_trunc('minute', now(), 'UTC') - interval '59 minutes'),
             ('hour', date_trunc('hour', now(), 'UTC') - interval '23 hours'),
             ('day', date_trunc('day', now(), 'UTC') - interval '29 days')) AS w(grain, since)
JOIN LATERAL (
    SELECT tenant_id, api_key_id, outcome, count FROM key_usage_minute
    WHERE w.grain = 'minute' AND bucket >= w.since
    UNION ALL
    SELECT tenant_id, api_key_id, outcome, count FROM key_usage_hour
    WHERE w.grain = 'hour' AND bucket >= w.since
    UNION ALL
    SELECT tenant_id, api_key_id, outcome, count FROM key_usage_day
    WHERE w.grain = 'day' AND bucket >= w.since
) c ON true
GROUP BY tenant_id, w.grain, api_key_id, w.since
HAVING sum(count) > 0;
