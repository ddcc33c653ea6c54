-- Fee and net as the charge's balance transaction states them, in its currency: an account
-- may settle in another currency than the fund's. NULL fee_currency on a row with a fee
-- (recorded before this migration): the donation's own currency, as it was taken then.
ALTER TABLE donations ADD COLUMN fee_currency TEXT;
-- The balance transaction's amount (in fee_currency) and its exchange rate, as Stripe wrote
-- it (text, never a float), NULL when none was applied.
ALTER TABLE donations ADD COLUMN settled_minor BIGINT;
ALTER TABLE donations ADD COLUMN exchange_rate TEXT;
