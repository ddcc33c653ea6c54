-- Outside a transaction, statement by statement, as up.sql.
DROP INDEX CONCURRENTLY IF EXISTS donations_pending_card_wide;
CREATE INDEX CONCURRENTLY IF NOT EXISTS donations_pending_card_wide
    ON donations (status, reserved_until) WHERE method = 'card';
DROP INDEX CONCURRENTLY IF EXISTS donations_pending_card;
ALTER INDEX IF EXISTS donations_pending_card_wide RENAME TO donations_pending_card;
DROP INDEX CONCURRENTLY IF EXISTS donations_charge_wide;
CREATE INDEX CONCURRENTLY IF NOT EXISTS donations_charge_wide ON donations (charge_id);
DROP INDEX CONCURRENTLY IF EXISTS donations_charge;
ALTER INDEX IF EXISTS donations_charge_wide RENAME TO donations_charge;
CREATE INDEX CONCURRENTLY IF NOT EXISTS ledger_entries_created_at ON ledger_entries (created_at);
DROP INDEX CONCURRENTLY IF EXISTS ledger_entries_hash_key_build;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ledger_entries_hash_key_build
    ON ledger_entries (hash);
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_hash_key
    UNIQUE USING INDEX ledger_entries_hash_key_build;
