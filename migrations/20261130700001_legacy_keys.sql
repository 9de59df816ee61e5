-- api_key.legacy: the key was imported in the platform's old format (matching
-- GATEHOUSE_LEGACY_KEY_PATTERN), or as a bare SHA-256 the caller did not say was a Gatehouse key.
-- The key API looks these up like any other key; the portal marks them and offers to roll them
-- into checksummed keys. Keys made by Gatehouse are never legacy.
ALTER TABLE api_key ADD COLUMN legacy boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN api_key.legacy IS 'Imported in the platform''s old format; rolled into checksummed keys.';
