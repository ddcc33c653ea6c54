-- Which card donation an in-progress Idempotency-Key belongs to. A donor's retry with the key
-- waits for that donation's PaymentIntent (created by a task that outlives the request),
-- and abandoning the donation (Stripe failed, or its intent never came) frees the key with it.
-- Applied outside a transaction, one statement at a time (metadata.toml, db::online), so the
-- index builds do not block writes to a table the fund is using (issue 22). Only databases that
-- have not applied this migration yet run this version; one that applied the earlier,
-- transactional text keeps its result, which is the same schema.
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS donation_id BIGINT;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idempotency_keys_donation
    ON idempotency_keys (donation_id);
