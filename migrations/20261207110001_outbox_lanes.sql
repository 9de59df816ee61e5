-- The outbox's lanes (issue 24): each message belongs to a lane, the receiver it goes to (one
-- webhook endpoint: `webhook:<endpoint id>`; all mail: `mail`). A sender bounds the deliveries in
-- flight per lane and backs off a lane whose receiver keeps timing out, so one slow receiver
-- delays no other. Derived from the row, so every writer of the outbox (the fan-out of events, a
-- resend, the benchmark's bulk insert) gets it without naming it.
ALTER TABLE outbox_message
    ADD COLUMN lane text NOT NULL
        GENERATED ALWAYS AS (kind || coalesce(':' || (payload->>'endpoint_id'), '')) STORED;

-- Each kind's sender claims its own due rows (mail never scans past webhooks); a backed-off lane's
-- waiting rows are found by lane.
CREATE INDEX outbox_message_kind_due_idx ON outbox_message (kind, due_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_message_lane_due_idx ON outbox_message (lane, due_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
