-- A developer's request for a live key, under the key policy "developers with an admin's approval"
-- (issue 16). It holds what the key will be (name, access, expiry, allowlist) and why it is wanted;
-- an admin approves or denies it with a reason; the requester then reveals the key once from the
-- request's page. The key (and so its secret) is made only at that reveal: no secret ever waits
-- here. `status`: pending → approved → revealed, or pending → denied.
CREATE TABLE key_request (
    key_request_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenant ON DELETE CASCADE,
    requested_by    uuid REFERENCES app_user ON DELETE SET NULL,
    name            text NOT NULL,
    full_access     boolean NOT NULL DEFAULT false,
    scopes          text[] NOT NULL DEFAULT '{}',
    expires_at      timestamptz,
    ip_allowlist    text[] NOT NULL DEFAULT '{}',
    reason          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'denied', 'revealed')),
    decided_by      uuid REFERENCES app_user ON DELETE SET NULL,
    decided_at      timestamptz,
    decision_reason text NOT NULL DEFAULT '',
    api_key_id      uuid REFERENCES api_key ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX key_request_tenant_status ON key_request (tenant_id, status, created_at DESC);
