-- PostgreSQL's migration of this name replaces the foreign keys from ledger_entries and outbox
-- to donations with per-statement triggers that enforce the same rules. SQLite keeps its
-- foreign keys (PRAGMA foreign_keys = ON on every connection): its checks are a lookup in the
-- same process, with no row lock or WAL record of their own. Nothing to change here; the
-- migration exists so both engines carry the same migration names.
SELECT 1;
