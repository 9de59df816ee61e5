-- The key an audit event is about (null for events about anything else), so a key's page can show
-- its whole history: every change with its fields, not only what the key's own columns remember.
ALTER TABLE audit_event ADD COLUMN api_key_id uuid;
CREATE INDEX audit_event_api_key_idx ON audit_event (api_key_id, at) WHERE api_key_id IS NOT NULL;
