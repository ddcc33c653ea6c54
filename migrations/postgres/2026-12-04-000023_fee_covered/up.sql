-- The part of a card gift the donor added to cover the processing fee (FEE_COVER); the
-- donation's amount is what was charged, this part included. A constant default: nothing is
-- rewritten.
ALTER TABLE donations ADD COLUMN fee_covered_minor BIGINT NOT NULL DEFAULT 0;
