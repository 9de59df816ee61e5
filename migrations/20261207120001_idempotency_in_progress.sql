-- An Idempotency-Key is claimed before its request runs and answered after, each in a short
-- statement of its own (no connection or lock is held while the handler runs). A claimed row has
-- no answer yet (`status` and `response` NULL), the `claim` that owns it and `claimed_until`: a
-- request with the same key meanwhile is told to retry (409 with Retry-After); a claim whose
-- request never answered (a crash, a dropped connection) lapses at `claimed_until`.
ALTER TABLE idempotency_key
    ALTER COLUMN status DROP NOT NULL,
    ALTER COLUMN response DROP NOT NULL,
    ALTER COLUMN sealed SET DEFAULT false,
    ADD COLUMN claim uuid,
    ADD COLUMN claimed_until timestamptz,
    ADD CONSTRAINT idempotency_key_answered_or_claimed CHECK (
        (status IS NOT NULL AND response IS NOT NULL)
        OR (status IS NULL AND response IS NULL AND claim IS NOT NULL AND claimed_until IS NOT NULL)
    );
