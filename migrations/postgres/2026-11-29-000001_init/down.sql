DROP FUNCTION IF EXISTS ledger_entries_append_only() CASCADE;
DROP TABLE outbox;
DROP TABLE audit_log;
DROP TABLE idempotency_keys;
DROP TABLE users;
DROP TABLE ledger_entries;
DROP TABLE donations;
DROP TABLE periods;
DROP TABLE funds;
