-- Webhooks (issue 13). Migration prefix 2026112940…: this branch's. Deliveries travel through the
-- outbox (kind 'webhook', one message per event and endpoint).

-- Where a tenant wants its events POSTed. The signing secrets and the receiver's credentials are
-- AES-256-GCM ciphertexts under GATEHOUSE_SECRET_KEY (nonce ‖ ciphertext), never clear text; the
-- previous secret is kept, and signed with, until `previous_secret_until` (24 hours after a roll).
-- `event_types` NULL means every type. `environment` says whose key events it gets (live or test);
-- member and invitation events go to every endpoint. `failing_since` is the first failure of the
-- current run of failures: after 3 days of them the endpoint is disabled (`disabled_reason`).
CREATE TABLE webhook_endpoint (
    webhook_endpoint_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id              uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    name                   text NOT NULL,
    url                    text NOT NULL,
    environment            text NOT NULL CONSTRAINT webhook_endpoint_environment CHECK (environment IN ('live', 'test')),
    event_types            text[],
    enabled                boolean NOT NULL DEFAULT true,
    disabled_reason        text,
    seed_signature         boolean NOT NULL DEFAULT false,
    auth_kind              text NOT NULL DEFAULT 'none' CONSTRAINT webhook_endpoint_auth_kind CHECK (auth_kind IN ('none', 'headers', 'basic', 'bearer')),
    auth_sealed            bytea,
    secret_sealed          bytea NOT NULL,
    previous_secret_sealed bytea,
    previous_secret_until  timestamptz,
    failing_since          timestamptz,
    failures_in_row        integer NOT NULL DEFAULT 0,
    last_delivery_at       timestamptz,
    last_status            integer,
    created_by             uuid REFERENCES app_user ON DELETE SET NULL,
    created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoint_tenant_idx ON webhook_endpoint (tenant_id);

-- One event that happened in a tenant (a key revoked, a member joined): the JSON every endpoint
-- receives, without secrets. Kept so a delivery can be resent and the log can show what was sent.
CREATE TABLE webhook_event (
    webhook_event_id text PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_event_tenant_idx ON webhook_event (tenant_id, created_at);

-- Every attempt to deliver an event to an endpoint: the delivery log. `status` is the receiver's
-- HTTP status (NULL when none came: refused address, timeout, connection error); `response` the
-- first 1 KB of its answer; `request_headers` what was sent, without signatures or credentials.
CREATE TABLE webhook_attempt (
    webhook_attempt_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_endpoint_id uuid NOT NULL REFERENCES webhook_endpoint ON DELETE CASCADE,
    webhook_event_id    text NOT NULL REFERENCES webhook_event ON DELETE CASCADE,
    outbox_message_id   uuid NOT NULL,
    attempted_at        timestamptz NOT NULL DEFAULT now(),
    status              integer,
    duration_ms         integer NOT NULL,
    error               text,
    response            text,
    request_headers     jsonb NOT NULL
);
CREATE INDEX webhook_attempt_endpoint_idx ON webhook_attempt (webhook_endpoint_id, attempted_at DESC);

-- A key.rate_limited event goes out at most once per key per hour.
ALTER TABLE api_key ADD COLUMN rate_limited_event_at timestamptz;
