-- Outbound messages and the mail they carry (issue 12). Migration prefix 2026112920…: this branch's.

-- One message Gatehouse sends: a mail now, webhook deliveries later (`kind`). Written in the same
-- transaction as the change that causes it, so a change and its message commit or vanish
-- together. Senders on every instance claim due rows with FOR UPDATE SKIP LOCKED and push
-- `due_at` forward by a lease while they send; a sent row gets `sent_at`, a failed one the next
-- `due_at` of its backoff (1 minute doubling to 1 hour) until `give_up_at` (24 hours after it was
-- written), when it gets `failed_at`. `payload` is the kind's own JSON; what would let someone
-- in (a link's token) is removed from it once it has been sent.
CREATE TABLE outbox_message (
    outbox_message_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind              text NOT NULL,
    payload           jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    due_at            timestamptz NOT NULL DEFAULT now(),
    give_up_at        timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text,
    sent_at           timestamptz,
    failed_at         timestamptz
);
CREATE INDEX outbox_message_due_idx ON outbox_message (due_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;

-- Every attempt to send an outbox message, successful or not, with the error it met.
CREATE TABLE outbox_attempt (
    outbox_attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_message_id uuid NOT NULL REFERENCES outbox_message ON DELETE CASCADE,
    attempted_at      timestamptz NOT NULL DEFAULT now(),
    error             text
);
CREATE INDEX outbox_attempt_message_idx ON outbox_attempt (outbox_message_id);

-- Whether the address was proven by a link mailed to it (or by a provider's verified email),
-- and whether the person wants key-expiry reminders (security notices cannot be turned off).
-- Accounts made through SSO were made from a verified email.
ALTER TABLE app_user
    ADD COLUMN email_verified_at timestamptz,
    ADD COLUMN expiry_reminders  boolean NOT NULL DEFAULT true;
UPDATE app_user SET email_verified_at = created_at WHERE password_hash IS NULL;

-- A single-use link mailed to someone: a password reset (30 minutes) or the proof that an
-- address is theirs (24 hours; for an email change, `email` is the new address). Stored as the
-- SHA-256 of the token only.
CREATE TABLE email_token (
    token_hash  bytea PRIMARY KEY,
    app_user_id uuid NOT NULL REFERENCES app_user ON DELETE CASCADE,
    purpose     text NOT NULL CONSTRAINT email_token_purpose CHECK (purpose IN ('reset_password', 'verify_email')),
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX email_token_user_idx ON email_token (app_user_id, purpose);

-- Which expiry reminders (30, 7 or 1 days ahead) a key has had, so each goes out once.
CREATE TABLE key_expiry_reminder (
    api_key_id uuid NOT NULL REFERENCES api_key ON DELETE CASCADE,
    days_ahead integer NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, days_ahead)
);
