DROP INDEX CONCURRENTLY IF EXISTS idempotency_keys_donation;
ALTER TABLE idempotency_keys DROP COLUMN IF EXISTS donation_id;
