-- The request log ("why was I refused?"): one row per refused verification of a known key, and
-- per valid one the first of each (key, client address, minute). Partitioned by day (UTC) so
-- retention drops whole partitions; the background maintenance creates the coming days'
-- partitions and drops those past GATEHOUSE_REQUEST_LOG_DAYS. No foreign keys: rows are written
-- in batches off the key API's hot path and age out on their own; tenants and keys are never
-- deleted outright (tenants are soft-deleted, keys are revoked). Never holds a key or a query string.
CREATE TABLE request_log (
    at timestamptz NOT NULL,
    request_log_id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    api_key_id uuid NOT NULL,
    -- The key API's answer (VALID, REVOKED, …) as text, so later codes need no migration.
    code text NOT NULL,
    -- What the code needs to be explained: the missing scopes, the tenant asked for, the limit.
    detail text,
    -- Which endpoint judged the call: 'verify' or 'authorize'.
    via text NOT NULL,
    client_ip text NOT NULL,
    method text,
    -- The path only: the query string is cut off before the record is made.
    path text,
    user_agent text,
    request_id text,
    PRIMARY KEY (at, request_log_id)
) PARTITION BY RANGE (at);

CREATE INDEX request_log_tenant_at ON request_log (tenant_id, at DESC, request_log_id DESC);
CREATE INDEX request_log_key_at ON request_log (api_key_id, at DESC, request_log_id DESC);

-- Today's and the next two days' partitions, so the first records have a home before the
-- maintenance task runs; it keeps creating them from then on.
DO $$
DECLARE
    day date;
BEGIN
    FOR offset_days IN 0..2 LOOP
        day := (now() AT TIME ZONE 'UTC')::date + offset_days;
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF request_log FOR VALUES FROM (%L) TO (%L)',
            'request_log_p' || to_char(day, 'YYYYMMDD'),
            day::timestamp AT TIME ZONE 'UTC',
            (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;

-- What the request log could not keep, per minute across instances: records dropped because an
-- instance's buffer was full, and calls with no known key (MALFORMED, NOT_FOUND, a missing key,
-- a throttled client), which belong to no tenant and are only counted. Shown on the Logs page so
-- a gap is never silent; kept as long as the log.
CREATE TABLE request_log_gap (
    minute timestamptz PRIMARY KEY,
    dropped bigint NOT NULL DEFAULT 0,
    unknown_key bigint NOT NULL DEFAULT 0
);
