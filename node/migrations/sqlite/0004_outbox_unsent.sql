-- The forwarder's first question, "what has never been sent?", answered without walking the
-- backlog of events sent and waiting for their receipt.
CREATE INDEX outbox_unsent ON outbox (seq) WHERE last_sent_ms IS NULL;
