-- Accounts: the people who sign in to the portal.

-- A person. `email` is stored trimmed, NFC-normalised and case-folded, so the unique index
-- refuses the same address twice in any spelling. `password_hash` is argon2id in PHC format,
-- null for users who only sign in through SSO. `session_generation` is bumped to end every
-- session the user has (password change): sessions carry the generation they were made in.
CREATE TABLE app_user (
    app_user_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email              text NOT NULL CONSTRAINT app_user_email_key UNIQUE,
    display_name       text NOT NULL,
    password_hash      text,
    session_generation integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz,
    disabled_at        timestamptz,
    CONSTRAINT app_user_email_folded CHECK (email = lower(email))
);

-- One failed sign-in, for throttling. `subject` is `account:<email>` or `client:<ip>`.
-- Rows older than the throttling window are deleted as new failures arrive.
CREATE TABLE login_failure (
    login_failure_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject          text NOT NULL,
    failed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failure_subject_idx ON login_failure (subject, failed_at);
