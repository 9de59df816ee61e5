-- api_key.expired_event_at: when the `key.expired` webhook event was published for the key (the
-- expiry sweep sets it in the statement that claims the key, so the event fires once whatever the
-- number of instances). Keys that expired before this column existed count as announced: no flood
-- of old news on upgrade.
ALTER TABLE api_key ADD COLUMN expired_event_at timestamptz;
UPDATE api_key SET expired_event_at = expires_at WHERE expires_at <= now();

-- The sweep's search: keys with an expiry not yet announced.
CREATE INDEX api_key_expiry_unannounced ON api_key (expires_at)
    WHERE expired_event_at IS NULL AND expires_at IS NOT NULL;
