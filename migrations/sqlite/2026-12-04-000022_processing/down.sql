ALTER TABLE donations DROP COLUMN processing_since;
