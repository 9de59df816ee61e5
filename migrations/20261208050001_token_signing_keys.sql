-- The keys that sign access tokens (issue 25): ES256 (ECDSA P-256), one row per key. The private
-- key (PKCS#8) is sealed under GATEHOUSE_SECRET_KEY, bound to its row by its kid (the key's RFC
-- 7638 thumbprint). A key is published in the JWKS from publish_at until unpublish_at, signs from
-- sign_from until retire_at; a successor is published at least 15 minutes before it signs, and a
-- retired key stays published until every token it signed has expired.
CREATE TABLE token_signing_key (
    kid text PRIMARY KEY,
    public_key bytea NOT NULL CHECK (length(public_key) = 65),
    private_key_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    publish_at timestamptz NOT NULL,
    sign_from timestamptz NOT NULL CHECK (sign_from >= publish_at),
    retire_at timestamptz,
    unpublish_at timestamptz,
    CHECK (unpublish_at IS NULL OR retire_at IS NOT NULL AND unpublish_at >= retire_at)
);
