-- Who made, rolled, revoked or disabled a key when no person did: the label of the machine actor
-- ("API token “Billing backend”", "Operator"). Null when a person acted (then the matching *_by
-- column holds the person). Pages show the person's name, else this label.
ALTER TABLE api_key
    ADD COLUMN created_by_label text,
    ADD COLUMN rolled_by_label text,
    ADD COLUMN revoked_by_label text,
    ADD COLUMN disabled_by_label text;

-- Keys made or imported through the management API before this column existed: their audit event
-- knows the token (its target names the key's name and last four characters).
UPDATE api_key k SET created_by_label = e.actor_token
FROM audit_event e
WHERE k.created_by IS NULL AND e.tenant_id = k.tenant_id AND e.actor_token IS NOT NULL
  AND e.action = 'key.created'
  AND e.target LIKE 'key:' || replace(replace(replace(k.name, '\', '\\'), '%', '\%'), '_', '\_') || ' (%' || k.last_four || ')';

-- A key's status at a moment: the one definition of it. Every query that shows or filters keys by
-- status reads it from here (the portal's and the management API's lists, a key's page), so the
-- rule is written once. Revoked beats expired beats disabled beats rolled; a key expiring within 7
-- days is "expiring".
CREATE FUNCTION api_key_status(expires_at timestamptz, revoked_at timestamptz,
                               rolled_at timestamptz, disabled_at timestamptz, at timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN revoked_at IS NOT NULL THEN 'revoked'
        WHEN expires_at <= at THEN 'expired'
        WHEN disabled_at IS NOT NULL THEN 'disabled'
        WHEN rolled_at IS NOT NULL THEN 'rolled'
        WHEN expires_at <= at + interval '7 days' THEN 'expiring'
        ELSE 'active'
    END
$$;

-- Who invited, when no person did (an operator or a tenant token): its label, as for keys.
ALTER TABLE invitation ADD COLUMN invited_by_label text;
UPDATE invitation i SET invited_by_label = e.actor_token
FROM audit_event e
WHERE i.invited_by IS NULL AND e.tenant_id = i.tenant_id AND e.actor_token IS NOT NULL
  AND e.action = 'invitation.created' AND e.target = 'email:' || i.email;
