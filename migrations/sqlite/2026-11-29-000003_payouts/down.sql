ALTER TABLE donations DROP COLUMN payout_id;
DROP TABLE payouts;
