-- Dropping these columns would leave every version 2 entry unverifiable (its hash covers
-- them): refused while one exists (the CHECK fails the insert).
CREATE TEMP TABLE revert_guard (version_2_entries INTEGER NOT NULL CHECK (version_2_entries = 0));
INSERT INTO revert_guard SELECT COUNT(*) FROM ledger_entries WHERE hash_version <> 1;
DROP TABLE revert_guard;
DROP TABLE disbursements;
ALTER TABLE ledger_entries DROP COLUMN public_memo;
ALTER TABLE ledger_entries DROP COLUMN disbursed_after_minor;
ALTER TABLE ledger_entries DROP COLUMN hash_version;
