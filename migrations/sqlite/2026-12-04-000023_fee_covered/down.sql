ALTER TABLE donations DROP COLUMN fee_covered_minor;
