-- "Full access" as a flag rather than a snapshot of the scope catalogue: a key with `full_access`
-- holds every scope of `GATEHOUSE_SCOPES` as it is when the key is judged (scopes added later
-- included), and its `scopes` stay empty; other keys hold exactly the scopes in `scopes`.
ALTER TABLE api_key
    ADD COLUMN full_access boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT api_key_full_access_has_no_scopes CHECK (NOT full_access OR cardinality(scopes) = 0);
