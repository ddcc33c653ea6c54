DROP TABLE stripe_events;
DROP INDEX donations_pending_card;
DROP INDEX donations_charge;
ALTER TABLE donations DROP COLUMN dispute_status;
ALTER TABLE donations DROP COLUMN reserved_until;
ALTER TABLE donations DROP COLUMN charge_id;
