-- API keys and their usage counters.

-- A tenant's API key. The key itself is never stored: `secret_hash` is SHA-256 of the whole key
-- (the key API looks keys up by it), `last_four` its last four characters for the masked listing.
-- `rate_limit` is verifications per minute. Rolling sets `rolled_at` (and a grace `expires_at`)
-- on the old key; the new key points back through `rolled_from`.
CREATE TABLE api_key (
    api_key_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    created_by   uuid REFERENCES app_user ON DELETE SET NULL,
    name         text NOT NULL,
    environment  text NOT NULL CHECK (environment IN ('live', 'test')),
    secret_hash  bytea NOT NULL CONSTRAINT api_key_secret_hash_key UNIQUE,
    last_four    text NOT NULL,
    scopes       text[] NOT NULL,
    rate_limit   integer NOT NULL CHECK (rate_limit > 0),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    revoked_by   uuid REFERENCES app_user ON DELETE SET NULL,
    rolled_from  uuid REFERENCES api_key ON DELETE SET NULL,
    rolled_at    timestamptz,
    rolled_by    uuid REFERENCES app_user ON DELETE SET NULL,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (octet_length(secret_hash) = 32)
);
CREATE INDEX api_key_tenant_created_idx ON api_key (tenant_id, created_at DESC);
CREATE INDEX api_key_rolled_from_idx ON api_key (rolled_from) WHERE rolled_from IS NOT NULL;

-- Verifications per key per minute, by outcome (the key API's answer code, e.g. VALID,
-- RATE_LIMITED, EXPIRED). Kept 7 days.
CREATE TABLE key_usage_minute (
    api_key_id uuid NOT NULL REFERENCES api_key ON DELETE CASCADE,
    tenant_id  uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    bucket     timestamptz NOT NULL,
    outcome    text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (api_key_id, bucket, outcome)
);
CREATE INDEX key_usage_minute_tenant_bucket_idx ON key_usage_minute (tenant_id, bucket);

-- The same per hour, rolled up from the minutes. Kept 400 days.
CREATE TABLE key_usage_hour (
    api_key_id uuid NOT NULL REFERENCES api_key ON DELETE CASCADE,
    tenant_id  uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    bucket     timestamptz NOT NULL,
    outcome    text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (api_key_id, bucket, outcome)
);
CREATE INDEX key_usage_hour_tenant_bucket_idx ON key_usage_hour (tenant_id, bucket);
