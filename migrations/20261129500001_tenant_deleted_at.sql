-- tenant.deleted_at: when an admin deleted the tenant (a soft delete). The row stays, with its slug
-- (so an old link never reaches a newer tenant), its revoked keys, usage and audit trail; no page
-- lists or serves a deleted tenant and its keys answer REVOKED.
ALTER TABLE tenant ADD COLUMN deleted_at timestamptz;
