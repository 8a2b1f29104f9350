-- A dead letter is stored once per message, even when the broker redelivers
-- the message after a crash or a lost connection (at-least-once delivery):
-- a redelivered message has the same topic and the same bytes, so the
-- dead-letter sink inserts with ON CONFLICT DO NOTHING on this key.
-- Consequence: byte-identical bad payloads on one topic are one row.
ALTER TABLE ingest_errors
    ADD COLUMN IF NOT EXISTS payload_md5 text GENERATED ALWAYS AS (md5(payload)) STORED;
CREATE UNIQUE INDEX IF NOT EXISTS ingest_errors_once
    ON ingest_errors (topic, reason, payload_md5);
