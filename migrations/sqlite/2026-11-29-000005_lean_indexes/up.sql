-- Fewer index entries per recorded card donation (issue "Throughput you can prove"); the
-- reasons are in PostgreSQL's migration of this name.
--
-- SQLite cannot drop a column's UNIQUE constraint, so ledger_entries is rebuilt without it
-- (and without the index on created_at).
-- Dropping the old table does not fire its append-only triggers, and no table refers to it.
CREATE TABLE ledger_entries_new (
    seq BIGINT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    donation_id BIGINT REFERENCES donations (id),
    amount_minor BIGINT NOT NULL,
    count_delta BIGINT NOT NULL,
    raised_after_minor BIGINT NOT NULL,
    target_after_minor BIGINT NOT NULL,
    intake_after TEXT NOT NULL,
    memo TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO ledger_entries_new (seq, created_at, kind, donation_id, amount_minor, count_delta,
    raised_after_minor, target_after_minor, intake_after, memo, prev_hash, hash)
SELECT seq, created_at, kind, donation_id, amount_minor, count_delta, raised_after_minor,
    target_after_minor, intake_after, memo, prev_hash, hash
FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;
CREATE INDEX ledger_entries_donation ON ledger_entries (donation_id);
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only');
END;

DROP INDEX donations_charge;
CREATE INDEX donations_charge ON donations (charge_id) WHERE charge_id IS NOT NULL;
DROP INDEX donations_pending_card;
CREATE INDEX donations_pending_card ON donations (status, reserved_until)
    WHERE method = 'card' AND status IN ('pending', 'failed');
