-- Fewer index entries per recorded card donation (issue "Throughput you can prove").
-- Applied outside a transaction, one statement at a time (metadata.toml, db::online), so the
-- index builds do not block writes to a table the fund is using (issue 22). Only databases that
-- have not applied this migration yet run this version; one that applied the earlier,
-- transactional text keeps its result, which is the same schema.
--
-- The ledger entry's hash was unique: a random 64-character key, so every entry inserted into
-- a random leaf of that index. Nothing looks an entry up by its hash; `crowdledger verify`
-- recomputes the chain in `seq` order (the primary key), and a repeated hash would need a
-- repeated previous hash and entry, which `seq` already rules out.
ALTER TABLE ledger_entries DROP CONSTRAINT IF EXISTS ledger_entries_hash_key;
-- Nothing reads entries by time either: the ledger export pages by `seq` and filters dates as
-- it goes.
DROP INDEX CONCURRENTLY IF EXISTS ledger_entries_created_at;

-- Lookups by charge (refunds, disputes, payouts) always name one, so the index need not hold
-- the many donations without one (offline gifts, pending cards). The narrower index is built
-- beside the old one, which serves lookups until it is swapped in (an invalid index left by an
-- interrupted build is dropped first).
DROP INDEX CONCURRENTLY IF EXISTS donations_charge_lean;
CREATE INDEX CONCURRENTLY IF NOT EXISTS donations_charge_lean ON donations (charge_id)
    WHERE charge_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS donations_charge;
ALTER INDEX IF EXISTS donations_charge_lean RENAME TO donations_charge;

-- The reservation sweeps look only for card donations still pending or failed. Narrowed to
-- those, a card's success takes its donation out of this index instead of moving it within.
-- The queries name the same predicate text (`payments::worker::OPEN_CARD`), so SQLite, which
-- matches a partial index's WHERE by its terms, uses the index too.
DROP INDEX CONCURRENTLY IF EXISTS donations_pending_card_lean;
CREATE INDEX CONCURRENTLY IF NOT EXISTS donations_pending_card_lean
    ON donations (status, reserved_until) WHERE method = 'card' AND status IN ('pending', 'failed');
DROP INDEX CONCURRENTLY IF EXISTS donations_pending_card;
ALTER INDEX IF EXISTS donations_pending_card_lean RENAME TO donations_pending_card;
