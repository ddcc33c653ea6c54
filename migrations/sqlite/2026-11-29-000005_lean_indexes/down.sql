DROP INDEX donations_pending_card;
CREATE INDEX donations_pending_card ON donations (status, reserved_until) WHERE method = 'card';
DROP INDEX donations_charge;
CREATE INDEX donations_charge ON donations (charge_id);
CREATE INDEX ledger_entries_created_at ON ledger_entries (created_at);
CREATE UNIQUE INDEX ledger_entries_hash ON ledger_entries (hash);
