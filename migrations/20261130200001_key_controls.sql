-- Key controls (issue 16): on `api_key`, a note for the people who manage the key, metadata for the
-- platform (a JSON object of at most 1 KB, returned by the key API as `key.meta`), an IP allowlist
-- (canonical CIDR blocks; empty means any address) and disabling, which unlike revoking can be undone.
ALTER TABLE api_key
    ADD COLUMN note         text NOT NULL DEFAULT '',
    ADD COLUMN meta         jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN ip_allowlist text[] NOT NULL DEFAULT '{}',
    ADD COLUMN disabled_at  timestamptz,
    ADD COLUMN disabled_by  uuid REFERENCES app_user ON DELETE SET NULL,
    ADD CONSTRAINT api_key_meta_is_a_small_object
        CHECK (jsonb_typeof(meta) = 'object' AND octet_length(meta::text) <= 2048);
