-- A key found leaked (issue 28): one row per key and URL a secret scanner reported, so a report sent
-- twice acts once. `origin` is the sender as the operator named it ("github"); `source` what the
-- sender says the URL is ("content", "commit", …); `action` what the tenant's policy did: revoke,
-- disable or notify (or `none` when the key was already finished).
CREATE TABLE key_leak (
    api_key_id  uuid NOT NULL REFERENCES api_key ON DELETE CASCADE,
    url         text NOT NULL,
    tenant_id   uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    origin      text NOT NULL,
    source      text NOT NULL,
    action      text NOT NULL CHECK (action IN ('revoke', 'disable', 'notify', 'none')),
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, url)
);
CREATE INDEX key_leak_tenant_idx ON key_leak (tenant_id, reported_at DESC);

-- A management token found leaked: always revoked, the tenant's admins told. One row per token and URL.
CREATE TABLE management_token_leak (
    management_token_id uuid NOT NULL REFERENCES management_token ON DELETE CASCADE,
    url                 text NOT NULL,
    origin              text NOT NULL,
    source              text NOT NULL,
    reported_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (management_token_id, url)
);

-- What a leak report does to a tenant's keys, per environment (set on the settings page and through
-- the management API): revoke, disable, or notify only. No row: revoke live keys, notify for test keys.
CREATE TABLE tenant_leak_policy (
    tenant_id  uuid PRIMARY KEY REFERENCES tenant ON DELETE CASCADE,
    live       text NOT NULL DEFAULT 'revoke' CHECK (live IN ('revoke', 'disable', 'notify')),
    test       text NOT NULL DEFAULT 'notify' CHECK (test IN ('revoke', 'disable', 'notify')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
