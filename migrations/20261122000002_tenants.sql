-- Tenants, their members and invitations, and the audit log of changes to them.

-- A customer of the platform: the team or company API keys belong to. `slug` names it in URLs.
CREATE TABLE tenant (
    tenant_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       text NOT NULL CONSTRAINT tenant_slug_key UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_slug_format CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$')
);

-- A user's place in a tenant. Roles: admin (manages members, reads the audit log, revokes any key),
-- developer (manages own keys), viewer (reads). Every tenant keeps at least one admin; the
-- application enforces it under a lock on the tenant row.
CREATE TABLE membership (
    membership_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    app_user_id   uuid NOT NULL REFERENCES app_user ON DELETE CASCADE,
    role          text NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT membership_tenant_user_key UNIQUE (tenant_id, app_user_id)
);
CREATE INDEX membership_user_idx ON membership (app_user_id);

-- An offer to join a tenant with a role, sent as a single-use link. Only SHA-256 of the link's
-- token is stored. `email` is folded like app_user.email; only that user may accept.
CREATE TABLE invitation (
    invitation_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    email         text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    token_hash    bytea NOT NULL CONSTRAINT invitation_token_hash_key UNIQUE,
    invited_by    uuid REFERENCES app_user ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    accepted_at   timestamptz,
    accepted_by   uuid REFERENCES app_user ON DELETE SET NULL,
    revoked_at    timestamptz,
    revoked_by    uuid REFERENCES app_user ON DELETE SET NULL
);
-- At most one open invitation per address and tenant.
CREATE UNIQUE INDEX invitation_pending_key ON invitation (tenant_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

-- What happened in a tenant, by whom, from where. Written in the same transaction as the change.
CREATE TABLE audit_event (
    audit_event_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    actor_id       uuid REFERENCES app_user ON DELETE SET NULL,
    action         text NOT NULL,
    target         text NOT NULL,
    request_id     text,
    client_ip      text,
    user_agent     text,
    details        jsonb NOT NULL DEFAULT '{}',
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_event_tenant_at_idx ON audit_event (tenant_id, at DESC);
CREATE INDEX audit_event_tenant_action_at_idx ON audit_event (tenant_id, action, at DESC);
