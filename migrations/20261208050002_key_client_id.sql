-- Every key is also an OAuth2 client (issue 25): `client_id` is its stable public id (the client
-- secret is the key itself). Made by the column's default, so every writer of keys (create,
-- import, roll, an approved request) gets one without naming it, and existing keys get theirs now:
-- `client_` and 24 hex digits (96 random bits), short enough for the key page's line.
ALTER TABLE api_key
    ADD COLUMN client_id text NOT NULL
        DEFAULT ('client_' || left(encode(sha256(gen_random_uuid()::text::bytea), 'hex'), 24))
        CONSTRAINT api_key_client_id_key UNIQUE;
