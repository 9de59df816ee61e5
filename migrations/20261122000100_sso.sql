-- Single sign-on through external OpenID Connect providers.

-- An identity at an OpenID Connect provider, linked to a user. People are found by
-- (issuer, subject), never by email alone: an email can move between people, a subject cannot.
-- `provider` is the configured name the identity signed in through (for display; renaming a
-- provider in the configuration does not orphan it). `email` is what the provider said at the
-- latest sign-in, for the account page only.
CREATE TABLE user_identity (
    user_identity_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_user_id      uuid NOT NULL REFERENCES app_user ON DELETE CASCADE,
    provider         text NOT NULL,
    issuer           text NOT NULL,
    subject          text NOT NULL,
    email            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_identity_issuer_subject_key UNIQUE (issuer, subject)
);
CREATE INDEX user_identity_app_user_idx ON user_identity (app_user_id);

-- An SSO sign-in in progress, from leaving for the provider until coming back: deleted by the
-- callback that uses it (single use) or once expired. `state_hash` is SHA-256 of the `state`
-- sent to the provider; `browser_hash` is SHA-256 of the random value in the flow cookie of the
-- browser that started it, so no other browser can finish it. `nonce` and `pkce_verifier` are
-- needed to redeem the code and check the ID token; `next_path` is where to go afterwards.
CREATE TABLE oidc_flow (
    oidc_flow_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state_hash    bytea NOT NULL CONSTRAINT oidc_flow_state_hash_key UNIQUE,
    browser_hash  bytea NOT NULL,
    provider      text NOT NULL,
    nonce         text NOT NULL,
    pkce_verifier text NOT NULL,
    next_path     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX oidc_flow_expires_idx ON oidc_flow (expires_at);
