-- A tenant's key policy (issue 16), set by its admins on the settings page; no row means no policy.
-- `max_key_lifetime_days`: new keys must expire within it (null: no limit). `default_ip_allowlist`:
-- prefilled on the new-key form (canonical CIDR blocks). `live_keys`: who may create live keys:
-- anyone (developers and admins), admins only, or developers with an admin's approval.
CREATE TABLE tenant_key_policy (
    tenant_id             uuid PRIMARY KEY REFERENCES tenant ON DELETE CASCADE,
    max_key_lifetime_days integer CHECK (max_key_lifetime_days BETWEEN 1 AND 3650),
    default_ip_allowlist  text[] NOT NULL DEFAULT '{}',
    live_keys             text NOT NULL DEFAULT 'anyone' CHECK (live_keys IN ('anyone', 'admins', 'approval')),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
