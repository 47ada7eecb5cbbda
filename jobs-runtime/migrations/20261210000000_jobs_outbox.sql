-- The outbox of `jobs` (`jobs::outbox`, docs/outbox.md): a job pushed inside a transaction is a
-- row here, written in that transaction. Once the transaction commits, the process that
-- committed it moves its rows to Redis and deletes them; the relay in the workers moves what a
-- crash left behind. A rolled-back transaction leaves no row, so no job.
--
-- Safe to run again (`jobs::outbox::migrate` runs it at every start). Add this file to your
-- app's own sqlx migrations as it is, or let `migrate` create the table. One statement: `migrate`
-- sends it as a prepared statement.
CREATE TABLE IF NOT EXISTS jobs_outbox (
    -- The order rows are moved in (the relay moves the oldest first).
    id         BIGSERIAL PRIMARY KEY,
    -- The job's jid, as in its JSON: what makes a move happen once (`jobs:outbox:<jid>`).
    jid        TEXT NOT NULL,
    -- The queue it goes to, as in its JSON (for reading the table; the JSON decides).
    queue      TEXT NOT NULL,
    -- The job JSON a direct push would have written, byte for byte (text, not jsonb, which
    -- would reorder and respell it).
    payload    TEXT NOT NULL,
    -- When a scheduled job is due, in epoch seconds (its score in the `schedule` set); NULL to
    -- run now.
    run_at     DOUBLE PRECISION,
    -- When the row was written: the relay leaves rows younger than its grace period to the
    -- process that committed them.
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
