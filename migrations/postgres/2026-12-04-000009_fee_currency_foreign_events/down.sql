ALTER TABLE donations DROP COLUMN exchange_rate;
ALTER TABLE donations DROP COLUMN settled_minor;
ALTER TABLE donations DROP COLUMN fee_currency;
