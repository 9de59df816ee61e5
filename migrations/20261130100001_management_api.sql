-- The management API (issue 14): the platform's backend provisions tenants, keys and members.

-- tenant.external_id: the platform's own id for the tenant (its customer or account id), set by
-- the operator; `ext:<external_id>` names the tenant in management API paths.
-- tenant.suspended_at: when the operator suspended the tenant; its keys answer TENANT_SUSPENDED.
ALTER TABLE tenant ADD COLUMN external_id text CONSTRAINT tenant_external_id_key UNIQUE,
                   ADD COLUMN suspended_at timestamptz,
                   ADD CONSTRAINT tenant_external_id_format CHECK (external_id ~ '^[A-Za-z0-9._:-]{1,128}$');

-- A tenant management token: made by a tenant admin on the portal's "API access" page, it opens
-- the management API for that tenant alone, with the scopes chosen. Only SHA-256 of the token is
-- stored (with its last four characters, for lists).
CREATE TABLE management_token (
    management_token_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    name                text NOT NULL,
    scopes              text[] NOT NULL,
    secret_hash         bytea NOT NULL CONSTRAINT management_token_secret_hash_key UNIQUE,
    last_four           text NOT NULL,
    created_by          uuid REFERENCES app_user ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz,
    last_used_at        timestamptz,
    revoked_at          timestamptz,
    revoked_by          uuid REFERENCES app_user ON DELETE SET NULL
);
CREATE INDEX management_token_tenant_idx ON management_token (tenant_id, created_at);

-- A POST the management API has answered under an `Idempotency-Key`, kept 24 hours: the same key
-- from the same caller replays the stored answer; with another body it is refused. `caller` is
-- the token's identity (never the token). The answer is sealed when it holds a secret.
CREATE TABLE idempotency_key (
    caller          text NOT NULL,
    idempotency_key text NOT NULL,
    request_hash    bytea NOT NULL,
    status          smallint NOT NULL,
    response        bytea NOT NULL,
    sealed          boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, idempotency_key)
);
CREATE INDEX idempotency_key_created_idx ON idempotency_key (created_at);

-- audit_event.actor_token: who acted when it was no person but a management API token
-- ("operator token" or the tenant token's name), shown on the audit page.
ALTER TABLE audit_event ADD COLUMN actor_token text;
