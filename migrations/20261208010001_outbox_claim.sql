-- The outbox's claim, written once (issue 24): the mail courier calls it alone, the webhook courier
-- joins each claimed row's endpoint and event to it, so a batch is claimed and read in one
-- statement. Claims up to `claim_limit` due messages of `claim_kind`, oldest due first, at most
-- `per_lane` in flight in each lane counting those this sender already has (`busy_lanes[i]` has
-- `busy_in_flight[i]`), none of `closed_lanes`; rows other senders hold are skipped, and each
-- claimed row's due time moves `lease` ahead (its attempts count this one), so no other sender
-- takes it while this one sends. A sender that dies mid-send leaves the row to be sent again after
-- the lease. PL/pgSQL, so each connection keeps the statement's plan; the chosen rows are updated
-- through the primary key (a join to them was planned as a scan of the whole table, sent rows and
-- all).
CREATE FUNCTION outbox_claim(
    claim_kind text, closed_lanes text[], claim_limit bigint, busy_lanes text[],
    busy_in_flight integer[], per_lane bigint, lease interval)
RETURNS SETOF outbox_message
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    WITH candidate AS (
        SELECT o.outbox_message_id, o.lane, o.due_at FROM outbox_message o
        WHERE o.sent_at IS NULL AND o.failed_at IS NULL AND o.due_at <= now()
          AND o.kind = claim_kind AND o.lane <> ALL(closed_lanes)
        ORDER BY o.due_at
        LIMIT claim_limit * 4
        FOR UPDATE SKIP LOCKED
    ), ranked AS (
        SELECT c.outbox_message_id, c.lane, c.due_at,
               row_number() OVER (PARTITION BY c.lane ORDER BY c.due_at) AS place
        FROM candidate c
    ), chosen AS (
        SELECT r.outbox_message_id
        FROM ranked r
        LEFT JOIN unnest(busy_lanes, busy_in_flight) AS busy (lane, in_flight) ON busy.lane = r.lane
        WHERE r.place + coalesce(busy.in_flight, 0) <= per_lane
        ORDER BY r.due_at
        LIMIT claim_limit
    )
    UPDATE outbox_message AS m
    SET due_at = now() + lease, attempts = m.attempts + 1
    WHERE m.outbox_message_id = ANY(ARRAY(SELECT outbox_message_id FROM chosen))
    RETURNING m.*;
END
$$;
