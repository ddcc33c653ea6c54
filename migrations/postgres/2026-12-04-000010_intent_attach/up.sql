-- Which card donation an in-progress Idempotency-Key belongs to. A donor's retry with the key
-- waits for that donation's PaymentIntent (created by a task that outlives the request),
-- and abandoning the donation (Stripe failed, or its intent never came) frees the key with it.
ALTER TABLE idempotency_keys ADD COLUMN donation_id BIGINT;
CREATE INDEX idempotency_keys_donation ON idempotency_keys (donation_id);
