-- Roll-ups of the usage counters, so the portal's usage pages cost the same for a tenant with
-- ten keys or a thousand: the tenant's chart reads the tenant_* tables (one row per bucket and
-- outcome), and the busiest keys over 30 days read days, not hours. Written by the same batch,
-- in the same transaction, as key_usage_minute and key_usage_hour.

-- A tenant's verifications per minute, by outcome. Kept 7 days.
CREATE TABLE tenant_usage_minute (
    tenant_id uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    bucket    timestamptz NOT NULL,
    outcome   text NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (tenant_id, bucket, outcome)
);

-- A tenant's verifications per hour, by outcome. Kept 400 days.
CREATE TABLE tenant_usage_hour (
    tenant_id uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    bucket    timestamptz NOT NULL,
    outcome   text NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (tenant_id, bucket, outcome)
);

-- A key's verifications per UTC day, by outcome. Kept 400 days.
CREATE TABLE key_usage_day (
    api_key_id uuid NOT NULL REFERENCES api_key ON DELETE CASCADE,
    tenant_id  uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    bucket     timestamptz NOT NULL,
    outcome    text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (api_key_id, bucket, outcome)
);
CREATE INDEX key_usage_day_tenant_bucket_idx ON key_usage_day (tenant_id, bucket);

INSERT INTO tenant_usage_minute (tenant_id, bucket, outcome, count)
SELECT tenant_id, bucket, outcome, sum(count) FROM key_usage_minute GROUP BY 1, 2, 3;
INSERT INTO tenant_usage_hour (tenant_id, bucket, outcome, count)
SELECT tenant_id, bucket, outcome, sum(count) FROM key_usage_hour GROUP BY 1, 2, 3;
INSERT INTO key_usage_day (api_key_id, tenant_id, bucket, outcome, count)
SELECT api_key_id, tenant_id, date_trunc('day', bucket, 'UTC'), outcome, sum(count)
FROM key_usage_hour GROUP BY 1, 2, 3, 4;
