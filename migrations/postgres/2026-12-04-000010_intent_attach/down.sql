DROP INDEX idempotency_keys_donation;
ALTER TABLE idempotency_keys DROP COLUMN donation_id;
