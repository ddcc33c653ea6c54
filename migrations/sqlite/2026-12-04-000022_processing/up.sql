-- A bank debit's money is on its way (payment_intent.processing) from this time until it
-- succeeds or fails; NULL for payments that never were in processing. A nullable column:
-- nothing is rewritten.
ALTER TABLE donations ADD COLUMN processing_since TIMESTAMP;
